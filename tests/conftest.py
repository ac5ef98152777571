"""Shared fixtures. Tests never touch ../shared/data nor the user's cache folder."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Point the default feature cache at a temporary folder for the whole session."""
    old = os.environ.get("FORENSICS_CACHE_DIR")
    os.environ["FORENSICS_CACHE_DIR"] = str(tmp_path_factory.mktemp("forensics-cache"))
    yield
    if old is None:
        os.environ.pop("FORENSICS_CACHE_DIR", None)
    else:
        os.environ["FORENSICS_CACHE_DIR"] = old
