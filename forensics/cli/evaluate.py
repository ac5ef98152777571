"""``forensics evaluate``: held-out metrics of a model, clean and under perturbations (JSON + table)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table
from rich.text import Text

from forensics.api import _check_writable
from forensics.cli import options as opt
from forensics.cli.app import app, fail, handle_errors, out_console, progress_display, report_errors
from forensics.model import ForensicModel
from forensics.perturbations import DEFAULT_PERTURBATIONS, parse_perturbations
from forensics.pipelines.evaluate import evaluate, json_ready
from forensics.reports.io import write_text_atomic

ROWS = (
    ("images", "n", "{:d}"),
    ("AUC", "auc", "{:.3f}"),
    ("AUC 95% low", "auc_ci_low", "{:.3f}"),
    ("AUC 95% high", "auc_ci_high", "{:.3f}"),
    ("AP", "ap", "{:.3f}"),
    ("bal. acc", "balanced_accuracy", "{:.3f}"),
    ("acc real", "acc_real", "{:.3f}"),
    ("acc fake", "acc_fake", "{:.3f}"),
    ("EER", "eer", "{:.3f}"),
    ("TPR@1%FPR", "tpr_at_fpr_1", "{:.3f}"),
    ("TPR@5%FPR", "tpr_at_fpr_5", "{:.3f}"),
    ("Brier", "brier", "{:.3f}"),
)


def _cell(value, fmt: str) -> str:
    """A figure as text; ``-`` where it is undefined (``None``, NaN)."""
    return "-" if value is None or (isinstance(value, float) and value != value) else fmt.format(value)


def metrics_table(results: dict, title: str) -> Table:
    """One column per condition, one row per metric (fits 80 columns with the default conditions)."""
    table = Table(title=title, box=None, pad_edge=False)
    table.add_column("metric", no_wrap=True)
    for name in results:
        table.add_column(name, justify="right", no_wrap=True)
    for head, key, fmt in ROWS:
        table.add_row(head, *(_cell(m.get(key), fmt) for m in results.values()))
    return table


GROUP_COLUMNS = (
    ("real", "n_real", "{:d}"),
    ("fake", "n_fake", "{:d}"),
    ("acc real", "acc_real", "{:.3f}"),
    ("acc fake", "acc_fake", "{:.3f}"),
    ("mean prob", "mean_prob_fake", "{:.3f}"),
    ("AUC", "auc", "{:.3f}"),
    ("AUC against", "auc_against", "{}"),
)


def groups_table(groups: dict, title: str) -> Table:
    """One row per group of images, one column per figure of :func:`~forensics.pipelines.evaluate.group_metrics`."""
    table = Table(title=title, box=None, pad_edge=False)
    table.add_column("group", no_wrap=True)
    for head, _, _ in GROUP_COLUMNS:
        table.add_column(head, justify="right", no_wrap=True)
    for name, g in groups.items():  # a folder name is text, not rich markup
        table.add_row(Text(str(name)), *(_cell(g.get(key), fmt) for _, key, fmt in GROUP_COLUMNS))
    return table


@app.command("evaluate")
@handle_errors
def evaluate_command(
    model: Path = typer.Argument(..., help="Model file written by 'forensics train'."),
    data: List[Path] = typer.Argument(..., help="Labelled data: folders with real/ and fake/, or CSV manifests (path,label)."),
    perturb: str = typer.Option(DEFAULT_PERTURBATIONS, "--perturb", "-p", help="Comma-separated perturbations applied to every image, real and fake: jpeg:QUALITY, resize:FACTOR, blur:SIGMA, crop:FRACTION, noise:SIGMA; 'none' for clean only."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="JSON file to write: one key per condition (clean, jpeg:75, ...)."),
    by: Optional[str] = typer.Option(None, "--by", help="Also metrics per group of images: 'folder' (the folder holding each image, e.g. one sub-folder of fake/ per generator; folders of the same name in different places are told apart by their parents) or a regular expression searched in each path, whose first group names the group (e.g. '/(easy|mid|hard)_'). Fakes are measured against all real images, real images against all fakes."),
    jobs: int = opt.JOBS,
    cache_dir: Path = opt.CACHE_DIR,
    no_cache: bool = opt.NO_CACHE,
):
    """Held-out metrics (AUC, AP, balanced accuracy, per-class accuracy, EER, TPR at 1 %/5 % FPR, Brier)
    on clean images and on perturbed copies made in memory. The features of both go to the feature
    cache, a copy keyed by the file and the perturbation: running again computes nothing twice. With
    --by, the same per group of images (which generators or edits the model misses)."""
    perturbations = parse_perturbations(perturb)
    if out is not None:
        _check_writable(out)
    cache = opt.resolve_cache(cache_dir, no_cache)
    m = ForensicModel.load(model)
    with progress_display() as progress:
        stage = (lambda d, t: progress("evaluate", d, t)) if progress else None
        results, errors = evaluate(m, data, perturbations, jobs=jobs, progress=stage, cache_dir=cache, by=by)
    n_failed = results["clean"]["n_failed"]
    report_errors(errors, results["clean"]["n"] + n_failed, n_failed)
    out_console.print(metrics_table(results, f"{model.name} on {', '.join(d.name for d in data)} (threshold {m.threshold:.3f})"))
    if by is not None:
        out_console.print(groups_table(results["clean"]["groups"], f"clean, per group (--by {by})"))
    if out is not None:
        write_text_atomic(out, json.dumps(json_ready(results), indent=2) + "\n")
        out_console.print(f"wrote {out}", highlight=False, soft_wrap=True)
    if results["clean"]["n"] == 0:
        fail("no image could be scored", 1)
