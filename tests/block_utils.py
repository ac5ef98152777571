"""Contract checks shared by the block tests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from forensics.features import ImageViews, get_block
from forensics.loading import as_loaded


def assert_input_kinds_agree(func: Callable, block: str, img: np.ndarray, tmp_path: Path) -> None:
    """``func`` gives the same values for ``img`` as an array, a PNG path (text and ``Path``), a
    LoadedImage and ImageViews, and the registry's ``block`` computes the same."""
    path = tmp_path / "img.png"
    Image.fromarray(img).save(path)
    ref = func(img)
    np.testing.assert_array_equal(func(str(path)), ref)
    np.testing.assert_array_equal(func(path), ref)
    np.testing.assert_array_equal(func(as_loaded(img)), ref)
    np.testing.assert_array_equal(func(ImageViews(img)), ref)
    np.testing.assert_array_equal(get_block(block).compute(img), ref)
