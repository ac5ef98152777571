"""``forensics audit``: can provenance alone (size, format, JPEG quality, file size), or where the face sits
in the picture (``--framing``), predict the label?"""

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
from forensics.pipelines.audit import NOTABLE_AUC, audit_data, audit_message, framing_message, strongest
from forensics.pipelines.evaluate import json_ready
from forensics.reports.io import write_text_atomic


@app.command("audit")
@handle_errors
def audit_command(
    data: List[Path] = typer.Argument(..., help="Labelled data: folders with real/ and fake/, or CSV manifests (path,label)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="JSON file to write: columns (AUC per column), all, flagged."),
    framing: bool = typer.Option(False, "--framing", help="Also audit where the largest face sits and how it is turned "
                                 "(box, eye line, eye distance, roll, head turn); needs pip install 'forensics\\[faces]'."),
    jobs: int = opt.JOBS,
    cache_dir: Path = opt.CACHE_DIR,
    no_cache: bool = opt.NO_CACHE,
    max_pixels: int = opt.MAX_PIXELS,
):
    """Shortcut audit: how well width, height, aspect, format, JPEG quality and file size predict the
    label, each alone (AUC) and all together (cross-validated AUC of a shallow tree). Flags > 0.75.
    With --framing, the same for where the largest face sits in the picture and how it is turned."""
    if out is not None:
        _check_writable(out)
    with progress_display() as progress:
        result = audit_data(data, jobs=jobs, cache_dir=opt.resolve_cache(cache_dir, no_cache), max_pixels=max_pixels,
                            progress=progress, framing=framing)
    _print_table(f"shortcut audit ({result['n_real']} real / {result['n_fake']} fake)", "diag column", result)
    warning = audit_message(result)
    if warning:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    else:
        out_console.print(f"no shortcut: no diag column predicts the label above AUC {result['flag_auc']}", highlight=False)
    if framing:
        f = result["framing"]
        _print_table(f"framing audit (a face in {f['n_faces_real']} of {f['n_real']} real, {f['n_faces_fake']} of "
                     f"{f['n_fake']} fake)", "framing column", f)
        warning = framing_message(f)
        if warning:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
        elif strongest(f)[1] >= NOTABLE_AUC:
            name, auc = strongest(f)
            out_console.print(f"framing alone: AUC up to {auc:.2f} ({name}), under the flag level ({f['flag_auc']}) but not "
                              "chance: a model's score may count some of it, whether it knows positions or sees the face's size "
                              "in global statistics (benchmarks/accuracy.py --framing measures how much)", highlight=False, soft_wrap=True)
        else:
            out_console.print(f"no framing shortcut: no framing column predicts the label above AUC {f['flag_auc']}",
                              highlight=False, soft_wrap=True)
    if out is not None:
        write_text_atomic(out, json.dumps(json_ready(result), indent=2) + "\n")
        out_console.print(f"wrote {out}", highlight=False, soft_wrap=True)


def _print_table(title: str, heading: str, result: dict) -> None:
    table = Table(title=title)
    table.add_column(heading)
    table.add_column("AUC", justify="right")
    table.add_column("flag")
    rows = list(result["columns"].items()) + [(f"all ({result['cv_folds']}-fold CV, tree)", result["all"])]
    for name, auc in rows:
        bad = auc is not None and auc > result["flag_auc"]
        table.add_row(name, "-" if auc is None else f"{auc:.4f}", "[bold red]shortcut[/]" if bad else "")
    out_console.print(table)
