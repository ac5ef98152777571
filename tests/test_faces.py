"""Face detection and face crops (optional ``yuface``): detector, crops at native resolution, the
``face_crop`` loader option in cache keys, models and the CLI.

Tests needing the detector skip cleanly when yuface is not installed; the rest (crop geometry, the
missing-package message, cache keys) always run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image
from skimage import data as skdata

from forensics import api, faces
from forensics.errors import UsageError
from forensics.extraction import FeatureSpec, features_for_array, iter_features
from forensics.model import ForensicModel
from cli_utils import run

needs_yuface = pytest.mark.skipif(not faces.faces_available(), reason="optional package yuface not installed")

# The astronaut photo bundled with scikit-image: one face, near (178, 63), about 89 x 112 pixels.
ASTRONAUT = skdata.astronaut()


def noise(shape=(96, 128, 3), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# Crop geometry (no detector needed)
# --------------------------------------------------------------------------------------------------


def test_crop_box_adds_margin_aligns_origin_and_clips():
    # face 100x100 at (200, 150) in a 480x640 image, margin 0.3 -> (170, 120)..(330, 280), origin to 16s
    assert faces.crop_box((200, 150, 100, 100), (480, 640, 3), margin=0.3) == (160, 112, 170, 168)
    # near the corner: clipped at 0 and at the far sides
    x, y, w, h = faces.crop_box((5, 5, 50, 50), (60, 60, 3), margin=0.5)
    assert (x, y) == (0, 0) and (w, h) == (60, 60)
    with pytest.raises(ValueError, match="margin"):
        faces.crop_box((0, 0, 10, 10), (20, 20), margin=-1)


def test_format_box():
    assert faces.format_box(None) == ""
    assert faces.format_box((1, 2, 30, 40)) == "1,2,30,40"


def test_missing_yuface_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(faces, "faces_available", lambda: False)
    with pytest.raises(UsageError, match=r"yuface.*pip install"):
        FeatureSpec.create("color", face_crop=True)
    Image.fromarray(noise()).save(tmp_path / "a.png")
    result = run("extract", tmp_path, "--out", tmp_path / "f.parquet", "--blocks", "color", "--face-crop", ok=False)
    assert result.exit_code == 2
    assert "yuface" in result.stderr and "Traceback" not in result.stderr


def test_cache_keys_unchanged_without_face_crop():
    plain = FeatureSpec.create("color")
    cropped = FeatureSpec(blocks=plain.blocks, settings=plain.settings, face_crop=True)
    a, b = plain.cache_keys("abc"), cropped.cache_keys("abc")
    from forensics.features.base import get_block

    assert a["color"] == f"abc:{get_block('color').settings_key(plain.settings['color'])}"
    assert "face" not in a and "face" in b
    assert a["color"] != b["color"] and a["diag"] == b["diag"]  # diag describes the file, crop or not


# --------------------------------------------------------------------------------------------------
# Detector
# --------------------------------------------------------------------------------------------------


@needs_yuface
def test_detects_the_astronaut_face():
    found = faces.detect_faces(ASTRONAUT)
    assert len(found) >= 1
    x, y, w, h, score = found[0]
    assert 150 <= x <= 210 and 40 <= y <= 90 and 60 <= w <= 130 and 80 <= h <= 150
    assert 0.5 <= score <= 1.0


@needs_yuface
def test_boxes_are_in_original_pixels_for_large_images():
    big = np.ascontiguousarray(np.repeat(np.repeat(ASTRONAUT, 3, axis=0), 3, axis=1))  # 1536 px: detected on a shrunk copy
    (x, y, w, h, _), = faces.detect_faces(big)[:1]
    x0, y0, w0, h0, _ = faces.detect_faces(ASTRONAUT)[0]
    assert abs(x - 3 * x0) <= 24 and abs(y - 3 * y0) <= 24 and abs(w - 3 * w0) <= 30 and abs(h - 3 * h0) <= 30


@needs_yuface
def test_no_face_in_noise_or_flat_images():
    assert faces.detect_faces(noise()) == []
    assert faces.detect_faces(np.full((64, 64, 3), 128, np.uint8)) == []


@needs_yuface
def test_largest_face_crop_keeps_native_pixels():
    crop, box = faces.largest_face_crop(ASTRONAUT)
    assert box is not None
    x, y, w, h = faces.crop_box(box, ASTRONAUT.shape)
    assert x % 16 == 0 and y % 16 == 0
    np.testing.assert_array_equal(crop, ASTRONAUT[y : y + h, x : x + w])  # cut out, never resized
    assert crop.shape[0] > box[3] and crop.shape[1] > box[2]  # the margin is there
    whole, none = faces.largest_face_crop(noise())
    assert none is None and whole.shape == (96, 128, 3)


@needs_yuface
def test_detect_rejects_bad_arrays():
    with pytest.raises(ValueError):
        faces.detect_faces(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError):
        faces.detect_faces(ASTRONAUT, min_score=2.0)


# --------------------------------------------------------------------------------------------------
# The loader option: features, cache, models, CLI
# --------------------------------------------------------------------------------------------------


@needs_yuface
def test_features_for_array_uses_the_face(tmp_path):
    spec = FeatureSpec.create("color", face_crop=True)
    row = features_for_array(ASTRONAUT, spec)
    assert row.error is None and row.face_box and len(row.face_box.split(",")) == 4
    crop, _ = faces.largest_face_crop(ASTRONAUT)
    plain = features_for_array(crop, FeatureSpec.create("color"))
    np.testing.assert_allclose(row.features, plain.features)
    assert features_for_array(noise(), spec).face_box == ""


@needs_yuface
def test_face_crop_rows_come_back_from_the_cache(tmp_path):
    Image.fromarray(ASTRONAUT).save(tmp_path / "astro.png")
    Image.fromarray(noise()).save(tmp_path / "noise.png")
    spec = FeatureSpec.create("color", face_crop=True)
    paths = [str(tmp_path / "astro.png"), str(tmp_path / "noise.png")]
    first = list(iter_features(paths, spec, cache_dir=tmp_path / "cache"))
    again = list(iter_features(paths, spec, cache_dir=tmp_path / "cache"))
    assert [r.n_computed for r in first] == [1, 1] and [r.n_computed for r in again] == [0, 0]
    assert [r.face_box for r in again] == [r.face_box for r in first] and first[0].face_box and first[1].face_box == ""
    np.testing.assert_array_equal(first[0].features, again[0].features)
    whole = list(iter_features(paths[:1], FeatureSpec.create("color"), cache_dir=tmp_path / "cache"))
    assert whole[0].n_computed == 1 and whole[0].face_box is None  # a different cache entry
    assert not np.allclose(whole[0].features, first[0].features)


@pytest.fixture(scope="module")
def face_data(tmp_path_factory):
    """Astronaut variants: 'real' with mild noise, 'fake' blurred and re-sharpened; plus a face-less one."""
    import cv2

    root = tmp_path_factory.mktemp("faces")
    rng = np.random.default_rng(0)
    for k in range(6):
        img = np.clip(ASTRONAUT.astype(int) + rng.integers(-6, 7, ASTRONAUT.shape), 0, 255).astype(np.uint8)
        (root / "real").mkdir(exist_ok=True)
        Image.fromarray(img).save(root / "real" / f"r{k}.png")
        fake = cv2.GaussianBlur(img, (0, 0), 1.5 + 0.2 * k)
        (root / "fake").mkdir(exist_ok=True)
        Image.fromarray(fake).save(root / "fake" / f"f{k}.png")
    Image.fromarray(noise(seed=3)).save(root / "real" / "noface.png")
    return root


@needs_yuface
def test_cli_extract_train_score_with_face_crop(face_data, tmp_path):
    res = run("extract", face_data, "--out", tmp_path / "f.parquet", "--blocks", "color", "--face-crop", "--no-cache")
    table = pq.read_table(tmp_path / "f.parquet").to_pandas()
    assert list(table.columns[:4]) == ["path", "label", "error", "face_box"]
    assert (table["face_box"] == "").sum() == 1 and "no face found in 1 images" in " ".join(res.stderr.split())

    model = tmp_path / "m.skops"
    run("train", face_data, "--model", model, "--blocks", "color", "--face-crop", "--classifier", "logreg", "--folds", "2", "--no-cache")
    loaded = ForensicModel.load(model)
    assert loaded.spec.face_crop is True and loaded.card["face_crop"] is True

    res = run("score", model, face_data, "--out", tmp_path / "s.csv", "--no-cache")
    scores = pd.read_csv(tmp_path / "s.csv", dtype={"face_box": str})
    assert list(scores.columns[:5]) == ["path", "prob_fake", "label", "error", "face_box"]
    assert scores["face_box"].isna().sum() == 1 and scores["prob_fake"].notna().all()
    assert "no face found in 1 images" in " ".join(res.stderr.split())


def test_models_without_face_crop_record_false(tmp_path):
    from forensics.demo import make_demo_dataset

    make_demo_dataset(tmp_path / "d", n_per_class=6, size=48, seed=2)
    model, _ = api.train([tmp_path / "d"], blocks="color", classifier="logreg", n_splits=2, cache_dir=None)
    model.save(tmp_path / "m.skops")
    assert ForensicModel.load(tmp_path / "m.skops").spec.face_crop is False
