"""``forensics train``: labelled folders -> cross-validated model file."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from forensics import api
from forensics.cli import options as opt
from forensics.cli.app import app, handle_errors, out_console, parse_settings, progress_display, report_errors
from forensics.errors import UsageError


@app.command("train")
@handle_errors
def train_command(
    data: List[Path] = typer.Argument(..., help="Folders with real/ and fake/ below them, or CSV manifests (path,label); pooled."),
    model: Path = typer.Option(..., "--model", "-m", help="Model file to write (.skops)."),
    classifier: str = typer.Option("xgb", "--classifier", "-c", help="xgb (default), svm or logreg."),
    blocks: str = opt.BLOCKS,
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds."),
    max_fpr: Optional[float] = typer.Option(None, "--max-fpr", help="Pick the threshold for this false-positive rate on real images (else best balanced accuracy)."),
    jobs: int = opt.JOBS,
    cache_dir: Path = opt.CACHE_DIR,
    no_cache: bool = opt.NO_CACHE,
    max_pixels: int = opt.MAX_PIXELS,
    settings: opt.SettingsList = opt.SETTINGS,
    seed: int = typer.Option(0, "--seed", help="Random seed for folds and the classifier."),
):
    """Train a detector: features, stratified k-fold CV (printed), threshold on out-of-fold scores, fit on all."""
    if folds < 2:
        raise UsageError("--folds must be at least 2")
    if model.is_dir():
        raise UsageError(f"--model is a folder: {model}")
    if not (model.parent if str(model.parent) else Path(".")).exists():
        raise UsageError(f"folder of --model does not exist: {model.parent}")
    with progress_display() as progress:
        fitted, summary = api.train(
            data, blocks=blocks, settings=parse_settings(settings), classifier=classifier, n_splits=folds,
            max_fpr=max_fpr, jobs=jobs, cache_dir=opt.resolve_cache(cache_dir, no_cache), max_pixels=max_pixels,
            random_state=seed, progress=progress,
        )
    report_errors(summary.errors, summary.n_rows, summary.n_failed)
    m = fitted.card["cv_metrics"]
    t = fitted.card["training_data"]
    table = Table(title=f"{t['cv_folds']}-fold cross-validation ({classifier}, {fitted.card['n_features']} features, "
                        f"{t['n_real']} real / {t['n_fake']} fake)")
    for col in ("AUC", "AP", "balanced acc", "EER", "acc real", "acc fake", "threshold"):
        table.add_column(col, justify="right")
    f = lambda k: f"{m.get(k, float('nan')):.4f}"  # noqa: E731
    table.add_row(f("auc"), f("ap"), f("balanced_accuracy"), f("eer"), f("acc_real"), f("acc_fake"), f"{fitted.threshold:.4f}")
    out_console.print(table)
    fitted.save(model)
    out_console.print(f"wrote model to {model}", highlight=False, soft_wrap=True)
