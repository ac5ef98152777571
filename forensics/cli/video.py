"""``forensics video``: score videos frame by frame with an image model, one CSV row per video."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from forensics.cli import options as opt
from forensics.cli.app import STATE, app, err_console, fail, handle_errors, out_console, progress_display, report_errors
from forensics.model import ForensicModel
from forensics.video import AGGREGATES, DEFAULT_AGGREGATE, SCORE_FPS, SCORE_MAX_FRAMES, score_videos


@app.command("video")
@handle_errors
def video_command(
    model: Path = typer.Argument(..., help="Model file written by 'forensics train'."),
    inputs: List[Path] = typer.Argument(..., help="Video files and folders (searched recursively for mp4, avi, mov, mkv, webm)."),
    out: Path = typer.Option(..., "--out", "-o", help="CSV to write: one row per video (path, n_frames, prob_fake, label, error, every aggregate...)."),
    frames_out: Optional[Path] = typer.Option(None, "--frames-out", help="CSV to write: one row per scored frame (path, frame_index, time_s, face_box, prob_fake, error)."),
    every: Optional[int] = typer.Option(None, "--every", help="Score every N-th frame."),
    fps: Optional[float] = typer.Option(None, "--fps", help=f"Score this many frames per second of video \\[default: {SCORE_FPS:g}]."),
    max_frames: int = typer.Option(SCORE_MAX_FRAMES, "--max-frames", help="At most this many frames per video, spread over the whole video."),
    face_crop: Optional[bool] = typer.Option(None, "--face-crop/--no-face-crop", help="Score the largest face of each frame (needs yuface) \\[default: as the model was trained]."),
    aggregate: str = typer.Option(DEFAULT_AGGREGATE, "--aggregate", help=f"Frame scores to prob_fake: {', '.join(AGGREGATES)}."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes, each decoding and scoring whole videos (-1: one per CPU)."),
    cache_dir: Path = opt.CACHE_DIR,
    no_cache: bool = opt.NO_CACHE,
):
    """Score videos: decode frames as a stream, sample them, optionally crop the face, score each frame
    with the image model, and aggregate per video. Unreadable videos get a row with an error. Frame
    features go to the feature cache (by file hash and frame index): a rerun after an interruption,
    or with another model of the same blocks, only decodes the frames already done."""
    if not STATE["debug"]:
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # OpenCV's own warnings on bad files
    cache = opt.resolve_cache(cache_dir, no_cache)
    m = ForensicModel.load(model)
    if face_crop is not None and face_crop != m.spec.face_crop:
        err_console.print(f"[yellow]warning:[/] --{'' if face_crop else 'no-'}face-crop, but the model was trained "
                          f"{'with' if m.spec.face_crop else 'without'} face crops: its scores may not mean much",
                          highlight=False, soft_wrap=True)
    with progress_display() as progress:
        summary = score_videos(m, inputs, out, frames_out=frames_out, every=every, fps=fps, max_frames=max_frames,
                               face_crop=face_crop, aggregate=aggregate, progress=progress, jobs=jobs, cache_dir=cache)
    report_errors(summary.errors, summary.n_videos, summary.n_failed)
    if summary.face_crop and summary.n_no_face:
        err_console.print(f"[yellow]note:[/] no face found in {summary.n_no_face} of {summary.n_frames} frames; "
                          f"those frames were scored whole (empty face_box)", highlight=False, soft_wrap=True)
    extra = f"; frames in {summary.frames_output}" if summary.frames_output else ""
    out_console.print(
        f"scored {summary.n_ok} of {summary.n_videos} videos ({summary.n_frames} frames, prob_fake = {aggregate} of frame scores): "
        f"{summary.n_fake} fake, {summary.n_real} real; wrote {summary.output}{extra}",
        highlight=False,
        soft_wrap=True,
    )
    if summary.n_ok == 0:
        fail("no video could be scored", 1)
