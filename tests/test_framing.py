"""The framing audit: where the largest face sits and how it is turned, as a shortcut that predicts the
label (``forensics audit --framing``), and the AUC over pairs framed alike that discounts it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from forensics import faces
from forensics.cli import app
from forensics.pipelines.audit import (
    FRAMING_COLUMNS,
    audit_data,
    framing_audit,
    framing_message,
    framing_record,
    framing_strata,
)
from forensics.pipelines.metrics import stratified_auc

runner = CliRunner()
needs_yuface = pytest.mark.skipif(not faces.faces_available(), reason="optional package yuface not installed")

# The astronaut photo bundled with scikit-image: one face, its box about (181, 65, 86, 113).
ASTRONAUT = skdata.astronaut()


def _crop(top: int, left: int, side: int = 160) -> np.ndarray:
    return np.ascontiguousarray(ASTRONAUT[top:top + side, left:left + side])


# --------------------------------------------------------------------------------------------------
# stratified_auc and framing_strata (no detector needed)
# --------------------------------------------------------------------------------------------------


def test_stratified_auc_with_one_group_is_the_auc():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    s = rng.normal(size=100) + y
    auc, pairs = stratified_auc(y, s, np.zeros(100))
    assert auc == pytest.approx(roc_auc_score(y, s)) and pairs == 50 * 50


def test_stratified_auc_counts_pairs_within_groups_only():
    # group 0: every fake above every real (AUC 1, 2 x 2 pairs); group 1: every fake below (AUC 0, 1 x 3);
    # group 2 holds fakes only and counts for nothing
    y = np.array([0, 0, 1, 1, 0, 1, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.8, 0.9, 0.9, 0.1, 0.2, 0.3, 0.5, 0.6])
    g = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    auc, pairs = stratified_auc(y, s, g)
    assert pairs == 4 + 3
    assert auc == pytest.approx((1.0 * 4 + 0.0 * 3) / 7)


def test_stratified_auc_leaves_out_unscored_rows_and_says_when_no_group_has_both_classes():
    y = np.array([0, 1, 0, 1])
    auc, pairs = stratified_auc(y, [0.1, np.nan, 0.2, 0.9], [0, 0, 1, 1])
    assert pairs == 1 and auc == 1.0
    auc, pairs = stratified_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1])
    assert pairs == 0 and math.isnan(auc)
    with pytest.raises(ValueError, match="differ in length"):
        stratified_auc([0, 1], [0.1, 0.2, 0.3], [0, 0])


def _records(face_y, eye_distance):
    return [dict(zip(FRAMING_COLUMNS, [1.0, 0.5, fy, 0.3, 0.4, 0.5, fy - 0.05, d, 0.0, 0.0]))
            for fy, d in zip(face_y, eye_distance)]


def test_strata_discount_a_score_that_is_the_framing_and_keep_one_that_is_not():
    """Fakes framed lower: a score that is the face's height in the picture has a high AUC over all pairs
    and none over pairs framed alike; a score independent of the framing keeps its AUC."""
    rng = np.random.default_rng(1)
    n = 400
    y = np.repeat([0, 1], n // 2)
    face_y = rng.normal(0.45, 0.05, n) + 0.06 * y
    records = _records(face_y, rng.normal(0.25, 0.03, n))
    groups = framing_strata(records, y)
    assert len(np.unique(groups)) > 1
    shortcut = face_y + rng.normal(0, 0.005, n)
    assert roc_auc_score(y, shortcut) > 0.75
    assert abs(stratified_auc(y, shortcut, groups)[0] - 0.5) < 0.12
    trace = rng.normal(size=n) + 1.0 * y  # a forensic trace, unrelated to where the face is
    assert stratified_auc(y, trace, groups)[0] == pytest.approx(roc_auc_score(y, trace), abs=0.05)


def test_framing_audit_flags_a_framing_that_predicts_the_label_and_skips_unreadable_images():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 30)
    records = _records(0.4 + 0.2 * y + rng.normal(0, 0.02, 60), rng.normal(0.25, 0.03, 60))
    result = framing_audit(records + [None], np.append(y, 1))
    assert result["columns"]["face_y"] > 0.95 and "face_y" in result["flagged"] and "all" in result["flagged"]
    assert result["columns"]["face_found"] == 0.5 and "eye_distance" not in result["flagged"]
    assert result["n"] == 60 and result["n_skipped"] == 1 and result["n_faces_real"] == result["n_faces_fake"] == 30
    msg = framing_message(result)
    assert msg.startswith("framing audit:") and "face_y (AUC 1.00)" in msg
    assert framing_message({"flagged": []}) is None
    with pytest.raises(ValueError, match="2 framing records but 3 labels"):
        framing_audit(records[:2], [0, 1, 1])
    with pytest.raises(ValueError, match="lack the columns"):
        framing_audit([{"face_found": 1.0}], [0])


# --------------------------------------------------------------------------------------------------
# framing_record (needs the detector)
# --------------------------------------------------------------------------------------------------


@needs_yuface
def test_framing_record_places_the_face_in_the_picture():
    high, low = framing_record(_crop(71, 144)), framing_record(_crop(21, 144))
    for r in (high, low):
        assert r["face_found"] == 1.0 and set(r) == set(FRAMING_COLUMNS)
        assert 0.0 < r["face_x"] < 1.0 and 0.0 < r["face_w"] < 1.0 and abs(r["roll"]) < 10.0
    # the same face 50 pixels lower in a 160-pixel picture: about 0.31 of the height lower
    assert low["face_y"] - high["face_y"] == pytest.approx(50 / 160, abs=0.03)
    assert low["eyes_y"] - high["eyes_y"] == pytest.approx(50 / 160, abs=0.03)
    assert low["face_w"] == pytest.approx(high["face_w"], abs=0.05)  # the box, to a few pixels
    assert low["eye_distance"] == pytest.approx(high["eye_distance"], abs=0.02)
    # off centre, and its mirror image: the face moves across the midline
    right = framing_record(_crop(71, 124))
    flip = framing_record(np.ascontiguousarray(_crop(71, 124)[:, ::-1]))
    assert right["eyes_x"] == pytest.approx(100 / 160, abs=0.04)
    assert flip["eyes_x"] == pytest.approx(1.0 - right["eyes_x"], abs=0.04)
    # halved, the picture frames the face the same way
    half = framing_record(np.ascontiguousarray(ASTRONAUT[::2, ::2]))
    whole = framing_record(ASTRONAUT)
    for key in ("face_x", "face_y", "eyes_x", "eyes_y", "eye_distance"):
        assert half[key] == pytest.approx(whole[key], abs=0.02)


@needs_yuface
def test_framing_record_without_a_face_is_nan():
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    for rgb in (noise, _crop(71, 144, side=24)):  # no face; too small to search
        r = framing_record(rgb)
        assert r["face_found"] == 0.0 and all(math.isnan(r[c]) for c in FRAMING_COLUMNS[1:])


# --------------------------------------------------------------------------------------------------
# forensics audit --framing, end to end on real files
# --------------------------------------------------------------------------------------------------


def _write(root: Path, tops: dict) -> Path:
    for cls, top in tops.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i, dx in enumerate((-6, -3, 0, 3, 6, -5, 5, 1)):
            dy = (i % 3) * 3 - 3
            Image.fromarray(_crop(top + dy, 144 + dx)).save(root / cls / f"{cls}{i}.png")
    return root


@needs_yuface
def test_audit_command_flags_fakes_cropped_lower(tmp_path):
    data = _write(tmp_path / "d", {"real": 71, "fake": 21})
    out = tmp_path / "audit.json"
    r = runner.invoke(app, ["audit", str(data), "--framing", "--no-cache", "--out", str(out)])
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert "framing audit (a face in 8 of 8 real, 8 of 8 fake)" in " ".join(r.stdout.split())
    assert "framing audit: where the face sits predicts the label" in " ".join(r.stderr.split())
    result = json.loads(out.read_text())
    assert "width" in result["columns"] and result["columns"]["width"] == 0.5  # the provenance audit, as before
    assert {"face_y", "eyes_y"} <= set(result["framing"]["flagged"])
    assert result["framing"]["columns"]["face_y"] == 1.0


@needs_yuface
def test_audit_command_is_quiet_when_both_classes_are_framed_alike(tmp_path):
    data = _write(tmp_path / "d", {"real": 71, "fake": 71})
    r = runner.invoke(app, ["audit", str(data), "--framing", "--no-cache"])
    assert r.exit_code == 0, (r.stdout, r.stderr)
    assert "no framing shortcut" in r.stdout and "warning" not in r.stderr


def test_audit_framing_without_the_detector_fails_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(faces, "faces_available", lambda: False)
    r = runner.invoke(app, ["audit", str(tmp_path / "missing"), "--framing"])
    assert r.exit_code == 2 and "yuface" in r.stderr and "forensics[faces]" in r.stderr


@needs_yuface
def test_audit_data_reports_both_stages(tmp_path):
    data = _write(tmp_path / "d", {"real": 71, "fake": 21})
    seen = []
    result = audit_data([data], framing=True, progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert {s for s, _, _ in seen} == {"reading images", "finding faces"}
    assert ("finding faces", 16, 16) in seen and result["framing"]["n"] == 16


def test_audit_command_says_when_the_framing_is_not_chance_below_the_flag(tmp_path, monkeypatch):
    """A framing AUC between 0.6 and the flag level is no shortcut, but the command says it is not chance."""
    import forensics.pipelines.audit as audit_module

    rng = np.random.default_rng(3)
    root = tmp_path / "d"
    for cls in ("real", "fake"):
        (root / cls).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(root / cls / f"{cls}{i:02d}.png")
    # files are listed real first; face_y a little lower on the fakes: AUC about 0.7
    face_y = np.concatenate([np.linspace(0.40, 0.60, 20), np.linspace(0.44, 0.64, 20)])
    monkeypatch.setattr(faces, "faces_available", lambda: True)
    monkeypatch.setattr(audit_module, "framing_records", lambda paths, **kw: _records(face_y, np.full(40, 0.25)))
    out = tmp_path / "audit.json"
    r = runner.invoke(app, ["audit", str(root), "--framing", "--no-cache", "--out", str(out)])
    assert r.exit_code == 0, (r.stdout, r.stderr)
    f = json.loads(out.read_text())["framing"]
    assert 0.6 <= f["columns"]["face_y"] <= 0.75 and f["flagged"] == []
    text = " ".join(r.stdout.split())
    assert f"framing alone: AUC up to {f['columns']['face_y']:.2f} (face_y)" in text and "not chance" in text
    assert "warning" not in r.stderr
