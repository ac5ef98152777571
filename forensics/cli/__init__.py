"""The ``forensics`` command line: a root Typer app with one module per command."""

from forensics.cli.app import app, main

__all__ = ["app", "main"]
