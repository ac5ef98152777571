"""``forensics score``: a model and images -> one CSV row per image file."""

from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from forensics import api
from forensics.cli import options as opt
from forensics.cli.app import app, fail, handle_errors, out_console, progress_display, report_errors
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
):
    """Score images with a trained model: exactly one row per image file, unreadable ones with an error."""
    m = ForensicModel.load(model)
    with progress_display() as progress:
        summary = api.score(m, inputs, out, jobs=jobs, cache_dir=opt.resolve_cache(cache_dir, no_cache), progress=progress)
    report_errors(summary.errors, summary.n_rows, summary.n_failed)
    out_console.print(
        f"scored {summary.n_ok} of {summary.n_rows} files: {summary.extra['n_fake']} fake, {summary.extra['n_real']} real "
        f"(threshold {m.threshold:.3f}); wrote {summary.output}",
        highlight=False,
        soft_wrap=True,
    )
    if summary.n_ok == 0:
        fail("no image could be scored", 1)
