"""``forensics audit``: can provenance alone (size, format, JPEG quality, file size) predict the label?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from forensics.api import _check_writable
from forensics.cli import options as opt
from forensics.cli.app import app, err_console, handle_errors, out_console, progress_display
from forensics.pipelines.audit import audit_data, audit_message
from forensics.pipelines.evaluate import json_ready
from forensics.reports.io import write_text_atomic


@app.command("audit")
@handle_errors
def audit_command(
    data: List[Path] = typer.Argument(..., help="Labelled data: folders with real/ and fake/, or CSV manifests (path,label)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="JSON file to write: columns (AUC per column), all, flagged."),
    jobs: int = opt.JOBS,
    cache_dir: Path = opt.CACHE_DIR,
    no_cache: bool = opt.NO_CACHE,
    max_pixels: int = opt.MAX_PIXELS,
):
    """Shortcut audit: how well width, height, aspect, format, JPEG quality and file size predict the
    label, each alone (AUC) and all together (cross-validated AUC of a shallow tree). Flags > 0.75."""
    if out is not None:
        _check_writable(out)
    with progress_display() as progress:
        stage = (lambda d, t: progress("reading images", d, t)) if progress else None
        result = audit_data(data, jobs=jobs, cache_dir=opt.resolve_cache(cache_dir, no_cache), max_pixels=max_pixels, progress=stage)
    table = Table(title=f"shortcut audit ({result['n_real']} real / {result['n_fake']} fake)")
    table.add_column("diag column")
    table.add_column("AUC", justify="right")
    table.add_column("flag")
    rows = list(result["columns"].items()) + [(f"all ({result['cv_folds']}-fold CV, tree)", result["all"])]
    for name, auc in rows:
        bad = auc is not None and auc > result["flag_auc"]
        table.add_row(name, "-" if auc is None else f"{auc:.4f}", "[bold red]shortcut[/]" if bad else "")
    out_console.print(table)
    warning = audit_message(result)
    if warning:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    else:
        out_console.print(f"no shortcut: no diag column predicts the label above AUC {result['flag_auc']}", highlight=False)
    if out is not None:
        write_text_atomic(out, json.dumps(json_ready(result), indent=2) + "\n")
        out_console.print(f"wrote {out}", highlight=False, soft_wrap=True)
