"""Tests of the ``cooc`` block: contract, values we can reason about, golden baseline.

Regenerate the baseline after an intended change with
``FORENSICS_REGEN_GOLDEN=1 pytest tests/test_block_cooc.py``
and commit the new ``tests/golden/cooc.csv`` together with the change.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from forensics.features import ImageViews, get_block
from forensics.features.cooc import cooc_features, cooc_names
from golden_utils import check_golden

PLANES = ("y", "cr", "cb", "s")


def _f(img, **settings) -> dict[str, float]:
    return dict(zip(cooc_names(**settings), cooc_features(img, **settings)))


def _groups(f: dict) -> dict[str, dict[str, float]]:
    """{"x2_y_d1": {class: share}, ...}."""
    out: dict = {}
    for k, v in f.items():
        group, cls = k.split("__")
        out.setdefault(group, {})[cls] = v
    return out


def noise(h=64, w=64, seed=0, sigma=None):
    rng = np.random.default_rng(seed)
    if sigma is None:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return np.clip(np.rint(rng.normal(128, sigma, (h, w, 3))), 0, 255).astype(np.uint8)


def golden_inputs() -> dict[str, np.ndarray]:
    return {
        "noise64": noise(),
        "astronaut_half": np.ascontiguousarray(data.astronaut()[::2, ::2]),
        "coffee_crop": np.ascontiguousarray(data.coffee()[40:200, 100:356]),
        "chelsea_32": np.ascontiguousarray(data.chelsea()[100:132, 150:182]),
    }


@pytest.mark.parametrize("settings", [{}, {"scales": (1,)}, {"scales": (1, 2, 8), "max_size": 64}])
def test_length_matches_names_and_names_are_prefixed(settings):
    out = cooc_features(data.astronaut()[:90, :70], **settings)
    names = get_block("cooc").feature_names(settings)
    assert out.shape == (len(names),) == (len(settings.get("scales", (2, 4))) * 4 * 2 * 39,)
    assert len(set(names)) == len(names) and all(n.startswith("cooc__") for n in names)


@pytest.mark.parametrize(
    "img",
    [np.zeros((1, 1, 3), np.uint8), np.full((2, 3, 3), 77, np.uint8), noise(32, 32), noise(1500, 1100),
     np.repeat(data.camera()[:, :, None], 3, axis=2), data.astronaut()],
    ids=["1x1", "2x3", "32", "large", "gray", "astronaut"],
)
def test_finite_and_every_group_sums_to_one(img):
    f = _f(img)
    assert np.all(np.isfinite(list(f.values())))
    for group, shares in _groups(f).items():
        assert len(shares) == 39 and sum(shares.values()) == pytest.approx(1.0), group
        assert min(shares.values()) >= 0


def test_flat_image_is_all_zero_residuals():
    f = _groups(_f(np.full((64, 64, 3), (30, 160, 90), np.uint8)))
    assert all(g["0_0_0"] == pytest.approx(1.0) for g in f.values())


def test_gray_image_has_flat_chroma_and_no_saturation():
    gray = np.repeat(data.camera()[:, :, None], 3, axis=2)
    f = _groups(_f(gray))
    for s in (2, 4):
        for plane in ("cr", "cb", "s"):
            for order in (1, 2):
                assert f[f"x{s}_{plane}_d{order}"]["0_0_0"] == pytest.approx(1.0)
        assert f[f"x{s}_y_d1"]["0_0_0"] < 0.9  # the luma of a photo does vary


@pytest.mark.parametrize("transform", [np.fliplr, np.flipud, lambda a: np.rot90(a, 2), lambda a: a.transpose(1, 0, 2)],
                         ids=["mirror", "upside-down", "rot180", "transpose"])
def test_invariant_to_flips_and_transposition(transform):
    # horizontal and vertical counts are added, and a triple, its reversal and its sign flip are one class
    img = np.ascontiguousarray(data.astronaut()[100:228, 150:278])
    np.testing.assert_allclose(cooc_features(np.ascontiguousarray(transform(img))), cooc_features(img), atol=1e-12)


def test_scale_is_area_down_sampling():
    # an image blown up 2x by pixel replication, seen at scale 2, is the original seen at scale 1
    img = np.ascontiguousarray(data.coffee()[100:164, 200:264])
    up = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)
    np.testing.assert_allclose(cooc_features(up, scales=(2,)), cooc_features(img, scales=(1,)), atol=1e-12)
    # ... and differs from what the replicated image shows at full resolution
    assert not np.allclose(cooc_features(up, scales=(1,)), cooc_features(img, scales=(1,)))


def test_stronger_noise_moves_mass_out_of_the_zero_class():
    zero = [_f(noise(sigma=s, seed=1))["x2_y_d1__0_0_0"] for s in (1, 4, 16, 64)]
    assert all(a > b for a, b in zip(zero, zero[1:])), zero


def test_path_array_and_views_agree(tmp_path):
    img = np.ascontiguousarray(data.astronaut()[100:228, 100:228])
    Image.fromarray(img).save(tmp_path / "a.png")
    ref = cooc_features(img)
    np.testing.assert_array_equal(cooc_features(str(tmp_path / "a.png")), ref)
    np.testing.assert_array_equal(cooc_features(ImageViews(img)), ref)


def test_large_images_are_cropped_not_resampled():
    big = noise(900, 700, seed=3)
    np.testing.assert_array_equal(cooc_features(big, max_size=256), cooc_features(ImageViews(big).crop(256).rgb, max_size=256))


@pytest.mark.parametrize("settings, match", [
    ({"scales": ()}, "scales"), ({"scales": (0,)}, "scales"), ({"scales": (2, 2)}, "distinct"),
    ({"scales": (1.5,)}, "scales"), ({"max_size": 4}, "max_size"), ({"scales": 2}, "scales"),
])
def test_invalid_settings(settings, match):
    with pytest.raises(ValueError, match=match):
        cooc_features(noise(), **settings)


def test_golden_baseline():
    check_golden("cooc", golden_inputs(), cooc_features, cooc_names())
