"""``forensics report``: one self-contained HTML page about a model (and its scores on labelled data)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from forensics.api import _check_writable
from forensics.cli import options as opt
from forensics.cli.app import app, handle_errors, out_console, progress_display, report_errors
from forensics.model import ForensicModel
from forensics.reports import build_report


@app.command("report")
@handle_errors
def report_command(
    model: Path = typer.Argument(..., help="Model file written by 'forensics train'."),
    data: Optional[List[Path]] = typer.Argument(None, help="Optional labelled data (folders with real/ and fake/, CSV manifests) for held-out metrics, importance, ablation and examples."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="HTML file to write (self-contained: figures embedded)."),
    ablation: bool = typer.Option(True, "--ablation/--no-ablation", help="Retrain per block on the data's features (3-fold CV, lighter classifier)."),
    examples: int = typer.Option(8, "--examples", min=0, help="Thumbnails per group (most confident, misclassified)."),
    by: Optional[str] = typer.Option(None, "--by", help="Also the metrics on DATA per group of images, as 'forensics evaluate --by': 'folder' (the folder holding each image) or a regular expression searched in each path, whose first group names the group."),
    jobs: int = opt.JOBS,
    cache_dir: Path = opt.CACHE_DIR,
    no_cache: bool = opt.NO_CACHE,
):
    """Write an HTML report: model card, CV and held-out metrics, ROC/PR, score histograms, reliability and
    Brier, confusion matrix, feature and block importance, block ablation, mean spectrum, example thumbnails."""
    _check_writable(out)
    m = ForensicModel.load(model)
    with progress_display() as progress:
        summary = build_report(m, data or None, out=out, model_name=model.name, jobs=jobs, ablation=ablation,
                               n_examples=examples, by=by, cache_dir=opt.resolve_cache(cache_dir, no_cache) if data else None,
                               progress=progress)
    if data:
        report_errors(summary["errors"], summary["n_images"], summary["n_failed"])
    scored = f" ({summary['n_images'] - summary['n_failed']} of {summary['n_images']} images scored)" if data else " (model card only)"
    out_console.print(f"wrote report to {summary['out']}{scored}", highlight=False, soft_wrap=True)
