"""``forensics score``: a model and images -> one CSV row per image file."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from forensics import api
from forensics.cli import options as opt
from forensics.cli.app import app, err_console, fail, handle_errors, out_console, progress_display, report_errors
from forensics.model import ForensicModel


@app.command("score")
@handle_errors
def score_command(
    model: Path = typer.Argument(..., help="Model file written by 'forensics train'."),
    inputs: List[Path] = typer.Argument(..., help="Image files and folders (searched recursively)."),
    out: Path = typer.Option(..., "--out", "-o", help="CSV to write: path, prob_fake, label, error, diag__*."),
    jobs: int = opt.JOBS,
    cache_dir: Path = opt.CACHE_DIR,
    no_cache: bool = opt.NO_CACHE,
    uncertain: Optional[float] = typer.Option(None, "--uncertain", min=0.0, max=0.999, help="Label 'uncertain' the images whose prob_fake is within W of the threshold."),
    explain: int = typer.Option(0, "--explain", min=0, help="Add columns explain_1..K: the K features that pushed each score most (xgb, logreg)."),
    scheduler: Optional[str] = opt.SCHEDULER,
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Write rows progressively to .<out>.partial; after an interruption, reuse the rows already scored (same file content and model)."),
):
    """Score images with a trained model: exactly one row per image file, unreadable ones with an error."""
    m = ForensicModel.load(model)
    with progress_display() as progress:
        summary = api.score(m, inputs, out, jobs=jobs, cache_dir=opt.resolve_cache(cache_dir, no_cache), progress=progress,
                            uncertain=uncertain, explain=explain, resume=resume, scheduler=scheduler)
    report_errors(summary.errors, summary.n_rows, summary.n_failed)
    if summary.extra.get("n_reused"):
        out_console.print(f"resumed an interrupted run: reused {summary.extra['n_reused']} rows, scored {summary.extra['n_computed']} files",
                          highlight=False, soft_wrap=True)
    if m.spec.face_crop:
        import pandas as pd

        scored = pd.read_csv(summary.output, usecols=["prob_fake", "face_box"], dtype={"face_box": str})
        no_face = int((scored["face_box"].isna() & scored["prob_fake"].notna()).sum())
        if no_face:
            err_console.print(f"[yellow]note:[/] no face found in {no_face} images; their whole image was scored (empty face_box)",
                              highlight=False, soft_wrap=True)
    if summary.extra.get("explain_skipped"):
        err_console.print(f"[yellow]note:[/] no explain columns: {summary.extra['explain_skipped']}", highlight=False, soft_wrap=True)
    n_unc = f", {summary.extra['n_uncertain']} uncertain" if uncertain else ""
    out_console.print(
        f"scored {summary.n_ok} of {summary.n_rows} files: {summary.extra['n_fake']} fake, {summary.extra['n_real']} real{n_unc} "
        f"(threshold {m.threshold:.3f}); computed {summary.extra['features_computed']}, from cache "
        f"{summary.extra['features_from_cache']}; wrote {summary.output}",
        highlight=False,
        soft_wrap=True,
    )
    if summary.n_ok == 0:
        fail("no image could be scored", 1)
