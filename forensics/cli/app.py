"""Root Typer app: global options, error handling, progress display."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
import os
import sys
from contextlib import contextmanager
from typing import Optional

import typer
from rich.console import Console

from forensics import __version__
from forensics.errors import ForensicsError, UsageError

app = typer.Typer(
    name="forensics",
    help="Tell real photographs from AI-generated, deepfake and edited images with classical forensic features.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

err_console = Console(stderr=True)
out_console = Console()
STATE = {"debug": False, "quiet": False}
#: Progress labels of the stages the API reports.
PROGRESS_LABELS = {"extract": "features", "train": "cross-validation + fit", "score": "scoring"}
#: When stderr is not a terminal (a log file, a batch job), progress is printed as plain lines: one when
#: a stage starts, one when it ends, and between them at most one every this many seconds.
PLAIN_PROGRESS_EVERY = 30.0


def _version(value: bool):
    if value:
        typer.echo(f"forensics {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output, only results and errors."),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Show the version."),
):
    STATE["debug"] = debug
    STATE["quiet"] = quiet
    from forensics.runtime import tune_process

    tune_process()
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not debug:  # dask.distributed (--scheduler) logs every connection at INFO; its workers read the variable
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
        logging.getLogger("distributed").setLevel(logging.ERROR)


def fail(message: str, code: int = 2):
    from rich.markup import escape  # messages may hold brackets, e.g. pip install 'forensics[cnn]'

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(func):
    """Known errors become one-line messages and non-zero exit codes; tracebacks only with --debug."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except (UsageError, ValueError) as exc:
            if STATE["debug"]:
                raise
            fail(str(exc), 2)
        except ForensicsError as exc:
            if STATE["debug"]:
                raise
            fail(str(exc), 1)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Exception as exc:  # noqa: BLE001
            if STATE["debug"]:
                raise
            fail(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", 1)

    return wrapper


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def plain_progress(write, *, every: float | None = None, clock=None):
    """A ``progress(stage, done, total)`` callback that writes plain lines through ``write``, e.g.
    ``features: 120/1428 (8 %), 0:00:31 elapsed, about 0:05:38 left``: when a stage starts, when it
    ends, and in between at most once every ``every`` seconds (:data:`PLAIN_PROGRESS_EVERY`)."""
    import time

    every = PLAIN_PROGRESS_EVERY if every is None else every
    clock = clock or time.monotonic
    started: dict[str, float] = {}
    last: dict[str, float] = {}

    def update(stage: str, done: int, total: int):
        now = clock()
        first = stage not in started
        if first:
            started[stage] = now
        finished = total > 0 and done >= total
        if not (first or finished or now - last[stage] >= every):
            return
        last[stage] = now
        elapsed = now - started[stage]
        line = f"{PROGRESS_LABELS.get(stage, stage)}: {done}/{total}"
        if total > 0:
            line += f" ({100 * done // total} %)"
        if not first or finished:
            line += f", {_clock(elapsed)} elapsed"
        if 0 < done < total:
            line += f", about {_clock(elapsed / done * (total - done))} left"
        write(line)

    return update


@contextmanager
def progress_display():
    """Yield a ``progress(stage, done, total)`` callback: rich progress bars on a terminal, plain
    lines (:func:`plain_progress`) when stderr goes to a file or a pipe, ``None`` with ``--quiet``."""
    if STATE["quiet"]:
        yield None
        return
    if not err_console.is_terminal:
        yield plain_progress(lambda line: err_console.print(line, markup=False, highlight=False, soft_wrap=True))
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as prog:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int):
            if stage not in tasks:
                tasks[stage] = prog.add_task(PROGRESS_LABELS.get(stage, stage), total=total)
            prog.update(tasks[stage], completed=done, total=total)

        yield update


def parse_settings(values: list[str] | None) -> dict:
    """``--set BLOCK.KEY=VALUE`` (VALUE as JSON, else a string) to ``{block: {key: value}}``."""
    out: dict = {}
    for item in values or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise UsageError(f"--set expects BLOCK.KEY=VALUE, got {item!r}")
        lhs, raw = item.split("=", 1)
        block, key = lhs.split(".", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if isinstance(value, list):
            value = tuple(value)
        out.setdefault(block.strip(), {})[key.strip()] = value
    return out


def check_model_output(model) -> None:
    """Refuse a ``--model`` path that cannot be written, before any training work (:class:`UsageError`)."""
    from pathlib import Path

    from forensics.api import _check_writable

    model = Path(model)
    if model.is_dir():
        raise UsageError(f"--model is a folder: {model}")
    if not (model.parent if str(model.parent) else Path(".")).exists():
        raise UsageError(f"folder of --model does not exist: {model.parent}")
    _check_writable(model)


def shortcut_warning(card: dict) -> None:
    """Print the shortcut audit's warning from a model card, if it flagged anything."""
    from rich.markup import escape

    from forensics.pipelines.audit import audit_message

    warning = audit_message(card.get("shortcut_audit") or {})
    if warning:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)


def report_errors(errors, n_rows: int, n_failed: int) -> None:
    """Print the summary of distinct errors (most frequent first)."""
    if not errors:
        return
    err_console.print(f"[yellow]{sum(errors.values())} of {n_rows} files had problems ({n_failed} could not be processed):[/]", highlight=False)
    for msg, count in errors.most_common(10):
        err_console.print(f"  {count:>6} x {msg}", highlight=False, soft_wrap=True)
    if len(errors) > 10:
        err_console.print(f"  ... and {len(errors) - 10} other distinct errors", highlight=False)


def metrics_table(title: str, rows: list[tuple[str, dict, float]]):
    """A rich table of detection metrics, one row per ``(label, metrics, threshold)``; the label
    column is shown only when there are several rows."""
    from rich.table import Table

    from forensics.pipelines.metrics import auc_interval_text

    intervals = [f"{label} {auc_interval_text(m)}" for label, m, _ in rows if auc_interval_text(m)]
    caption = f"AUC 95 % confidence interval (DeLong; the number of images, not retraining): {'; '.join(intervals)}" if intervals else None
    table = Table(title=title, caption=caption, caption_justify="left")
    labelled = len(rows) > 1
    if labelled:
        table.add_column("", no_wrap=True)
    for col in ("AUC", "AP", "balanced acc", "EER", "acc real", "acc fake", "threshold"):
        table.add_column(col, justify="right")
    for label, m, threshold in rows:
        cells = [f"{m.get(k, math.nan):.4f}" for k in ("auc", "ap", "balanced_accuracy", "eer", "acc_real", "acc_fake")]
        table.add_row(*([label] if labelled else []), *cells, f"{threshold:.4f}")
    return table


def main():  # console-script entry point
    from forensics.cli import blocks, demo, extract, score, train, video  # noqa: F401 - registers commands
    from forensics.cli import audit, evaluate, report  # noqa: F401 - registers commands
    from forensics.cli import train_table  # noqa: F401 - registers commands

    app()


# Register commands when the app is imported by tests, too.
from forensics.cli import blocks as _blocks, demo as _demo, extract as _extract, score as _score, train as _train, video as _video  # noqa: E402,F401
from forensics.cli import audit as _audit, evaluate as _evaluate, report as _report  # noqa: E402,F401
from forensics.cli import train_table as _train_table  # noqa: E402,F401
from forensics.cli import inspect as _inspect  # noqa: E402,F401


def _reflow(doc: str) -> str:
    """A docstring as help text: the lines of each paragraph joined. Typer's rich mode keeps a source
    line break as a line break, which cut sentences in the middle (in the command list, too)."""
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


for _info in app.registered_commands:
    _info.help = _reflow(_info.help or inspect.getdoc(_info.callback) or "")
