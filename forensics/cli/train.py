"""``forensics train``: labelled folders -> cross-validated model file."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from forensics import api
from forensics.cli import options as opt
from forensics.cli.app import app, err_console, handle_errors, out_console, parse_settings, progress_display, report_errors
from forensics.errors import UsageError
from forensics.pipelines.audit import audit_message


@app.command("train")
@handle_errors
def train_command(
    data: List[Path] = typer.Argument(..., help="Folders with real/ and fake/ below them, or CSV manifests (path,label); pooled."),
    model: Path = typer.Option(..., "--model", "-m", help="Model file to write (.skops)."),
    classifier: str = typer.Option("xgb", "--classifier", "-c", help="xgb (default), svm or logreg."),
    blocks: Optional[str] = opt.BLOCKS_OR_MODEL,
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds."),
    max_fpr: Optional[float] = typer.Option(None, "--max-fpr", help="Pick the threshold for this false-positive rate on real images (else best balanced accuracy)."),
    jobs: int = opt.JOBS,
    cache_dir: Path = opt.CACHE_DIR,
    no_cache: bool = opt.NO_CACHE,
    max_pixels: int = opt.MAX_PIXELS,
    settings: opt.SettingsList = opt.SETTINGS,
    seed: int = typer.Option(0, "--seed", help="Random seed for folds and the classifier."),
    face_crop: bool = opt.FACE_CROP,
    scheduler: Optional[str] = opt.SCHEDULER,
    warm_start: Optional[Path] = typer.Option(None, "--warm-start", help="Continue this xgb model with the new DATA (adds trees; keeps its blocks and settings); the card lists every round."),
    video_every: Optional[int] = typer.Option(None, "--video-every", help="Videos in DATA: use every N-th frame \\[default: 1 frame per second]."),
    video_fps: Optional[float] = typer.Option(None, "--video-fps", help="Videos in DATA: frames per second of video to use \\[default: 1]."),
    video_max_frames: int = typer.Option(32, "--video-max-frames", help="Videos in DATA: at most this many frames per video, spread over it."),
    calibration: str = typer.Option("auto", "--calibration", help="Map scores to probabilities, fitted on out-of-fold scores: auto (sigmoid below 1000 images, else isotonic), isotonic, sigmoid or none."),
):
    """Train a detector: features, stratified k-fold CV (printed), threshold on out-of-fold scores, fit on all."""
    if folds < 2:
        raise UsageError("--folds must be at least 2")
    if model.is_dir():
        raise UsageError(f"--model is a folder: {model}")
    if not (model.parent if str(model.parent) else Path(".")).exists():
        raise UsageError(f"folder of --model does not exist: {model.parent}")
    api._check_writable(model)  # before training, not after
    with progress_display() as progress:
        fitted, summary = api.train(
            data, blocks=blocks, settings=parse_settings(settings), classifier=classifier, n_splits=folds,
            max_fpr=max_fpr, jobs=jobs, cache_dir=opt.resolve_cache(cache_dir, no_cache), max_pixels=max_pixels,
            random_state=seed, progress=progress, calibration=calibration,
            face_crop=face_crop or None, warm_start=warm_start, video_every=video_every, video_fps=video_fps,
            video_max_frames=video_max_frames, scheduler=scheduler,
        )
    report_errors(summary.errors, summary.n_rows, summary.n_failed)
    warning = audit_message(summary.extra.get("shortcut_audit") or {})
    if warning:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    m = fitted.card["cv_metrics"]
    t = fitted.card["training_data"]
    table = Table(title=f"{t['cv_folds']}-fold cross-validation ({classifier}, {fitted.card['n_features']} features, "
                        f"{t['n_real']} real / {t['n_fake']} fake)")
    for col in ("AUC", "AP", "balanced acc", "EER", "acc real", "acc fake", "threshold"):
        table.add_column(col, justify="right")
    f = lambda k: f"{m.get(k, float('nan')):.4f}"  # noqa: E731
    table.add_row(f("auc"), f("ap"), f("balanced_accuracy"), f("eer"), f("acc_real"), f("acc_fake"), f"{fitted.threshold:.4f}")
    out_console.print(table)
    cal = fitted.card.get("calibration", {})
    out_console.print(f"prob_fake calibration: {cal.get('method', 'none')} (Brier score {m.get('brier', float('nan')):.4f} "
                      f"on cross-fitted out-of-fold scores)", highlight=False, soft_wrap=True)
    vids = t.get("videos")
    if vids:
        out_console.print(f"videos: {vids['n_videos']} videos gave {vids['n_frames']} training frames "
                          f"(cross-validation keeps each video's frames in one fold)", highlight=False, soft_wrap=True)
    rounds = fitted.card.get("rounds") or []
    if warm_start is not None and len(rounds) >= 2:
        before, after = rounds[-2].get("n_trees"), rounds[-1].get("n_trees")
        out_console.print(f"warm start: continued {warm_start} ({before} trees -> {after}); training round {len(rounds)} "
                          f"(CV above is on the new data only)", highlight=False, soft_wrap=True)
    fitted.save(model)
    out_console.print(f"wrote model to {model}", highlight=False, soft_wrap=True)
