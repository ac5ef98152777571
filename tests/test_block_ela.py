"""Tests of the ``ela`` block (error level analysis).

Golden baseline: ``FORENSICS_REGEN_GOLDEN=1 pytest tests/test_block_ela.py`` rewrites
``tests/golden/ela.csv``; otherwise the current values are compared with it. The values depend on
the libjpeg(-turbo) bundled with OpenCV, so an OpenCV upgrade may legitimately change them.
"""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from skimage import data

from forensics.features import get_block
from forensics.features.base import center_crop
from forensics.features.ela import ela_features, ela_names
from block_utils import assert_input_kinds_agree
from golden_utils import check_golden

BLOCK = "ela"
N_DEFAULT = 3 * 15 + 2 + 2


def _feats(image, **settings) -> dict[str, float]:
    return dict(zip(ela_names(**settings), ela_features(image, **settings)))


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def noise(shape=(64, 64), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def checkerboard(n: int = 32) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return np.repeat((((yy + xx) % 2) * 255).astype(np.uint8)[:, :, None], 3, axis=2)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


# --------------------------------------------------------------------------------------------------
# Contract
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, n",
    [
        ({}, N_DEFAULT),
        ({"qualities": (90,), "patch": 16}, 15 + 2),
        ({"qualities": [80, 60], "max_size": 64}, 30 + 1 + 2),
    ],
)
def test_length_matches_names(settings, n, astronaut):
    names = ela_names(**settings)
    assert len(names) == n == len(set(names))
    assert ela_features(astronaut[:80, :90], **settings).shape == (n,)


def test_registry_names_prefixed_and_encode_params():
    block = get_block(BLOCK)
    names = block.feature_names()
    assert len(names) == len(set(names)) == N_DEFAULT
    assert all(n.startswith("ela__") for n in names)
    assert names[0] == "ela__q_95__mean"
    assert "ela__q_75__patch_32__pmean_cv" in names
    assert "ela__mean_ratio__q_95__q_75" in names
    assert block.feature_names({"qualities": (85, 70)})[-3] == "ela__mean_ratio__q_85__q_70"
    assert "ela__q_70__patch_16__pstd_iqr_rel" in block.feature_names({"qualities": (85, 70), "patch": 16})
    assert block.presets == ("default",)
    assert block.reference and block.cost


@pytest.mark.parametrize(
    "settings",
    [
        {"qualities": ()},
        {"qualities": (0,)},
        {"qualities": (101,)},
        {"qualities": (90.0,)},
        {"qualities": (90, 90)},
        {"qualities": 90},
        {"patch": 1},
        {"patch": 8.0},
        {"max_size": 8},
    ],
)
def test_bad_settings_raise_naming_the_parameter(settings):
    key = next(iter(settings))
    with pytest.raises(ValueError, match=key):
        ela_features(noise((16, 16)), **settings)
    with pytest.raises(ValueError, match=key):
        ela_names(**settings)


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
def test_finite_on_awkward_images(image):
    out = ela_features(image)
    assert out.shape == (N_DEFAULT,) and np.isfinite(out).all()


def test_natural_image(astronaut):
    f = _feats(astronaut)
    assert np.isfinite(list(f.values())).all()
    assert 0.3 < f["q_95__mean"] < 10  # an 8-bit photo changes by a few grey levels
    assert f["q_95__mean"] < f["q_90__mean"] < f["q_75__mean"]


def test_path_array_loaded_and_views_agree(tmp_path, astronaut):
    assert_input_kinds_agree(ela_features, BLOCK, astronaut[100:200, 150:270], tmp_path)


def test_large_image_uses_an_aligned_centre_crop(astronaut):
    big = np.tile(astronaut, (4, 3, 1))[:2000, :1500]
    crop = center_crop(big, 512)
    assert crop.shape[:2] == (512, 512)
    offset = (np.array(big.shape[:2]) - 512) // 2 // 16 * 16  # (736, 480): multiples of 16
    np.testing.assert_array_equal(crop, big[offset[0] : offset[0] + 512, offset[1] : offset[1] + 512])
    np.testing.assert_array_equal(ela_features(big), ela_features(np.ascontiguousarray(crop)))


def test_aligned_crop_keeps_the_jpeg_grid():
    """A JPEG-compressed image larger than max_size: the 16-aligned crop stays on the original
    grid, so recompressing at the original quality changes almost nothing; the plain centre crop
    (align=1: offset 44 = 4 mod 8) is off the grid and changes much more."""
    rng = np.random.default_rng(7)
    smooth = cv2.GaussianBlur(rng.uniform(0, 255, (600, 600, 3)).astype(np.float32), (0, 0), 2.0)
    img = jpeg_roundtrip(np.clip(smooth * 3 - 250, 0, 255).astype(np.uint8), 75)
    aligned = _feats(img)["q_75__mean"]
    shifted = _feats(np.ascontiguousarray(center_crop(img, 512, align=1)))["q_75__mean"]
    assert aligned < 0.5 * shifted


# --------------------------------------------------------------------------------------------------
# Behaviour we can reason about
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("colour, max_mean", [((93, 93, 93), 0.0), ((120, 60, 200), 1 / 3 + 1e-9)])
def test_constant_image_has_zero_error(colour, max_mean):
    """A constant image is (nearly) a fixed point of JPEG: only the RGB <-> YCbCr rounding of a
    saturated colour can move one channel by one grey level."""
    f = _feats(np.full((48, 64, 3), colour, np.uint8))
    for q in (95, 90, 75):
        assert f[f"q_{q}__mean"] <= max_mean
        assert f[f"q_{q}__cv"] < 1e-6 and f[f"q_{q}__patch_32__pmean_cv"] < 1e-6
        assert f[f"q_{q}__patch_32__pmean_max_med"] == pytest.approx(1.0)
    for name in ("mean_ratio__q_95__q_75", "mean_ratio__q_90__q_75"):
        assert f[name] == pytest.approx(1.0)


def test_already_compressed_image_changes_less_than_noise(astronaut):
    pristine_noise = noise((128, 128), seed=4)
    photo = np.ascontiguousarray(astronaut[:256, :256])
    for pristine in (pristine_noise, photo):
        before, after = _feats(pristine), _feats(jpeg_roundtrip(pristine, 75))
        assert after["q_75__mean"] < 0.25 * before["q_75__mean"]
        assert after["q_75__mean_rel_activity"] < before["q_75__mean_rel_activity"]
    assert _feats(jpeg_roundtrip(pristine_noise, 75))["q_75__mean"] < _feats(pristine_noise)["q_75__mean"]
    # The signal is how the image responds to recompression: a q75 JPEG hardly changes at 75 but
    # does at 95, a pristine image changes more at 75 than at 95.
    assert _feats(photo)["mean_ratio__q_95__q_75"] < 1.0
    assert _feats(jpeg_roundtrip(photo, 75))["mean_ratio__q_95__q_75"] > 3.0


def test_half_compressed_image_is_regionally_inconsistent():
    """Left half JPEG q=50 round-tripped, right half pristine noise: tile error levels split in
    two groups, unlike uniform noise."""
    pristine = noise((128, 128), seed=5)
    half = pristine.copy()
    half[:, :64] = jpeg_roundtrip(pristine, 50)[:, :64]
    u, h = _feats(pristine), _feats(half)
    for q in (95, 90, 75):
        assert h[f"q_{q}__patch_32__pmean_cv"] > 5 * u[f"q_{q}__patch_32__pmean_cv"]
        assert h[f"q_{q}__patch_32__pmean_max_med"] > u[f"q_{q}__patch_32__pmean_max_med"] + 0.2
        assert h[f"q_{q}__patch_32__pratio_cv"] > 5 * u[f"q_{q}__patch_32__pratio_cv"]


def test_blockiness_of_a_jpeg_input(astronaut):
    photo = np.ascontiguousarray(astronaut[:256, :256])
    f = _feats(jpeg_roundtrip(photo, 40))
    assert f["input_blockiness__h"] > 1.1 and f["input_blockiness__v"] > 1.1
    g = _feats(noise((128, 128), seed=6))
    assert g["input_blockiness__h"] == pytest.approx(1.0, abs=0.05)
    assert g["input_blockiness__v"] == pytest.approx(1.0, abs=0.05)


def test_global_and_patch_statistics_match_a_direct_computation(astronaut):
    img = np.ascontiguousarray(astronaut[40:200, 100:292])  # 160 x 192: 5 x 6 tiles of 32
    f = _feats(img, qualities=(85,), patch=32)
    e = np.abs(img.astype(np.float64) - jpeg_roundtrip(img, 85)).mean(axis=2)
    mean = e.mean()
    assert f["q_85__mean"] == pytest.approx(mean, rel=1e-9)
    assert f["q_85__cv"] == pytest.approx(e.std() / (mean + 0.01), rel=1e-6)
    for p in (50, 90, 99):
        ref = np.percentile(e, p, method="inverted_cdf")
        assert f[f"q_85__p{p}_rel"] == pytest.approx(ref / (mean + 0.01), rel=1e-6)
    tiles = e.reshape(5, 32, 6, 32).transpose(0, 2, 1, 3).reshape(30, -1)
    pm, ps = tiles.mean(axis=1), tiles.std(axis=1)
    assert f["q_85__patch_32__pmean_cv"] == pytest.approx(pm.std() / (mean + 0.01), rel=1e-5)
    assert f["q_85__patch_32__pmean_max_med"] == pytest.approx((pm.max() + 0.01) / (np.median(pm) + 0.01), rel=1e-5)
    iqr = np.percentile(pm, 75) - np.percentile(pm, 25)
    assert f["q_85__patch_32__pmean_iqr_rel"] == pytest.approx(iqr / (np.median(pm) + 0.01), rel=1e-5)
    assert f["q_85__patch_32__pstd_cv"] == pytest.approx(ps.std() / (ps.mean() + 0.01), rel=1e-4)
    edge = np.zeros(e.shape, bool)
    rows, cols = np.arange(e.shape[0]) % 8, np.arange(e.shape[1]) % 8
    edge[np.isin(rows, (0, 7)), :] = True
    edge[:, np.isin(cols, (0, 7))] = True
    assert f["q_85__grid_ratio"] == pytest.approx((e[edge].mean() + 0.01) / (e[~edge].mean() + 0.01), rel=1e-5)


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
    check_golden('ela', golden_inputs(), ela_features, ela_names())
