"""Helpers for tests that check how often files are read and whether images are decoded."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


@contextmanager
def counting_reads(monkeypatch):
    """Within the block, every ``Path.read_bytes`` call appends the path (as text) to the list yielded."""
    reads: list[str] = []
    real_read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: reads.append(str(self)) or real_read(self))
    try:
        yield reads
    finally:
        monkeypatch.setattr(Path, "read_bytes", real_read)


def forbid_decoding(monkeypatch, module) -> None:
    """Make ``module.load_image_bytes`` (the loader as that module imported it) fail the test if called."""

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(module, "load_image_bytes", no_decoding)
