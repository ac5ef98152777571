"""Tests of the ``faceparts`` block: contract, geometry we can compute by hand, splices it must see,
golden baseline, and the detector path (optional ``yuface``; those tests skip without it).

The feature maths is tested through :func:`faceparts_from_landmarks` with landmarks given by hand, so
it runs without the detector. Regenerate the baseline after an intended change with
``FORENSICS_REGEN_GOLDEN=1 pytest tests/test_block_faceparts.py`` and commit ``tests/golden/faceparts.csv``.
"""

from __future__ import annotations

import importlib.util

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from skimage import data

from cli_utils import run
from forensics import faces
from forensics.errors import UsageError
from forensics.extraction import FeatureSpec
from forensics.features import get_block, resolve_blocks
from forensics.features.faceparts import MAPS, _n_features, faceparts_features, faceparts_from_landmarks, faceparts_names
from golden_utils import check_golden

needs_yuface = pytest.mark.skipif(not faces.faces_available(), reason="optional package yuface not installed")

ASTRONAUT = data.astronaut()
# Landmarks of the astronaut's face (libfacedetection on the full 512 px image): right eye, left eye,
# nose tip, right and left mouth corners; and the face box.
ASTRO_POINTS = np.array([[202.7, 106.7], [244.3, 106.7], [221.9, 128.0], [204.8, 144.0], [242.2, 145.1]])
ASTRO_BOX = (181, 65, 86, 113)
# A frontal layout for synthetic tests: eyes 40 px apart.
FRONTAL = np.array([[100.0, 100.0], [140.0, 100.0], [120.0, 125.0], [105.0, 145.0], [135.0, 145.0]])


def _f(img, points, **kw) -> dict[str, float]:
    settings = {k: v for k, v in kw.items() if k in ("radii", "max_size")}
    names = get_block("faceparts").feature_names(settings)
    return dict(zip(names, faceparts_from_landmarks(img, points, **kw)))


def _textured(h=240, w=240, seed=0) -> np.ndarray:
    """A smooth skin-like gradient with mild sensor-like noise, the same everywhere."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = np.stack([170 + 20 * np.sin(xx / 40), 130 + 15 * np.cos(yy / 50), 110 + 10 * np.sin((xx + yy) / 60)], axis=2)
    return np.clip(np.rint(base + rng.normal(0, 3, (h, w, 3))), 0, 255).astype(np.uint8)


def _square(points, k, half):
    x, y = np.rint(points[k]).astype(int)
    return slice(y - half, y + half), slice(x - half, x + half)


# --------------------------------------------------------------------------------------------------
# Contract
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [{}, {"radii": (0.25,)}, {"radii": (0.1, 0.2, 0.3, 0.5), "max_size": 128}])
def test_length_matches_names_and_names_are_prefixed(settings):
    names = get_block("faceparts").feature_names(settings)
    radii = settings.get("radii", (0.2, 0.3, 0.4))
    assert len(names) == _n_features(radii) == 1 + 13 + 12 + len(MAPS) * (1 + 12 * len(radii))
    assert len(set(names)) == len(names) and all(n.startswith("faceparts__") for n in names)
    out = faceparts_from_landmarks(ASTRONAUT, ASTRO_POINTS, box=ASTRO_BOX, score=0.9, **settings)
    assert out.shape == (len(names),) and out.dtype == np.float64
    assert out[0] == 1.0 and np.isfinite(out).all()


def test_not_in_the_default_preset_but_in_faces():
    assert "faceparts" not in resolve_blocks("default")
    assert resolve_blocks("faces") == resolve_blocks("default") + ["faceparts"]


def test_missing_detector_is_one_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "yuface" else real(name, *a))
    with pytest.raises(UsageError, match=r"faceparts.*yuface.*forensics\[faces\]"):
        resolve_blocks("faces")


@pytest.mark.parametrize("settings", [{"radii": ()}, {"radii": (0.2, 0.2)}, {"radii": (2.0,)}, {"detect_side": 16}, {"min_score": 1.5}, {"max_size": 10}])
def test_bad_settings_are_refused_before_a_batch(settings):
    with pytest.raises(UsageError, match="invalid settings for block 'faceparts'"):
        FeatureSpec.create("faceparts", settings={"faceparts": settings})


@pytest.mark.parametrize(
    "points",
    [FRONTAL * 0.1, FRONTAL + 5000.0, np.full((5, 2), np.nan)],
    ids=["eyes-too-close", "outside-the-image", "nan"],
)
def test_unusable_landmarks_give_not_found_and_nan(points):
    out = faceparts_from_landmarks(_textured(), points)
    assert out[0] == 0.0 and np.isnan(out[1:]).all()


# --------------------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------------------


def test_geometry_by_hand():
    f = _f(_textured(), FRONTAL, box=(80, 70, 80, 100), score=0.8)
    expected = {
        "nose_x": 0.0, "nose_y": 25 / 40, "mouth_r_x": -15 / 40, "mouth_r_y": 45 / 40, "mouth_l_x": 15 / 40,
        "mouth_l_y": 45 / 40, "mouth_width": 30 / 40, "mouth_tilt": 0.0, "mouth_nose_dx": 0.0,
        "mouth_nose_dy": 20 / 40, "score": 0.8, "eyes_over_box_w": 40 / 80, "box_aspect": 100 / 80,
    }  # fmt: skip
    for k, v in expected.items():
        assert f[f"faceparts__geo__{k}"] == pytest.approx(v, abs=1e-9), k


@pytest.mark.parametrize("angle,scale", [(30.0, 1.0), (-15.0, 1.7), (0.0, 0.6)])
def test_geometry_ignores_roll_scale_and_position(angle, scale):
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    moved = (FRONTAL - 120.0) @ rot.T * scale + np.array([130.0, 115.0])
    img = _textured()
    g0 = {k: v for k, v in _f(img, FRONTAL).items() if "__geo__" in k and "box" not in k and "score" not in k}
    g1 = {k: v for k, v in _f(img, moved).items() if "__geo__" in k and "box" not in k and "score" not in k}
    for k in g0:
        assert g1[k] == pytest.approx(g0[k], abs=1e-9), k


def test_a_misplaced_mouth_moves_the_geometry():
    shifted = FRONTAL.copy()
    shifted[3:] += [8.0, 10.0]
    f0, f1 = _f(_textured(), FRONTAL), _f(_textured(), shifted)
    assert f1["faceparts__geo__mouth_nose_dx"] == pytest.approx(0.2) and f0["faceparts__geo__mouth_nose_dx"] == 0.0
    assert f1["faceparts__geo__mouth_r_y"] - f0["faceparts__geo__mouth_r_y"] == pytest.approx(0.25)


# --------------------------------------------------------------------------------------------------
# Splices: a pasted part must stand out from the skin, and only that part
# --------------------------------------------------------------------------------------------------


def test_a_noisier_pasted_eye_stands_out_in_the_noise_maps():
    img = _textured()
    spliced = img.copy()
    rng = np.random.default_rng(5)
    sq = _square(FRONTAL, 1, 9)  # the left eye; its filters' reach stays clear of the other regions
    spliced[sq] = np.clip(spliced[sq] + rng.normal(0, 12, spliced[sq].shape), 0, 255).astype(np.uint8)
    f0, f1 = _f(img, FRONTAL), _f(spliced, FRONTAL)
    for r in ("0p2", "0p3"):
        for m in ("res", "var", "lap"):  # not ela: a JPEG round trip mixes a 16-pixel neighbourhood
            assert f1[f"faceparts__r{r}__abs__eye_l__{m}"] > f0[f"faceparts__r{r}__abs__eye_l__{m}"] + 0.5, (r, m)
            assert f1[f"faceparts__r{r}__abs__eyes__{m}"] > f0[f"faceparts__r{r}__abs__eyes__{m}"] + 0.5, (r, m)
            # the other parts are compared with the same skin: unchanged
            for part in ("eye_r", "nose", "mouth"):
                assert f1[f"faceparts__r{r}__abs__{part}__{m}"] == pytest.approx(f0[f"faceparts__r{r}__abs__{part}__{m}"], abs=1e-9)
    # colour was not touched (zero-mean noise): the colour comparisons barely move
    assert abs(f1["faceparts__r0p2__abs__eye_l__a"] - f0["faceparts__r0p2__abs__eye_l__a"]) < 1.0


def test_a_mouth_with_another_skin_tone_stands_out_in_the_colour_maps():
    img = _textured()
    spliced = img.copy()
    mouth = ((FRONTAL[3] + FRONTAL[4]) / 2).round().astype(int)
    sq = slice(mouth[1] - 8, mouth[1] + 8), slice(mouth[0] - 8, mouth[0] + 8)  # the mouth's r = 0.2 square
    spliced[sq] = np.clip(spliced[sq].astype(int) + [25, -10, -10], 0, 255).astype(np.uint8)  # redder
    f0, f1 = _f(img, FRONTAL), _f(spliced, FRONTAL)
    assert f1["faceparts__r0p2__diff__mouth__a"] > f0["faceparts__r0p2__diff__mouth__a"] + 8  # CIELAB a*: red
    assert f1["faceparts__r0p2__abs__mouth__a"] > f0["faceparts__r0p2__abs__mouth__a"] + 8
    assert f1["faceparts__r0p2__abs__eye_r__a"] == pytest.approx(f0["faceparts__r0p2__abs__eye_r__a"], abs=1e-9)
    assert abs(f1["faceparts__r0p2__abs__mouth__res"] - f0["faceparts__r0p2__abs__mouth__res"]) < 0.05  # noise untouched


# --------------------------------------------------------------------------------------------------
# Where it looks
# --------------------------------------------------------------------------------------------------


def test_only_the_face_neighbourhood_counts_and_on_the_jpeg_grid():
    """Padding the image by a multiple of 8 pixels (landmarks shifted with it) changes nothing."""
    img = _textured(300, 300)  # every region and the crop around them inside the image
    padded = np.pad(img, ((16, 40), (24, 8), (0, 0)), mode="reflect")
    a = faceparts_from_landmarks(img, FRONTAL)
    b = faceparts_from_landmarks(padded, FRONTAL + [24.0, 16.0])
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)  # float32 maps: OpenCV's threads may sum in another order


def test_large_faces_are_shrunk_to_max_size():
    big = cv2.resize(ASTRONAUT, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    box = tuple(2 * v for v in ASTRO_BOX)
    small = faceparts_from_landmarks(big, ASTRO_POINTS * 2, box=box, score=0.9, max_size=128)
    full = faceparts_from_landmarks(big, ASTRO_POINTS * 2, box=box, score=0.9)
    names = faceparts_names(max_size=128)
    assert small[0] == 1.0 and np.isfinite(small).all()
    geo = [i for i, n in enumerate(names) if "__geo__" in n]
    np.testing.assert_allclose(small[geo], full[geo], equal_nan=True)  # geometry is measured before any shrinking
    colour = [i for i, n in enumerate(names) if n.endswith("__centre__L")]
    np.testing.assert_allclose(small[colour], full[colour], atol=1.0)  # area shrinking keeps mean colours


def test_golden_values():
    inputs = {
        "astronaut": (ASTRONAUT, ASTRO_POINTS, ASTRO_BOX),
        "astronaut_half": (np.ascontiguousarray(ASTRONAUT[::2, ::2]), (ASTRO_POINTS + 0.5) / 2 - 0.5, None),
        "textured": (_textured(), FRONTAL, (80, 70, 80, 100)),
    }
    check_golden(
        "faceparts",
        {k: k for k in inputs},
        lambda key: faceparts_from_landmarks(inputs[key][0], inputs[key][1], box=inputs[key][2], score=0.9),
        get_block("faceparts").feature_names(),
        rtol=1e-4,
        atol=1e-5,
    )


# --------------------------------------------------------------------------------------------------
# With the detector
# --------------------------------------------------------------------------------------------------


@needs_yuface
def test_detector_path_finds_the_astronaut_and_agrees_with_given_landmarks():
    out = faceparts_features(ASTRONAUT)
    names = faceparts_names()
    f = dict(zip(names, out))
    assert f["face_found"] == 1.0 and np.isfinite(out).all()
    given = dict(zip(names, faceparts_from_landmarks(ASTRONAUT, ASTRO_POINTS, box=ASTRO_BOX)))
    # detection on a 128 px copy places landmarks to within a few of the 512 px image's pixels
    for k, tol in (("nose_x", 0.12), ("nose_y", 0.12), ("mouth_nose_dy", 0.12), ("mouth_width", 0.2)):
        assert f[f"geo__{k}"] == pytest.approx(given[f"geo__{k}"], abs=tol), k
    assert 0.5 <= f["geo__score"] <= 1.0


@needs_yuface
@pytest.mark.parametrize("img", [np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8), np.full((64, 64, 3), 128, np.uint8), np.zeros((16, 16, 3), np.uint8)], ids=["noise", "flat", "tiny"])
def test_no_face_gives_not_found_and_nan(img):
    out = get_block("faceparts").compute(img)
    assert out[0] == 0.0 and np.isnan(out[1:]).all()


@needs_yuface
def test_cli_extract_with_the_faces_preset(tmp_path):
    (tmp_path / "in").mkdir()
    Image.fromarray(ASTRONAUT).save(tmp_path / "in" / "astronaut.png")
    Image.fromarray(_textured()).save(tmp_path / "in" / "skin.png")
    run("extract", tmp_path / "in", "--out", tmp_path / "f.parquet", "--blocks", "faces", "--no-cache")
    table = pq.read_table(tmp_path / "f.parquet").to_pandas().set_index("path")
    found = {p.rsplit("/", 1)[-1]: v for p, v in table["faceparts__face_found"].items()}
    assert found == {"astronaut.png": 1.0, "skin.png": 0.0}
    assert any(c.startswith("cooc__") for c in table.columns)  # the default blocks come with it


@needs_yuface
def test_a_faces_model_records_the_detector_and_needs_it_to_score(tmp_path, monkeypatch):
    from forensics import api
    from forensics.model import ForensicModel

    rng = np.random.default_rng(0)
    for k in range(6):
        img = np.clip(ASTRONAUT.astype(int) + rng.integers(-6, 7, ASTRONAUT.shape), 0, 255).astype(np.uint8)
        for label, im in (("real", img), ("fake", cv2.GaussianBlur(img, (0, 0), 1.5 + 0.2 * k))):
            (tmp_path / "d" / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(im).save(tmp_path / "d" / label / f"{k}.png")
    model, _ = api.train([tmp_path / "d"], blocks="faceparts", classifier="logreg", n_splits=2, cache_dir=None)
    model.save(tmp_path / "m.skops")
    loaded = ForensicModel.load(tmp_path / "m.skops")
    info = loaded.card["block_info"]["faceparts"]
    assert "YuNet" in info["detector"] and info["versions"]["yuface"]
    # on a machine without the detector, scoring with this model is one clear error
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "yuface" else real(name, *a))
    result = run("score", tmp_path / "m.skops", tmp_path / "d", "--out", tmp_path / "s.csv", "--no-cache", ok=False)
    assert result.exit_code != 0 and "forensics[faces]" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
