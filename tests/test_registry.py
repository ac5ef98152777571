"""The block registry: presets, names, the committed default feature-name list, shared views."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from forensics.errors import UsageError
from forensics.features import ImageViews, all_blocks, feature_names, get_block, resolve_blocks
from forensics.features.base import CROP_ALIGN, center_crop

NAMES_FILE = Path(__file__).resolve().parents[1] / "forensics" / "data" / "default_feature_names.txt"


def test_default_feature_names_match_the_committed_list():
    names = feature_names("default")
    if os.environ.get("FORENSICS_REGEN_NAMES") == "1":
        NAMES_FILE.write_text("\n".join(names) + "\n")
    committed = NAMES_FILE.read_text().split()
    added = [n for n in names if n not in set(committed)]
    removed = [n for n in committed if n not in set(names)]
    assert names == committed, (
        f"default feature names changed: {len(added)} added (e.g. {added[:3]}), {len(removed)} removed "
        f"(e.g. {removed[:3]}), or reordered. If intended, regenerate with FORENSICS_REGEN_NAMES=1 pytest "
        f"tests/test_registry.py and bump the block's version."
    )


def test_names_are_unique_prefixed_and_safe():
    names = feature_names("default")
    assert len(names) == len(set(names))
    for n in names:
        block, _, rest = n.partition("__")
        assert block in all_blocks() and rest
        assert re.fullmatch(r"[a-z0-9_]+", n), n


def test_presets_and_order():
    default = resolve_blocks("default")
    assert default == ["spectrum", "texture", "noise", "color", "ela", "cooc", "layout", "hog"]
    assert resolve_blocks("color,spectrum") == ["spectrum", "color"]  # registry order, not argument order
    assert resolve_blocks("default,color") == default  # duplicates removed
    assert resolve_blocks("fast") == ["spectrum", "cooc"]  # chosen by benchmarks/speed.py and accuracy.py
    assert "diag" not in default


@pytest.mark.parametrize("spec,match", [("nosuch", "unknown feature block 'nosuch'"), ("", "no feature blocks"), ("diag", "provenance only")])
def test_bad_block_specs(spec, match):
    with pytest.raises(UsageError, match=match):
        resolve_blocks(spec)


def test_unknown_setting_is_refused():
    with pytest.raises(UsageError, match="unknown setting"):
        get_block("spectrum").feature_names({"nbins": 3})


def test_settings_key_changes_with_settings_and_version():
    b = get_block("color")
    assert b.settings_key() == b.settings_key({"hue_bins": 12})
    assert b.settings_key() != b.settings_key({"hue_bins": 6})


def test_every_block_on_the_same_views_matches_fresh_arrays():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (700, 600, 3), dtype=np.uint8)
    shared = ImageViews(img)
    for name in resolve_blocks("default"):
        block = get_block(name)
        np.testing.assert_array_equal(block.compute(shared), block.compute(img.copy()))


def test_crop_views_are_grid_aligned_cached_and_skip_full_size_conversions():
    img = np.random.default_rng(2).integers(0, 256, (1000, 900, 3), dtype=np.uint8)
    v = ImageViews(img)
    c = v.crop(512)
    assert c is v.crop(512)
    assert c.rgb.shape == (512, 512, 3)
    top, left = (1000 - 512) // 2 // CROP_ALIGN * CROP_ALIGN, (900 - 512) // 2 // CROP_ALIGN * CROP_ALIGN
    np.testing.assert_array_equal(c.rgb, img[top : top + 512, left : left + 512])
    np.testing.assert_array_equal(center_crop(img, 512), c.rgb)
    _ = c.gray
    assert "gray" not in v._cache and "ycrcb" not in v._cache  # the full image was never converted
    small = ImageViews(img[:100, :80])
    assert small.crop(512) is small
