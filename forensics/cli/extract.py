"""``forensics extract``: images -> features table (Parquet)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from forensics import api
from forensics.cli import options as opt
from forensics.cli.app import app, err_console, fail, handle_errors, out_console, parse_settings, progress_display, report_errors


@app.command("extract")
@handle_errors
def extract_command(
    data: List[Path] = typer.Argument(..., help="Folders with real/ and fake/ (or CSV manifests path,label), or any images and folders (unlabelled)."),
    out: Path = typer.Option(..., "--out", "-o", help="Parquet file to write."),
    blocks: str = opt.BLOCKS,
    jobs: int = opt.JOBS,
    cache_dir: Path = opt.CACHE_DIR,
    no_cache: bool = opt.NO_CACHE,
    max_pixels: int = opt.MAX_PIXELS,
    settings: opt.SettingsList = opt.SETTINGS,
    face_crop: bool = opt.FACE_CROP,
    scheduler: Optional[str] = opt.SCHEDULER,
):
    """Compute forensic features for every image: one row per file (path, label, error, diag__*, features)."""
    with progress_display() as progress:
        summary = api.extract(
            data, out, blocks=blocks, settings=parse_settings(settings), jobs=jobs,
            cache_dir=opt.resolve_cache(cache_dir, no_cache), max_pixels=max_pixels, progress=progress,
            face_crop=face_crop, scheduler=scheduler,
        )
    report_errors(summary.errors, summary.n_rows, summary.n_failed)
    if face_crop:
        import pyarrow.parquet as pq

        boxes = pq.read_table(summary.output, columns=["face_box", "error"]).to_pydict()
        no_face = sum(1 for b, e in zip(boxes["face_box"], boxes["error"]) if b == "")
        if no_face:
            err_console.print(f"[yellow]note:[/] no face found in {no_face} images; their whole image was used (empty face_box)",
                              highlight=False, soft_wrap=True)
    out_console.print(f"wrote {summary.n_rows} rows to {summary.output} ({summary.n_ok} with features; computed "
                      f"{summary.extra['features_computed']}, from cache {summary.extra['features_from_cache']})",
                      highlight=False, soft_wrap=True)
    if summary.n_ok == 0:
        fail("no image could be processed", 1)
