"""Helpers shared by the tests that drive the command line in-process (Typer's CliRunner)."""

from __future__ import annotations

from typer.testing import CliRunner

from forensics.cli import app

runner = CliRunner()


def run(*args, ok: bool = True):
    """Invoke ``forensics ARGS...``; with ``ok``, assert exit code 0 and no traceback on stderr."""
    result = runner.invoke(app, [str(a) for a in args])
    if ok:
        assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
        assert "Traceback" not in result.stderr
    return result


def flat(text: str) -> str:
    """``text`` with every run of whitespace as one space (Rich wraps long lines)."""
    return " ".join(text.split())
