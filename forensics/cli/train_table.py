"""``forensics train-table``: Parquet feature tables -> model file, trained with xgboost.dask on a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from forensics.cli import options as opt
from forensics.cli.app import (app, check_model_output, err_console, handle_errors, metrics_table, out_console, parse_settings,
                               progress_display, shortcut_warning)


@app.command("train-table")
@handle_errors
def train_table_command(
    tables: List[Path] = typer.Argument(..., help="Parquet feature tables written by 'forensics extract' on labelled data (columns label, error, diag__*, features); pooled."),
    model: Path = typer.Option(..., "--model", "-m", help="Model file to write (.skops)."),
    scheduler: str = opt.TABLE_SCHEDULER,
    jobs: int = typer.Option(2, "--jobs", "-j", help="Worker processes of a local cluster (-1: one per CPU)."),
    holdout: float = typer.Option(0.2, "--holdout", help="Fraction of images kept out of the fit for the reported metrics, the calibration and the threshold."),
    max_fpr: Optional[float] = typer.Option(None, "--max-fpr", help="Pick the threshold for this false-positive rate on real holdout images (else best balanced accuracy)."),
    calibration: str = typer.Option("auto", "--calibration", help="Map scores to probabilities, fitted on the holdout scores: auto, isotonic, sigmoid or none."),
    settings: opt.SettingsList = opt.SETTINGS,
    seed: int = typer.Option(0, "--seed", help="Random seed for the holdout split and the classifier."),
):
    """Train the XGBoost detector on feature tables with xgboost.dask (tables larger than one machine).

    Evaluation is a holdout split (no cross-validation: k fits on a cluster cost k times as much); the
    model is fitted on the rest. The model file is the usual one: score, report and evaluate use it.
    """
    from forensics.pipelines.train_table import train_table

    check_model_output(model)  # before training, not after

    with progress_display() as progress:
        stage = (lambda done, total: progress("train", done, total)) if progress else None
        result = train_table(tables, scheduler=scheduler, jobs=jobs, holdout=holdout, max_fpr=max_fpr,
                             calibration=calibration, settings=parse_settings(settings), random_state=seed, progress=stage)
    fitted = result.model
    if result.n_failed:
        err_console.print(f"[yellow]{result.n_failed} of {result.n_rows} rows have no features (unreadable images); left out[/]",
                          highlight=False, soft_wrap=True)
    shortcut_warning(fitted.card)
    m = fitted.card["cv_metrics"]
    ev = fitted.card["training_data"]["evaluation"]
    out_console.print(metrics_table(f"holdout ({ev['fraction']:.0%}: {m['n_real']} real / {m['n_fake']} fake; xgb fitted on "
                                    f"{ev['n_train']} images, {fitted.card['n_features']} features)", [("holdout", m, fitted.threshold)]))
    cal = fitted.card.get("calibration", {})
    out_console.print(f"prob_fake calibration: {cal.get('method', 'none')} (Brier score {m.get('brier', float('nan')):.4f} "
                      f"on cross-fitted holdout scores)", highlight=False, soft_wrap=True)
    fitted.save(model)
    out_console.print(f"wrote model to {model}", highlight=False, soft_wrap=True)
