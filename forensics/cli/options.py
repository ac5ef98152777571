"""Options shared by several commands (one definition each, so help texts stay consistent)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from forensics.features.base import PRESETS, all_blocks
from forensics.loading import DEFAULT_MAX_PIXELS


def _blocks_help() -> str:
    names = [n for n, b in all_blocks().items() if b.classifier_input]
    return f"Feature blocks and presets, comma-separated. Blocks: {', '.join(names)}. Presets: {', '.join(PRESETS)}."


BLOCKS = typer.Option("default", "--blocks", "-b", help=_blocks_help())
JOBS = typer.Option(1, "--jobs", "-j", help="Worker processes for feature extraction (-1: one per CPU).")
CACHE_DIR = typer.Option(None, "--cache-dir", help="Feature cache folder [default: the user cache folder, e.g. ~/.cache/forensics; $FORENSICS_CACHE_DIR overrides].")
NO_CACHE = typer.Option(False, "--no-cache", help="Neither read nor write the feature cache.")
MAX_PIXELS = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", help="Refuse images whose header declares more pixels than this (decompression bombs), before decoding.")
SETTINGS = typer.Option(None, "--set", help="Block setting BLOCK.KEY=VALUE (VALUE as JSON), repeatable, e.g. --set spectrum.n_bins=64.")


def resolve_cache(cache_dir: Optional[Path], no_cache: bool):
    if no_cache:
        return None
    from forensics.cache import default_cache_dir
    from forensics.errors import UsageError

    path = cache_dir if cache_dir is not None else default_cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot use cache folder {path}: {exc.strerror or exc} (use --cache-dir or --no-cache)") from None
    if path.is_dir() and not os.access(path, os.W_OK):
        raise UsageError(f"cache folder {path} is not writable (use --cache-dir or --no-cache)")
    return path


SettingsList = Optional[List[str]]
