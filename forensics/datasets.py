"""Finding images: labelled DATA arguments (folders with real/ and fake/, or CSV manifests) and
unlabelled INPUT arguments (any mix of files and folders)."""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from forensics.errors import UsageError
from forensics.loading import is_image_path

logger = logging.getLogger(__name__)

#: Folder spellings accepted for each class (compared case-insensitively).
REAL_DIRS = ("real", "0_real", "training_real")
FAKE_DIRS = ("fake", "1_fake", "training_fake")
#: Label values accepted in manifests (case-insensitive) and what they mean (0 = real, 1 = fake).
LABEL_VALUES = {"real": 0, "0": 0, "fake": 1, "1": 1}
LABEL_NAMES = {0: "real", 1: "fake"}


@dataclass(frozen=True)
class LabelledImage:
    path: str
    label: int  # 0 = real, 1 = fake
    source: str  # the DATA argument it came from


def find_images(root: str | os.PathLike) -> list[str]:
    """Image files (by extension, case-insensitively) at any depth below ``root``, sorted.

    Dangling symlinks and unreadable files are *included* (they get a row with an error later);
    directories are never returned, even when named like an image.
    """
    root = Path(root)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in filenames:
            if is_image_path(name):
                found.append(os.path.join(dirpath, name))
    return sorted(found)


def collect_inputs(inputs, *, find=None) -> list[str]:
    """Expand INPUT arguments (files and folders) into a sorted, de-duplicated list of image paths.

    A file named explicitly is kept whatever its extension (the user asked for it); folders are
    searched recursively for image extensions (or with ``find(folder)``, e.g. for videos). A path that
    does not exist raises :class:`UsageError`.
    """
    find = find or find_images
    out: list[str] = []
    seen: set[str] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths = find(p)
        elif p.exists() or p.is_symlink():
            paths = [str(p)]
        else:
            raise UsageError(f"input not found: {item}")
        for path in paths:
            if path not in seen:
                seen.add(path)
                out.append(path)
    return out


def _class_dirs(folder: Path) -> tuple[list[Path], list[Path]]:
    real, fake = [], []
    for child in sorted(folder.iterdir()):
        if not child.is_dir():
            continue
        name = child.name.lower()
        if name in REAL_DIRS:
            real.append(child)
        elif name in FAKE_DIRS:
            fake.append(child)
    return real, fake


def parse_label(value) -> int:
    """``real``/``fake``/``0``/``1`` (any case) to 0/1; :class:`UsageError` otherwise."""
    key = str(value).strip().lower()
    if key not in LABEL_VALUES:
        raise UsageError(f"unknown label {value!r}: use real/fake or 0/1")
    return LABEL_VALUES[key]


def read_manifest(path: str | os.PathLike) -> list[LabelledImage]:
    """Read a CSV manifest with ``path,label`` columns; relative paths are relative to the CSV."""
    path = Path(path)
    base = path.parent
    items: list[LabelledImage] = []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        if "path" not in fields or "label" not in fields:
            raise UsageError(f"manifest {path} needs 'path' and 'label' columns, found {reader.fieldnames}")
        for row in reader:
            lineno = reader.line_num  # physical line: blank lines and quoted newlines count
            row = {k.strip().lower(): v for k, v in row.items() if k is not None}
            raw = (row.get("path") or "").strip()
            if not raw:
                raise UsageError(f"{path}:{lineno}: empty path")
            try:
                label = parse_label(row.get("label", ""))
            except UsageError as exc:
                raise UsageError(f"{path}:{lineno}: {exc}") from None
            p = Path(raw)
            items.append(LabelledImage(str(p if p.is_absolute() else base / p), label, str(path)))
    return items


def collect_labelled(data_args) -> list[LabelledImage]:
    """Pool DATA arguments: folders holding ``real/`` and ``fake/`` (or ``REAL``/``FAKE``,
    ``0_real``/``1_fake``, ``training_real``/``training_fake``) with images at any depth, or CSV
    manifests. Raises :class:`UsageError` for missing paths and folders without class sub-folders.
    """
    items: list[LabelledImage] = []
    for arg in data_args:
        p = Path(arg)
        if not p.exists():
            raise UsageError(f"data not found: {arg}")
        if p.is_file():
            if p.suffix.lower() != ".csv":
                raise UsageError(f"{arg} is a file but not a .csv manifest (DATA is a folder with real/ and fake/, or a CSV)")
            items.extend(read_manifest(p))
            continue
        real_dirs, fake_dirs = _class_dirs(p)
        if not real_dirs and not fake_dirs:
            raise UsageError(
                f"{arg} has no real/ or fake/ sub-folder (accepted: {', '.join(REAL_DIRS + FAKE_DIRS)}, any case)"
            )
        for label, dirs in ((0, real_dirs), (1, fake_dirs)):
            for d in dirs:
                items.extend(LabelledImage(f, label, str(arg)) for f in find_images(d))
    # De-duplicate identical paths given twice (keep the first label).
    seen: set[str] = set()
    unique = []
    for it in items:
        if it.path not in seen:
            seen.add(it.path)
            unique.append(it)
    return unique
