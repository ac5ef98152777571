"""Tests of the ``texture`` block (rotation-invariant uniform LBP histograms).

Golden baseline: ``FORENSICS_REGEN_GOLDEN=1 pytest tests/test_block_texture.py`` rewrites
``tests/golden/texture.csv``; otherwise the current values are compared with it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from skimage import data
from skimage.feature import local_binary_pattern

from forensics.features import ImageViews, get_block
from forensics.features.base import center_crop
from forensics.features.texture import (
    RIU2_LUT,
    U2_LUT,
    lbp_code_histograms,
    texture_features,
    texture_names,
)
from block_utils import assert_input_kinds_agree
from golden_utils import check_golden

BLOCK = "texture"
RADII = (1, 2, 3)


def _feats(image, **settings) -> dict[str, float]:
    return dict(zip(texture_names(**settings), texture_features(image, **settings)))


def _riu2(f: dict, ch: str, r: int) -> np.ndarray:
    return np.array([f[f"lbp_{ch}__r_{r}__bin_{b:02d}"] for b in range(10)])


def _u2(f: dict, r: int = 1) -> np.ndarray:
    return np.array([f[f"lbp_u2_y__r_{r}__bin_{b:02d}"] for b in range(59)])


def _gray3(a: np.ndarray) -> np.ndarray:
    return np.repeat(a.astype(np.uint8)[:, :, None], 3, axis=2)


def checkerboard(n: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return _gray3(((yy + xx) % 2) * 255)


def stripes(n: int = 32) -> np.ndarray:
    """Horizontal stripes one pixel high, alternating 255 and 0."""
    yy = np.mgrid[:n, :n][0]
    return _gray3((1 - yy % 2) * 255)


def noise(shape=(64, 64), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


# --------------------------------------------------------------------------------------------------
# Contract
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [{}, {"radii": (1, 2)}, {"radii": [2, 4], "u2": False, "max_size": 64}])
def test_length_matches_names(settings, astronaut):
    names = texture_names(**settings)
    out = texture_features(astronaut[:80, :90], **settings)
    assert out.shape == (len(names),)
    assert len(set(names)) == len(names)
    n_radii = len(settings.get("radii", RADII))
    assert len(names) == 2 * n_radii * 10 + 2 * n_radii + (59 if settings.get("u2", True) else 0)


def test_registry_names_prefixed_and_encode_params():
    block = get_block(BLOCK)
    names = block.feature_names()
    assert names[0] == "texture__lbp_y__r_1__bin_00"
    assert all(n.startswith("texture__") for n in names)
    assert len(names) == len(set(names)) == 125
    assert "texture__lbp_cr__r_3__bin_09" in names
    assert "texture__lbp_u2_y__r_1__bin_58" in names
    assert block.feature_names({"radii": (2, 5)})[0] == "texture__lbp_y__r_2__bin_00"
    assert "default" in block.presets
    assert block.reference and block.cost


@pytest.mark.parametrize(
    "settings",
    [
        {"radii": ()},
        {"radii": (0,)},
        {"radii": (1.5,)},
        {"radii": (1, 1)},
        {"radii": 2},
        {"u2": "yes"},
        {"max_size": 3},
        {"max_size": 1.5},
    ],
)
def test_bad_settings_raise_naming_the_parameter(settings):
    key = next(iter(settings))
    with pytest.raises(ValueError, match=key):
        texture_features(noise((16, 16)), **settings)
    with pytest.raises(ValueError, match=key):
        texture_names(**settings)


@pytest.mark.parametrize(
    "image",
    [
        np.full((40, 50, 3), 93, np.uint8),
        np.zeros((1, 1, 3), np.uint8),
        noise((2, 3)),
        noise((32, 32)),
        noise((256, 256), seed=1),
        noise((2000, 1500), seed=2),
    ],
    ids=["constant", "1x1", "2x3", "32x32", "noise256", "2000x1500"],
)
def test_finite_and_normalised_on_awkward_images(image):
    f = _feats(image)
    values = np.array(list(f.values()))
    assert values.shape == (125,) and np.isfinite(values).all()
    for ch in ("y", "cr"):
        for r in RADII:
            assert _riu2(f, ch, r).sum() == pytest.approx(1.0)
            assert 0.0 <= f[f"lbp_{ch}__r_{r}__entropy"] <= np.log2(10) + 1e-12
    assert _u2(f).sum() == pytest.approx(1.0)


def test_natural_image(astronaut):
    f = texture_features(astronaut)
    assert f.shape == (125,) and np.isfinite(f).all()
    assert (f[:60] > 0).sum() > 50  # a natural image populates nearly every bin


def test_large_image_is_centre_cropped_not_resampled(astronaut):
    big = np.tile(astronaut, (4, 3, 1))[:2000, :1500]
    np.testing.assert_array_equal(texture_features(big), texture_features(np.ascontiguousarray(center_crop(big, 512))))
    np.testing.assert_array_equal(
        texture_features(big, max_size=100), texture_features(np.ascontiguousarray(center_crop(big, 100)))
    )


def test_path_array_loaded_and_views_agree(tmp_path, astronaut):
    assert_input_kinds_agree(texture_features, BLOCK, astronaut[100:200, 150:270], tmp_path)


# --------------------------------------------------------------------------------------------------
# Values we can derive by hand
# --------------------------------------------------------------------------------------------------


def test_lookup_tables():
    # 58 uniform patterns (<= 2 circular transitions) + 198 non-uniform ones.
    assert np.bincount(RIU2_LUT, minlength=10).tolist() == [1, 8, 8, 8, 8, 8, 8, 8, 1, 198]
    assert RIU2_LUT[0] == 0 and RIU2_LUT[255] == 8 and RIU2_LUT[0b00000111] == 3 and RIU2_LUT[0b10000011] == 3
    assert RIU2_LUT[0b00010001] == 9 and RIU2_LUT[0b01010101] == 9
    assert np.bincount(U2_LUT).tolist() == [1] * 58 + [198]
    assert U2_LUT[0] == 0 and U2_LUT[255] == 57 and U2_LUT[0b00010001] == 58


def test_constant_image_puts_all_mass_in_bin_8():
    f = _feats(np.full((30, 30, 3), (200, 40, 90), np.uint8))
    for ch in ("y", "cr"):
        for r in RADII:
            np.testing.assert_array_equal(_riu2(f, ch, r), np.eye(10)[8])
            assert f[f"lbp_{ch}__r_{r}__entropy"] == 0.0
    np.testing.assert_array_equal(_u2(f), np.eye(59)[57])  # code 255 is the last uniform code


def test_checkerboard_by_hand():
    """1-pixel checkerboard of 0/255. Diagonal neighbours interpolate 2 same-colour and 2
    other-colour pixels, the same colour weighing (1-f)^2 + f^2 with f the fractional offset
    (0.707, 0.414, 0.121 for R = 1, 2, 3), i.e. 0.59, 0.51, 0.79: strictly between the two colours.
    A white centre has every diagonal below it, a black one every diagonal above it. Axis neighbours
    at odd R are the other colour, at even R the same colour (a tie, counted as >=). So:
    R=1, 3: white -> code 0 (bin 0), black -> 255 (bin 8);
    R=2: white -> axis 1, diagonals 0 = 10101010 (non-uniform, bin 9), black -> bin 8.
    Luma ~ equal halves of each; Cr is constant for grey pixels -> bin 8."""
    f = _feats(checkerboard(32))  # the coded 26 x 26 interior is half white, half black
    half = {r: np.zeros(10) for r in RADII}
    half[1][[0, 8]] = 0.5
    half[2][[8, 9]] = 0.5
    half[3][[0, 8]] = 0.5
    for r in RADII:
        np.testing.assert_allclose(_riu2(f, "y", r), half[r], atol=1e-12)
        assert f[f"lbp_y__r_{r}__entropy"] == pytest.approx(1.0)
        np.testing.assert_array_equal(_riu2(f, "cr", r), np.eye(10)[8])
    u2 = np.zeros(59)
    u2[[0, 57]] = 0.5  # codes 0 and 255
    np.testing.assert_allclose(_u2(f), u2, atol=1e-12)


def test_horizontal_stripes_by_hand():
    """1-pixel horizontal stripes of 0/255. Left/right neighbours are the same colour (ties, >=);
    up/down are the other colour at odd R and the same at even R; diagonals mix the row above/below
    the centre with weights that keep them strictly between the colours. White centre: R=1, 3 ->
    left and right only (code 0b00010001, non-uniform), R=2 -> the four axis neighbours (0b01010101,
    non-uniform): bin 9; black centre: everything >= -> bin 8."""
    f = _feats(stripes(32))
    expected = np.zeros(10)
    expected[[8, 9]] = 0.5
    for r in RADII:
        np.testing.assert_allclose(_riu2(f, "y", r), expected, atol=1e-12)
    u2 = np.zeros(59)
    u2[[57, 58]] = 0.5
    np.testing.assert_allclose(_u2(f), u2, atol=1e-12)


def test_rotation_by_90_degrees_leaves_riu2_unchanged(astronaut):
    img = astronaut[200:330, 180:300]
    a, b = _feats(img), _feats(np.ascontiguousarray(np.rot90(img)))
    for ch in ("y", "cr"):
        for r in RADII:
            np.testing.assert_allclose(_riu2(a, ch, r), _riu2(b, ch, r), atol=2e-4)


def test_brightness_and_contrast_invariance(astronaut):
    img = astronaut[200:330, 180:300].astype(np.float64)
    a = _feats(img.astype(np.uint8))
    b = _feats(np.clip(img * 0.5 + 60, 0, 255).round().astype(np.uint8))
    # Rounding to 8 bits after scaling creates new ties, so only approximately equal.
    for r in RADII:
        assert np.abs(_riu2(a, "y", r) - _riu2(b, "y", r)).sum() < 0.1


# --------------------------------------------------------------------------------------------------
# Cross-check with scikit-image
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rounded", [True, False], ids=["integer-luma", "float-luma"])
def test_matches_skimage_local_binary_pattern(astronaut, rounded):
    """Same codes as skimage (threshold ``neighbour >= centre``, bilinear diagonals) on the coded
    interior. Differences come only from exact ties in the interpolated diagonals, which skimage's
    float64 rounding decides arbitrarily and we count as >=: they are largest on integer images at
    R = 2 (max |bin difference| ~5e-4), and ~6e-5 on float luma."""
    gray = ImageViews(astronaut[:256, :256]).gray.astype(np.float64)
    if rounded:
        gray = np.round(gray)
    m = max(RADII)
    ours = lbp_code_histograms(gray.astype(np.float32), RADII)[:, 0, :]  # (3, 256)
    n = (gray.shape[0] - 2 * m) * (gray.shape[1] - 2 * m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skimage warns about float input
        for i, r in enumerate(RADII):
            codes = local_binary_pattern(gray, 8, r, method="default")[m:-m, m:-m].astype(int)
            ref = np.bincount(codes.ravel(), minlength=256)
            assert ours[i].sum() == n
            assert np.abs(ours[i] - ref).sum() / n < 0.01  # the full 256-code histogram
            uni = local_binary_pattern(gray, 8, r, method="uniform")[m:-m, m:-m].astype(int)
            ref_riu2 = np.bincount(uni.ravel(), minlength=10) / n
            our_riu2 = np.bincount(RIU2_LUT, weights=ours[i], minlength=10) / n
            np.testing.assert_allclose(our_riu2, ref_riu2, atol=1e-3 if rounded else 2e-4)


def test_skimage_agreement_is_exact_without_ties():
    """On an image with no interpolation ties (continuous random values), codes are identical."""
    rng = np.random.default_rng(3)
    img = rng.uniform(0, 255, (60, 70))
    ours = lbp_code_histograms(img.astype(np.float32), RADII)[:, 0, :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, r in enumerate(RADII):
            codes = local_binary_pattern(img.astype(np.float32).astype(np.float64), 8, r, method="default")
            ref = np.bincount(codes[3:-3, 3:-3].astype(int).ravel(), minlength=256)
            assert np.abs(ours[i] - ref).sum() <= 2  # float32 vs float64 interpolation rounding


# --------------------------------------------------------------------------------------------------
# Golden baseline
# --------------------------------------------------------------------------------------------------


def golden_inputs() -> dict[str, np.ndarray]:
    return {
        "noise64_seed12345": np.random.default_rng(12345).integers(0, 256, (64, 64, 3), dtype=np.uint8),
        "checkerboard32": checkerboard(32),
        "astronaut128": np.ascontiguousarray(data.astronaut()[60:188, 170:298]),
    }


def test_golden_values():
    check_golden('texture', golden_inputs(), texture_features, texture_names())
