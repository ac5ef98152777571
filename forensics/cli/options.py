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
CACHE_DIR = typer.Option(None, "--cache-dir", help="Feature cache folder \\[default: the user cache folder, e.g. ~/.cache/forensics; $FORENSICS_CACHE_DIR overrides].")
NO_CACHE = typer.Option(False, "--no-cache", help="Neither read nor write the feature cache.")
MAX_PIXELS = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", help="Refuse images whose header declares more pixels than this (decompression bombs), before decoding.")
BLOCKS_OR_MODEL = typer.Option(None, "--blocks", "-b", help=_blocks_help() + " \\[default: default; with --warm-start: the model's]")
FACE_CROP = typer.Option(False, "--face-crop", help="Compute features on the largest face (plus a margin, native resolution) instead of the whole image; needs the optional package yuface (pip install 'forensics\\[faces]'). Images without a face are used whole (empty face_box).")
SETTINGS = typer.Option(None, "--set", help="Block setting BLOCK.KEY=VALUE (VALUE as JSON), repeatable, e.g. --set spectrum.n_bins=64.")
SCHEDULER = typer.Option(None, "--scheduler", metavar="ADDRESS", help="Compute features on a dask.distributed cluster: the scheduler's address (tcp://host:8786), or 'local' for a cluster of --jobs worker processes on this machine. Workers must see the image files at the same absolute paths. Needs pip install 'forensics\\[dask]'.")
TABLE_SCHEDULER = typer.Option("local", "--scheduler", metavar="ADDRESS", help="Train on this dask.distributed cluster: the scheduler's address (tcp://host:8786), or 'local' (default) for a cluster of --jobs worker processes on this machine. Workers read the tables at the same absolute paths. Needs pip install 'forensics\\[dask]'.")


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
