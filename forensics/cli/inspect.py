"""``forensics inspect``: the forensic views of one image (and, with a model, its score and evidence)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from forensics.api import _check_writable
from forensics.cli import options as opt
from forensics.cli.app import app, handle_errors, out_console, progress_display
from forensics.model import ForensicModel
from forensics.reports.inspect import MAX_PATCHES, inspect_image, render_png, write_html


@app.command("inspect")
@handle_errors
def inspect_command(
    image: Path = typer.Argument(..., help="The image file to inspect."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="Model file written by 'forensics train': adds the score, its uncertainty, the patch heat map, the features that pushed the score and the training classes' mean spectra. Without it: the maps only."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML page to write (self-contained: images embedded) \\[default: inspect.html, unless only --png is given]."),
    png: Optional[Path] = typer.Option(None, "--png", help="Also (or only) write every panel as one PNG figure."),
    window: Optional[int] = typer.Option(None, "--window", min=8, help="Side of the patch windows in pixels \\[default: a quarter of the shorter side, a multiple of 16 within 16-96, larger when more than --max-patches windows would be needed]."),
    max_patches: int = typer.Option(MAX_PATCHES, "--max-patches", min=1, help="Most patch windows scored (the default window grows to stay below)."),
    top: int = typer.Option(12, "--top", min=1, help="Features listed among those that pushed the score most."),
    max_pixels: int = opt.MAX_PIXELS,
):
    """One page of forensic views of IMAGE: the image, its log-magnitude spectrum and azimuthal profile
    (against the training classes' means), ELA (JPEG q=90), noise residual and LBP maps; with --model,
    the score with its uncertainty, a patch heat map and the features that pushed the score most."""
    if out is None and png is None:
        out = Path("inspect.html")
    for target in (out, png):
        if target is not None:
            _check_writable(target)
    m = ForensicModel.load(model) if model is not None else None
    with progress_display() as progress:
        insp = inspect_image(image, m, model_name=model.name if model is not None else None, window=window,
                             max_patches=max_patches, top=top, max_pixels=max_pixels, progress=progress)
    if out is not None:
        write_html(insp, out)
    if png is not None:
        render_png(insp, png)
    verdict = ""
    if insp.score is not None:
        s = insp.score
        verdict = f": prob_fake {s.prob_fake:.3f} ({s.label or 'no score'}, threshold {s.threshold:.3f})"
    written = " and ".join(str(p) for p in (out, png) if p is not None)
    out_console.print(f"{image.name}{verdict}; wrote {written}", highlight=False, soft_wrap=True)
