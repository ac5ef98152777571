"""Tests of the ``color`` block: contract, behaviour on images we can reason about, golden values."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from forensics.features import ImageViews, get_block
from forensics.features.color import color_features, color_names
from golden_utils import check_golden


def _f(img, **settings) -> dict[str, float]:
    return dict(zip(color_names(**settings), color_features(img, **settings)))


def noise(shape=(64, 64), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


@pytest.mark.parametrize("settings", [{}, {"hue_bins": 6, "sat_bins": 4}, {"hue_bins": 300, "max_size": 32}])
def test_length_matches_names_and_names_are_prefixed(settings):
    out = color_features(data.astronaut()[:90, :70], **settings)
    assert out.shape == (len(color_names(**settings)),)
    names = get_block("color").feature_names(settings)
    assert len(set(names)) == len(names) and all(n.startswith("color__") for n in names)


@pytest.mark.parametrize(
    "img",
    [np.zeros((1, 1, 3), np.uint8), np.full((2, 3, 3), 77, np.uint8), noise((32, 32)), noise((256, 256)),
     noise((1500, 2000)), np.repeat(data.camera()[:, :, None], 3, axis=2), data.astronaut()],
    ids=["1x1", "2x3", "32", "256", "large", "gray", "astronaut"],
)
def test_finite_everywhere(img):
    out = color_features(img)
    assert np.all(np.isfinite(out)) and out.shape == (len(color_names()),)


def test_path_array_and_views_agree(tmp_path):
    img = data.astronaut()[100:228, 100:228]
    Image.fromarray(img).save(tmp_path / "a.png")
    ref = color_features(img)
    np.testing.assert_array_equal(color_features(str(tmp_path / "a.png")), ref)
    np.testing.assert_array_equal(color_features(ImageViews(img)), ref)


def test_gray_image_has_no_saturation_and_perfect_channel_correlation():
    gray = np.repeat(data.camera()[:, :, None], 3, axis=2)
    f = _f(gray)
    assert f["hsv_s_mean"] == 0 and f["sat_p99"] == 0 and f["sat_frac_high"] == 0
    assert f["corr_rg"] == pytest.approx(1.0) and f["corr_gb"] == pytest.approx(1.0)
    assert sum(v for k, v in f.items() if k.startswith("hue_hist")) == 0  # no saturation: no hue mass


def test_moments_of_a_two_level_image_are_exact():
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, 32:] = 255  # half black, half white: mean 0.5, std 0.5, skew 0, kurtosis -2
    f = _f(img)
    assert f["rgb_r_mean"] == pytest.approx(0.5) and f["rgb_r_std"] == pytest.approx(0.5)
    assert f["rgb_r_skew"] == pytest.approx(0.0, abs=1e-9) and f["rgb_r_kurt"] == pytest.approx(-2.0)
    assert f["val_frac_clipped"] == pytest.approx(1.0)


def test_pure_red_puts_all_hue_mass_in_the_first_bin_and_saturates():
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., 0] = 200
    f = _f(img)
    assert f["hue_hist__bins_12__00"] == pytest.approx(1.0)
    assert f["sat_frac_high"] == pytest.approx(1.0) and f["sat_p99"] == pytest.approx(1.0)
    assert f["sat_hist__bins_8__07"] == pytest.approx(1.0)


def test_invalid_settings():
    with pytest.raises(ValueError, match="hue_bins"):
        color_features(noise(), hue_bins=0)
    with pytest.raises(ValueError, match="max_size"):
        color_features(noise(), max_size=0)


def golden_inputs():
    yy, xx = np.mgrid[:32, :32]
    checker = np.repeat((((yy + xx) % 2) * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    return {"noise64": noise((64, 64)), "checker32": checker, "astronaut128": np.ascontiguousarray(data.astronaut()[64:192, 160:288])}


def test_golden_values():
    check_golden("color", golden_inputs(), color_features, color_names())
