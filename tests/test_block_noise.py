"""Tests of the ``noise`` feature block: contract, values we can reason about, golden baseline.

Regenerate the baseline after an intended change with
``FORENSICS_REGEN_GOLDEN=1 pytest tests/test_block_noise.py``
and commit the new ``tests/golden/noise.csv`` together with the change.
"""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from forensics.features import ImageViews, get_block
from forensics.features.base import center_crop
from forensics.features.noise import noise_features, noise_names
from golden_utils import check_golden

FILTERS = ("d1h_q1", "d1v_q1", "d2h_q2", "d2v_q2", "d3h_q3", "d3v_q3", "kb_q4", "kv_q12")


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------


def noise_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def gaussian_noise(h: int, w: int, sigma: float, seed: int = 0, grey: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(128.0, sigma, (h, w, 1 if grey else 3))
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return np.repeat(x, 3, axis=2) if grey else x


def checkerboard(n: int) -> np.ndarray:
    board = (np.indices((n, n)).sum(axis=0) % 2 * 255).astype(np.uint8)
    return np.repeat(board[:, :, None], 3, axis=2)


def bayer_demosaiced(img: np.ndarray) -> np.ndarray:
    """Sample ``img`` on an RGGB Bayer mosaic and demosaic it bilinearly, as a simple camera would."""
    mosaic = np.zeros(img.shape[:2], dtype=np.uint8)
    mosaic[0::2, 0::2] = img[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = img[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = img[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = img[1::2, 1::2, 2]
    return cv2.cvtColor(mosaic, cv2.COLOR_BayerBG2RGB)


def golden_inputs() -> dict[str, np.ndarray]:
    return {
        "noise64": noise_image(64, 64, seed=0),
        "checker32": checkerboard(32),
        "astronaut_half": np.ascontiguousarray(data.astronaut()[::2, ::2]),
    }


def feat(image, **settings) -> dict[str, float]:
    return dict(zip(noise_names(**settings), noise_features(image, **settings)))


def group(f: dict[str, float], prefix: str) -> np.ndarray:
    return np.array([v for k, v in f.items() if k.startswith(prefix)])


# --------------------------------------------------------------------------------------------------
# Contract
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [{}, {"truncation": 1, "step_scale": 1.5, "max_size": 64}, {"truncation": 3}])
def test_length_matches_names(settings):
    out = noise_features(noise_image(40, 50), **settings)
    names = noise_names(**settings)
    assert out.shape == (len(names),)
    assert len(set(names)) == len(names)
    assert np.all(np.isfinite(out))


def test_registered_names_are_prefixed_and_unique():
    block = get_block("noise")
    names = block.feature_names()
    assert names == [f"noise__{n}" for n in noise_names()]
    assert len(set(names)) == len(names)
    assert "default" in block.presets and block.reference
    assert "d2h_q2__cooc_h_t2__1_m1" in noise_names()
    assert "d2h_q3__cooc_h_t1__1_m1" in noise_names(truncation=1, step_scale=1.5)
    assert block.compute(noise_image(32, 32)).shape == (len(names),)


def test_names_follow_the_filter_bank():
    names = noise_names()
    per_filter = 2 + 5 + 9 + 9  # std, kurtosis, histogram, h and v co-occurrence classes
    assert [n.split("__")[0] for n in names[: 8 * per_filter : per_filter]] == list(FILTERS)


@pytest.mark.parametrize(
    "image",
    [
        np.full((48, 48, 3), 128, dtype=np.uint8),
        np.zeros((1, 1, 3), dtype=np.uint8),
        noise_image(2, 3),
        noise_image(32, 32),
        noise_image(256, 256),
        noise_image(37, 301),
        np.repeat(noise_image(64, 64)[:, :, :1], 3, axis=2),  # grey-looking RGB
        data.astronaut(),
    ],
    ids=["constant", "1x1", "2x3", "32x32", "256x256", "37x301", "grey", "astronaut"],
)
def test_finite_on_awkward_images(image):
    out = noise_features(image)
    assert out.shape == (len(noise_names()),)
    assert np.all(np.isfinite(out))


def test_large_image_is_centre_cropped():
    big = noise_image(2000, 1500, seed=3)
    out = noise_features(big)
    assert out.shape == (len(noise_names()),)
    np.testing.assert_array_equal(out, noise_features(np.ascontiguousarray(center_crop(big, 512))))
    small = noise_features(big, max_size=64)
    crop64 = np.ascontiguousarray(center_crop(big, 64))
    np.testing.assert_array_equal(small, noise_features(crop64, max_size=64))


def test_path_array_and_views_agree(tmp_path):
    img = np.ascontiguousarray(data.astronaut()[100:196, 150:270])
    path = tmp_path / "crop.png"
    Image.fromarray(img).save(path)
    from_array = noise_features(img)
    np.testing.assert_array_equal(from_array, noise_features(path))
    np.testing.assert_array_equal(from_array, noise_features(str(path)))
    views = ImageViews(img)
    np.testing.assert_array_equal(from_array, noise_features(views))
    np.testing.assert_array_equal(from_array, noise_features(views))  # shared views are not modified
    np.testing.assert_array_equal(views.rgb, img)


@pytest.mark.parametrize(
    ("settings", "param"),
    [
        ({"truncation": 0}, "truncation"),
        ({"truncation": 9}, "truncation"),
        ({"step_scale": 0.0}, "step_scale"),
        ({"step_scale": float("nan")}, "step_scale"),
        ({"max_size": 4}, "max_size"),
    ],
)
def test_bad_settings_raise(settings, param):
    with pytest.raises(ValueError, match=param):
        noise_features(noise_image(16, 16), **settings)


# --------------------------------------------------------------------------------------------------
# Values we can reason about
# --------------------------------------------------------------------------------------------------


def test_constant_image_is_all_zero_residual():
    f = feat(np.full((40, 40, 3), 93, dtype=np.uint8))
    for flt in FILTERS:
        assert f[f"{flt}__hist_t2__0"] == 1.0
        assert f[f"{flt}__cooc_h_t2__0_0"] == 1.0 and f[f"{flt}__cooc_v_t2__0_0"] == 1.0
        assert f[f"{flt}__log_std_rel"] == pytest.approx(0.0, abs=1e-6)
        assert f[f"{flt}__log_kurt"] == pytest.approx(np.log(3.0), abs=1e-6)
    assert f["median_resid__hist__0"] == 1.0
    assert np.all(group(f, "cfa") == 0.0)


def test_histograms_and_cooccurrences_are_distributions():
    f = feat(data.astronaut())
    for flt in FILTERS:
        assert group(f, f"{flt}__hist").sum() == pytest.approx(1.0)
        assert group(f, f"{flt}__cooc_h").sum() == pytest.approx(1.0)
        assert group(f, f"{flt}__cooc_v").sum() == pytest.approx(1.0)
    assert group(f, "median_resid__hist").sum() == pytest.approx(1.0)


def test_gaussian_white_noise_statistics():
    f = feat(gaussian_noise(256, 256, sigma=12.0, seed=2))
    for flt in FILTERS:
        # residual RMS over kernel norm equals the image std for white noise
        assert f[f"{flt}__log_std_rel"] == pytest.approx(0.0, abs=0.05), flt
        assert f[f"{flt}__log_kurt"] == pytest.approx(np.log(3.0), abs=0.1), flt
    photo = feat(data.astronaut())
    assert photo["d1h_q1__log_std_rel"] < -1.0  # a photo is much smoother than white noise
    assert photo["d1h_q1__log_kurt"] > np.log(3.0) + 0.5  # and its residuals heavy-tailed


def test_cross_channel_correlation_grey_vs_colour_noise():
    grey = feat(gaussian_noise(128, 128, sigma=20.0, grey=True))
    colour = feat(gaussian_noise(128, 128, sigma=20.0))
    np.testing.assert_allclose(group(grey, "xcorr"), 1.0, atol=1e-6)
    assert np.all(np.abs(group(colour, "xcorr")) < 0.1)
    assert np.all(group(feat(data.astronaut()), "xcorr") > 0.7)


def test_bayer_demosaicing_leaves_cfa_traces():
    photo = np.ascontiguousarray(data.astronaut()[:256, :256])
    camera, plain = feat(bayer_demosaiced(photo)), feat(photo)
    assert camera["cfa__g__diag"] > 2.0 > 0.2 > plain["cfa__g__diag"]
    for ch in "rb":
        assert camera[f"cfa__{ch}__rows"] > 0.5 and camera[f"cfa__{ch}__cols"] > 0.5
    # independent of which pixel the crop starts on
    shifted = feat(bayer_demosaiced(photo)[1:, 1:])
    assert shifted["cfa__g__diag"] == pytest.approx(camera["cfa__g__diag"], rel=0.05)


def test_row_replicated_image_separates_directions():
    # every row is the same random line: vertical differences vanish, vertical neighbours are equal
    line = noise_image(1, 96, seed=5)
    f = feat(np.ascontiguousarray(np.repeat(line, 64, axis=0)))
    for flt in ("d1v_q1", "d2v_q2", "d3v_q3"):
        assert f[f"{flt}__hist_t2__0"] == 1.0
    # in the d1h residual, vertically adjacent values are equal: only the (a, a) classes occur
    diagonal = sum(f[f"d1h_q1__cooc_v_t2__{c}"] for c in ("0_0", "1_1", "2_2"))
    assert diagonal == pytest.approx(1.0)
    assert f["d1h_q1__cooc_h_t2__0_0"] + f["d1h_q1__cooc_h_t2__1_1"] + f["d1h_q1__cooc_h_t2__2_2"] < 0.9


def test_transposed_image_swaps_directions():
    img = np.ascontiguousarray(data.astronaut()[40:200, 60:260])
    f, ft = feat(img), feat(np.ascontiguousarray(img.transpose(1, 0, 2)))
    swap = {"d1h": "d1v", "d2h": "d2v", "d3h": "d3v", "kb": "kb", "kv": "kv"}
    swap.update({b: a for a, b in swap.items()})
    for key, val in f.items():
        filt, _, rest = key.partition("_q")
        if filt in swap:
            other = swap[filt] + "_q" + rest
            other = other.replace("cooc_h", "COOC").replace("cooc_v", "cooc_h").replace("COOC", "cooc_v")
            assert val == pytest.approx(ft[other], rel=1e-5, abs=1e-9), key
    for ch in "rgb":
        assert f[f"cfa__{ch}__rows"] == pytest.approx(ft[f"cfa__{ch}__cols"], rel=1e-5, abs=1e-9)


def test_negative_image_has_the_same_cooccurrences():
    img = np.ascontiguousarray(data.astronaut()[:200, :200])
    f, fn = feat(img), feat(255 - img)
    for key, val in f.items():
        if "cooc" in key or key.endswith("log_std_rel") or key.startswith("xcorr"):
            assert val == pytest.approx(fn[key], abs=2e-3), key


def test_coarser_quantisation_concentrates_the_histogram():
    img = np.ascontiguousarray(data.astronaut()[:200, :200])
    fine, coarse = feat(img), feat(img, step_scale=2.0)
    assert coarse["d1h_q2__hist_t2__0"] > fine["d1h_q1__hist_t2__0"]


# --------------------------------------------------------------------------------------------------
# Golden baseline
# --------------------------------------------------------------------------------------------------


def test_golden_baseline():
    check_golden('noise', golden_inputs(), noise_features, noise_names())
