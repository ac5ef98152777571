"""``forensics blocks``: list the feature blocks, their presets, sizes and references."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from forensics.cli.app import app, handle_errors, out_console
from forensics.features.base import PRESETS, all_blocks


@app.command("blocks")
@handle_errors
def blocks_command():
    """List feature blocks (name, presets, number of features, cost, reference) and presets."""
    table = Table(title="feature blocks")
    for col in ("block", "presets", "features", "cost", "settings", "reference"):
        table.add_column(col, overflow="fold")
    for name, b in all_blocks().items():
        n = "provenance" if not b.classifier_input else str(len(b.feature_names()))
        settings = ", ".join(f"{k}={v}" for k, v in b.defaults.items())
        table.add_row(name, ",".join(b.presets) or "-", n, b.cost, settings, b.reference)
    out_console.print(table)
    for p, desc in PRESETS.items():
        out_console.print(f"preset [bold]{p}[/]: {escape(desc)}", highlight=False)
