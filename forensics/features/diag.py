"""``diag``: provenance of each image. Recorded in every table and score CSV, never fed to the
classifier by default (a detector that learns "real = large JPEG, fake = small PNG" is useless).
"""

from __future__ import annotations

import math

from forensics.features.base import as_views, register_block

#: Diagnostic columns, in order. ``format`` and ``sha256`` are strings, the rest numbers.
DIAG_COLUMNS = ("width", "height", "format", "mode", "jpeg_quality", "file_size", "n_frames", "sha256")
#: The numeric ones (what a shortcut audit may look at).
DIAG_NUMERIC = ("width", "height", "jpeg_quality", "file_size", "n_frames")


def _names():
    return list(DIAG_COLUMNS)


@register_block("diag", names=_names, presets=(), classifier_input=False, cost="free")
def diag_features(image) -> dict:
    """Provenance: width, height, container format, Pillow mode, estimated JPEG quality, file size,
    frame count and SHA-256 of the file.
    """
    img = as_views(image).image
    return {
        "width": img.width,
        "height": img.height,
        "format": img.format,
        "mode": img.mode,
        "jpeg_quality": img.jpeg_quality if not math.isnan(img.jpeg_quality) else float("nan"),
        "file_size": img.file_size,
        "n_frames": img.n_frames,
        "sha256": img.sha256,
    }


def diag_columns() -> list[str]:
    """Column names of the diag block in tables: ``diag__width``..."""
    return [f"diag__{c}" for c in DIAG_COLUMNS]
