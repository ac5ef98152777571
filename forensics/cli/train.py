"""``forensics train``: labelled folders -> cross-validated model file."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from forensics import api
from forensics.cli import options as opt
from forensics.cli.app import (app, check_model_output, handle_errors, metrics_table, out_console, parse_settings,
                               progress_display, report_errors, shortcut_warning)
from forensics.errors import UsageError
from forensics.pipelines.tuning import DEFAULT_INNER_FOLDS, DEFAULT_N_ITER, describe


@app.command("train")
@handle_errors
def train_command(
    data: List[Path] = typer.Argument(..., help="Folders with real/ and fake/ below them, or CSV manifests (path,label); pooled."),
    model: Path = typer.Option(..., "--model", "-m", help="Model file to write (.skops)."),
    classifier: str = typer.Option("xgb", "--classifier", "-c", help="xgb (default), svm, logreg, blend (mean of the xgb and svm probabilities), or hybrid (mean of xgb on the handcrafted blocks and a logistic regression on the cnn block: needs --blocks with cnn and another block)."),
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
    tune: bool = typer.Option(False, "--tune", help="Tune the classifier's hyper-parameters (randomized search, ROC AUC) inside every CV fold (nested CV: the printed CV is honest), then once on all training images for the model. Costs about (folds + 1) x tune-folds x tune-iter fits."),
    tune_iter: Optional[int] = typer.Option(None, "--tune-iter", help=f"With --tune: candidate settings per search \\[default: {DEFAULT_N_ITER}]."),
    tune_folds: Optional[int] = typer.Option(None, "--tune-folds", help=f"With --tune: inner CV folds per search \\[default: {DEFAULT_INNER_FOLDS}]."),
    weights: str = typer.Option("balanced", "--weights", help="balanced (default): each DATA argument, and real and fake within it, carries equal total weight in the fit; none: every image counts once."),
    augment: Optional[str] = typer.Option(None, "--augment", help="Also train on perturbed copies of every image, one per perturbation (syntax of evaluate --perturb, e.g. jpeg:75,resize:0.5); an image's copies stay in its CV fold. More robust to that processing, but more processed real images called fake: see the README."),
    holdout: float = typer.Option(0.0, "--holdout", help="Set this fraction of the images (e.g. 0.2; stratified, whole videos, seeded by --seed) aside before CV, tuning, calibration and the fit, and score the final model once on it (0: off)."),
):
    """Train a detector: features, stratified k-fold CV (printed), threshold on out-of-fold scores, fit on all.

    --tune makes the CV nested (a search inside every fold); --holdout scores the final model once on an
    untouched test split.
    """
    if folds < 2:
        raise UsageError("--folds must be at least 2")
    if not tune and (tune_iter is not None or tune_folds is not None):
        raise UsageError("--tune-iter and --tune-folds need --tune")
    check_model_output(model)  # before training, not after
    with progress_display() as progress:
        fitted, summary = api.train(
            data, blocks=blocks, settings=parse_settings(settings), classifier=classifier, n_splits=folds,
            max_fpr=max_fpr, jobs=jobs, cache_dir=opt.resolve_cache(cache_dir, no_cache), max_pixels=max_pixels,
            random_state=seed, progress=progress, calibration=calibration,
            face_crop=face_crop or None, warm_start=warm_start, video_every=video_every, video_fps=video_fps,
            video_max_frames=video_max_frames, scheduler=scheduler, tune=tune, holdout=holdout, weights=weights, augment=augment,
            tune_iter=DEFAULT_N_ITER if tune_iter is None else tune_iter,
            tune_folds=DEFAULT_INNER_FOLDS if tune_folds is None else tune_folds,
        )
    report_errors(summary.errors, summary.n_rows, summary.n_failed)
    shortcut_warning(fitted.card)
    m = fitted.card["cv_metrics"]
    t = fitted.card["training_data"]
    title = (f"{t['cv_folds']}-fold {'nested ' if tune else ''}cross-validation ({classifier}, {fitted.card['n_features']} "
             f"features, {t['n_real']} real / {t['n_fake']} fake)")
    rows = [("CV", m, fitted.threshold)]
    held = fitted.card.get("holdout_metrics")
    if held:
        title += f" and untouched held-out {t['holdout']['fraction']:.0%} ({held['n_real']} real / {held['n_fake']} fake)"
        rows.append(("held-out", held, fitted.threshold))
    out_console.print(metrics_table(title, rows))
    cal = fitted.card.get("calibration", {})
    out_console.print(f"prob_fake calibration: {cal.get('method', 'none')} (Brier score {m.get('brier', float('nan')):.4f} "
                      f"on cross-fitted out-of-fold scores)", highlight=False, soft_wrap=True)
    if fitted.card.get("tuning"):
        out_console.print(describe(fitted.card["tuning"]), highlight=False, soft_wrap=True)
    vids = t.get("videos")
    if vids:
        out_console.print(f"videos: {vids['n_videos']} videos gave {vids['n_frames']} training frames "
                          f"(cross-validation keeps each video's frames in one fold)", highlight=False, soft_wrap=True)
    aug = t.get("augment")
    if aug:
        left = f", {aug['n_left_out']} left out (see the card)" if aug["n_left_out"] else ""
        out_console.print(f"augment: {aug['n_rows']} perturbed copies ({', '.join(aug['perturbations'])}) beside the "
                          f"training images{left}; cross-validation keeps an image's copies in its fold, and the CV "
                          f"figures above are over clean and perturbed rows", highlight=False, soft_wrap=True)
    rounds = fitted.card.get("rounds") or []
    if warm_start is not None and len(rounds) >= 2:
        before, after = rounds[-2].get("n_trees"), rounds[-1].get("n_trees")
        out_console.print(f"warm start: continued {warm_start} ({before} trees -> {after}); training round {len(rounds)} "
                          f"(CV above is on the new data only)", highlight=False, soft_wrap=True)
    fitted.save(model)
    out_console.print(f"wrote model to {model}", highlight=False, soft_wrap=True)
