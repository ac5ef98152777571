"""Tests of the ``hog`` block (histograms of oriented gradients of the luma over a grid).

Golden baseline: ``FORENSICS_REGEN_GOLDEN=1 pytest tests/test_block_hog.py`` rewrites
``tests/golden/hog.csv``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.feature import hog as skimage_hog

from forensics.features import get_block, resolve_blocks
from forensics.features.hog import hog_features, hog_names
from block_utils import assert_input_kinds_agree
from golden_utils import check_golden

BLOCK = "hog"
N_DEFAULT = 7 * 4 * 4 * 9  # with the mirror image: 7 rows of 4 block positions (the left half and the middle)
N_OWN = 7 * 7 * 4 * 9  # mirror=False: every block


def noise(shape=(64, 64), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def stripes(size=128, period=8, vertical=True) -> np.ndarray:
    """Grey stripes: vertical stripes vary along x (gradient at 0 degrees), horizontal ones along y."""
    wave = (127.5 + 100 * np.sin(2 * np.pi * np.arange(size) / period)).round().astype(np.uint8)
    plane = np.tile(wave, (size, 1)) if vertical else np.tile(wave[:, None], (1, size))
    return np.repeat(plane[:, :, None], 3, axis=2)


def per_cell(values: np.ndarray, cells=8, orientations=9) -> np.ndarray:
    """(blocks, blocks, 2, 2, orientations) view of the block's output with ``mirror=False``."""
    return values.reshape(cells - 1, cells - 1, 2, 2, orientations)


def own(image, **settings) -> np.ndarray:
    return hog_features(image, mirror=False, **settings)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


# --------------------------------------------------------------------------------------------------
# Contract
# --------------------------------------------------------------------------------------------------


def test_in_the_default_preset_last():
    assert get_block(BLOCK).presets == ("default",)
    assert resolve_blocks("default")[-1] == BLOCK and BLOCK not in resolve_blocks("fast")
    assert BLOCK in resolve_blocks("faces")  # faces takes every default block


@pytest.mark.parametrize("settings, n", [({}, N_DEFAULT), ({"mirror": False}, N_OWN), ({"cells": 4, "size": 64}, 3 * 2 * 4 * 9),
                                         ({"cells": 5, "size": 80}, 4 * 2 * 4 * 9), ({"cells": 4, "size": 64, "mirror": False}, 9 * 4 * 9),
                                         ({"cells": 2, "size": 4, "orientations": 6}, 1 * 4 * 6)])
def test_length_matches_names(settings, n, astronaut):
    names = hog_names(**settings)
    assert len(names) == n == len(set(names))
    assert hog_features(astronaut[:80, :90], **settings).shape == (n,)


def test_registry_names_prefixed_and_encode_cell_block_and_angle():
    names = get_block(BLOCK).feature_names()
    assert len(names) == N_DEFAULT and all(n.startswith("hog__") for n in names)
    # a cell and its mirror cell's columns, a block and its mirror block's (by their top-left cells)
    assert names[:2] == ["hog__r0c0c7__blk_r0c0c6__o0", "hog__r0c0c7__blk_r0c0c6__o20"]
    assert names[9] == "hog__r0c1c6__blk_r0c0c6__o0" and names[-1] == "hog__r7c4c3__blk_r6c3__o160"
    assert get_block(BLOCK).feature_names({"orientations": 8})[1] == "hog__r0c0c7__blk_r0c0c6__o22.5"
    names = get_block(BLOCK).feature_names({"mirror": False})
    assert len(names) == N_OWN and names[:2] == ["hog__r0c0__blk_r0c0__o0", "hog__r0c0__blk_r0c0__o20"]
    assert names[9] == "hog__r0c1__blk_r0c0__o0" and names[-1] == "hog__r7c7__blk_r6c6__o160"


@pytest.mark.parametrize("settings", [{"cells": 1}, {"cells": 17}, {"cells": 4.0}, {"cells": True}, {"size": 100},
                                      {"size": 8}, {"size": "128"}, {"orientations": 1}, {"orientations": 37},
                                      {"mirror": "yes"}, {"mirror": 1}])
def test_bad_settings_raise_naming_the_parameter(settings):
    key = next(iter(settings))
    with pytest.raises(ValueError, match=key):
        hog_features(noise((16, 16)), **settings)
    with pytest.raises(ValueError, match=key):
        hog_names(**settings)


@pytest.mark.parametrize(
    "image",
    [np.full((40, 50, 3), 93, np.uint8), np.zeros((1, 1, 3), np.uint8), noise((2, 3)), noise((7, 300)),
     noise((32, 32)), noise((2000, 1500), seed=2)],
    ids=["constant", "1x1", "2x3", "7x300", "32x32", "2000x1500"],
)
def test_finite_and_bounded_on_awkward_images(image):
    out = hog_features(image)
    assert out.shape == (N_DEFAULT,) and np.isfinite(out).all()
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_flat_picture_is_all_zero():
    np.testing.assert_array_equal(hog_features(np.full((64, 48, 3), (200, 30, 90), np.uint8)), 0.0)


def test_path_array_loaded_and_views_agree(tmp_path, astronaut):
    assert_input_kinds_agree(hog_features, BLOCK, astronaut[100:200, 150:270], tmp_path)


# --------------------------------------------------------------------------------------------------
# Behaviour
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crop,settings", [
    ((256, 256), {}),
    ((300, 200), {"cells": 8, "size": 120, "orientations": 7}),  # odd cells of 15 px, edges not whole degrees
    ((90, 60), {"cells": 6, "size": 126, "orientations": 12}),  # enlarged (bilinear)
    ((64, 64), {"cells": 2, "size": 32, "orientations": 36}),
])
def test_matches_scikit_image_on_the_resized_luma(astronaut, crop, settings):
    """The block is scikit-image's HOG of the BT.601 luma resized to ``size`` px, to single
    precision, and with ``mirror`` the mean of it and the mirror image's, left half and middle kept."""
    cells, size, orientations = settings.get("cells", 8), settings.get("size", 128), settings.get("orientations", 9)
    img = astronaut[: crop[0], : crop[1]]
    y = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2YCrCb)[:, :, 0]
    interp = cv2.INTER_AREA if min(crop) >= size else cv2.INTER_LINEAR
    y = cv2.resize(y, (size, size), interpolation=interp) / 255.0
    hog = lambda plane: skimage_hog(plane, orientations=orientations, pixels_per_cell=(size // cells,) * 2,
                                    cells_per_block=(2, 2), block_norm="L2-Hys")
    ref = hog(y)
    assert ref.std() > 0.01
    np.testing.assert_allclose(own(img, **settings), ref, atol=3e-7, rtol=0)
    both = (ref + hog(np.ascontiguousarray(y[:, ::-1]))).reshape(cells - 1, cells - 1, -1) / 2
    np.testing.assert_allclose(hog_features(img, **settings), both[:, : cells // 2].ravel(), atol=3e-7, rtol=0)


def test_the_mirror_image_gives_the_same_vector(astronaut):
    """With ``mirror`` (the default) the picture and its mirror image give the same values; each
    on its own (``mirror=False``) they differ."""
    img = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)
    flipped = np.ascontiguousarray(img[:, ::-1])
    np.testing.assert_allclose(hog_features(flipped), hog_features(img), atol=1e-9)
    assert np.abs(own(flipped) - own(img)).max() > 0.1


def test_a_part_turned_on_the_left_or_on_the_right_looks_alike(astronaut):
    """On a mirror-symmetric picture, a part turned in cell (2, 1) or in its mirror cell (2, 6) gives
    the same vector; without ``mirror`` the two differ."""
    half = cv2.resize(astronaut, (64, 128), interpolation=cv2.INTER_AREA)
    img = np.ascontiguousarray(np.concatenate([half, half[:, ::-1]], axis=1))
    left, right = img.copy(), img.copy()
    left[32:48, 16:32] = np.rot90(img[32:48, 16:32])
    right[32:48, 96:112] = np.ascontiguousarray(left[32:48, 16:32][:, ::-1])  # the same change, mirrored
    np.testing.assert_allclose(hog_features(left), hog_features(right), atol=1e-9)
    assert np.abs(hog_features(left) - hog_features(img)).max() > 0.04  # half the change of the cell on its own
    assert np.abs(own(left) - own(right)).max() > 0.1


@pytest.mark.parametrize("vertical, angle", [(True, 0), (False, 90)])
def test_stripes_fill_the_bin_of_their_gradient(vertical, angle):
    """Vertical stripes vary along x: their gradient points at 0 degrees, and every cell's
    histogram peaks in the 0-20 degree bin; horizontal stripes in the 90-110 degree bin."""
    f = per_cell(own(stripes(vertical=vertical)))
    assert (f.argmax(axis=-1) == angle // 20).all()
    assert (f[..., angle // 20] > 0.15).all()


def test_brightness_and_contrast_do_not_count(astronaut):
    """Each cell's histogram is normalised by its block's contrast: halving the contrast and adding
    an offset (exactly, on a picture of even grey levels) leaves every value."""
    even = (astronaut[:256, :256] // 2 * 2).astype(np.uint8)
    dimmer = (even // 2 + 60).astype(np.uint8)
    np.testing.assert_allclose(hog_features(dimmer), hog_features(even), atol=5e-3)
    assert np.abs(hog_features(even)).max() > 0.2


def test_an_edge_in_one_cell_shows_in_its_blocks_only():
    """Vertical stripes pasted into cell (2, 5) of a flat 128 px picture: the four blocks that hold
    that cell see it, in its own slot and at 0 degrees; every other value stays 0."""
    img = np.full((128, 128, 3), 120, np.uint8)
    img[32:48, 80:96] = stripes(16, period=4)
    f = per_cell(own(img))
    assert np.count_nonzero(f) > 0
    for bi in range(7):
        for bj in range(7):
            for a in (0, 1):
                for b in (0, 1):
                    cell = (bi + a, bj + b)
                    if cell == (2, 5):
                        assert f[bi, bj, a, b, 0] > 0.15 and f[bi, bj, a, b].argmax() == 0
                    elif not (abs(cell[0] - 2) <= 1 and abs(cell[1] - 5) <= 1):
                        assert not f[bi, bj, a, b].any(), (bi, bj, a, b)


def test_a_turned_part_moves_its_cells_histogram(astronaut):
    """Turning one cell's content by 90 degrees (a part pasted at the wrong angle) moves that cell's
    histogram in each of its four blocks; the seam moves its neighbours' too; blocks that hold
    neither the cell nor a neighbour do not move at all."""
    img = cv2.resize(astronaut, (128, 128), interpolation=cv2.INTER_AREA)
    turned = img.copy()
    turned[32:48, 48:64] = np.rot90(img[32:48, 48:64])  # cell (2, 3)
    d = np.abs(per_cell(own(turned)) - per_cell(own(img))).sum(axis=-1)
    in_cell = [d[bi, bj, 2 - bi, 3 - bj] for bi in (1, 2) for bj in (2, 3)]
    untouched = [d[bi, bj] for bi in range(7) for bj in range(7) if not (bi <= 3 and bi + 1 >= 1 and bj <= 4 and bj + 1 >= 2)]
    assert min(in_cell) > 0.3
    assert not np.any(untouched)


def golden_inputs() -> dict[str, np.ndarray]:
    return {
        "noise64_seed12345": np.random.default_rng(12345).integers(0, 256, (64, 64, 3), dtype=np.uint8),
        "astronaut128": np.ascontiguousarray(data.astronaut()[60:188, 170:298]),
        "coffee_100x150": np.ascontiguousarray(data.coffee()[100:200, 200:350]),
    }


def test_golden_values():
    check_golden(BLOCK, golden_inputs(), hog_features, hog_names())
