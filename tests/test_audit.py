"""The shortcut audit: provenance columns (size, format, JPEG quality, file size) that predict the label
are flagged by ``forensics audit`` and by ``forensics train``; a clean set stays quiet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from forensics.cli import app
from forensics.pipelines.audit import FLAG_AUC, audit_message, column_auc, shortcut_audit, shortcut_columns

runner = CliRunner()


def _photo(path: Path, rng, size: int, fmt: str = "JPEG", quality: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # smooth random content (a blurred noise field), like a photo rather than pure noise
    base = rng.normal(128, 40, (size // 8 + 2, size // 8 + 2, 3))
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    img.save(path, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))


@pytest.fixture(scope="module")
def shortcut_set(tmp_path_factory) -> Path:
    """Real photos large (96 px JPEG), fakes small (48 px PNG): the label is in the container."""
    root = tmp_path_factory.mktemp("shortcut")
    rng = np.random.default_rng(0)
    for i in range(20):
        _photo(root / "real" / f"r{i:02d}.jpg", rng, 96)
        _photo(root / "fake" / f"f{i:02d}.png", rng, 48, fmt="PNG")
    return root


@pytest.fixture(scope="module")
def clean_set(tmp_path_factory) -> Path:
    """Both classes the same size, format and quality range."""
    root = tmp_path_factory.mktemp("clean")
    rng = np.random.default_rng(1)
    for i in range(20):
        for cls in ("real", "fake"):
            _photo(root / cls / f"{cls}{i:02d}.jpg", rng, 64, quality=int(rng.integers(85, 96)))
    return root


def _audit(*args, ok=True):
    r = runner.invoke(app, ["audit", *map(str, args)])
    if ok:
        assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    return r


def test_column_auc_is_direction_free():
    y = np.repeat([0, 1], 10)
    v = np.arange(20, dtype=float)
    assert column_auc(v, y) == 1.0
    assert column_auc(-v, y) == 1.0
    assert column_auc(np.ones(20), y) == 0.5
    assert column_auc(v, np.zeros(20)) == 0.5


def test_column_auc_unfolded_keeps_the_direction():
    y = np.repeat([0, 1], 10)
    v = np.arange(20, dtype=float)
    v[[0, 19]] = np.nan  # NaN rows are left out
    assert column_auc(v, y, fold=False) == 1.0
    assert column_auc(-v, y, fold=False) == 0.0
    mixed = np.r_[np.arange(10), np.arange(10) + 5.0]  # half the fakes above every real
    assert column_auc(mixed, y, fold=False) == pytest.approx(0.875)
    assert column_auc(-mixed, y, fold=False) == pytest.approx(0.125)


def test_shortcut_columns_from_diag_records():
    diag = [
        {"width": 100, "height": 50, "format": "JPEG", "jpeg_quality": 90.0, "file_size": 1000},
        {"width": 10, "height": 10, "format": "PNG", "jpeg_quality": float("nan"), "file_size": 50},
        {"width": float("nan"), "height": float("nan"), "format": None, "jpeg_quality": float("nan"), "file_size": 7},
    ]
    cols = shortcut_columns(diag)
    assert list(cols.columns) == ["width", "height", "aspect", "jpeg_quality", "file_size", "format=JPEG", "format=PNG"]
    assert cols.loc[0, "aspect"] == 2.0
    assert cols.loc[1, "jpeg_quality"] == -1.0  # not a JPEG: a value of its own, not missing
    assert cols.loc[2].isna().all()  # unreadable: left out


def test_audit_flags_size_and_format_shortcuts(shortcut_set, tmp_path):
    out = tmp_path / "audit.json"
    r = _audit(shortcut_set, "--out", out, "--no-cache")
    result = json.loads(out.read_text())
    assert result["columns"]["width"] == 1.0 and result["columns"]["height"] == 1.0
    assert result["columns"]["format=PNG"] == 1.0
    assert {"width", "height", "file_size", "format=JPEG", "format=PNG", "jpeg_quality", "all"} <= set(result["flagged"])
    assert "aspect" not in result["flagged"]  # square images in both classes
    assert result["all"] > FLAG_AUC
    assert (result["n_real"], result["n_fake"]) == (20, 20)
    assert "shortcut audit" in r.stderr and "width" in r.stderr


def test_audit_is_quiet_on_a_clean_set(clean_set, tmp_path):
    out = tmp_path / "audit.json"
    r = _audit(clean_set, "--out", out, "--no-cache")
    result = json.loads(out.read_text())
    assert result["flagged"] == []
    assert all(a <= FLAG_AUC for a in result["columns"].values())
    assert "no shortcut" in r.stdout
    assert "warning" not in r.stderr


def test_audit_skips_unreadable_files(clean_set, tmp_path):
    data = tmp_path / "data"
    for sub in ("real", "fake"):
        (data / sub).mkdir(parents=True)
        for p in sorted((clean_set / sub).glob("*.jpg"))[:6]:
            (data / sub / p.name).write_bytes(p.read_bytes())
    (data / "fake" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = shortcut_audit_of(data)
    assert result["n_skipped"] == 1 and result["n"] == 12


def shortcut_audit_of(data: Path) -> dict:
    from forensics.pipelines.audit import audit_data

    return audit_data([data], cache_dir=None)


def test_audit_needs_both_classes(tmp_path):
    rng = np.random.default_rng(2)
    for i in range(3):
        _photo(tmp_path / "d" / "real" / f"{i}.jpg", rng, 32)
    r = _audit(tmp_path / "d", ok=False)
    assert r.exit_code == 2 and "both real and fake" in r.stderr


def test_train_warns_about_shortcuts_and_records_the_audit(shortcut_set, clean_set, tmp_path):
    from forensics.model import ForensicModel

    r = runner.invoke(app, ["train", str(shortcut_set), "--model", str(tmp_path / "m.skops"), "--blocks", "color",
                            "--classifier", "logreg", "--folds", "3", "--no-cache"])
    assert r.exit_code == 0, r.stderr
    text = " ".join(r.stderr.split())
    assert "warning: shortcut audit" in text and "width (AUC 1.00)" in text
    card = ForensicModel.load(tmp_path / "m.skops").card
    assert "width" in card["shortcut_audit"]["flagged"]

    r = runner.invoke(app, ["train", str(clean_set), "--model", str(tmp_path / "c.skops"), "--blocks", "color",
                            "--classifier", "logreg", "--folds", "3", "--no-cache"])
    assert r.exit_code == 0, r.stderr
    assert "shortcut" not in r.stderr
    assert ForensicModel.load(tmp_path / "c.skops").card["shortcut_audit"]["flagged"] == []


def test_audit_message_names_columns_and_all():
    result = shortcut_audit([{"width": w, "height": 10, "format": "PNG", "jpeg_quality": float("nan"), "file_size": 5}
                             for w in [10] * 10 + [20] * 10], np.repeat([0, 1], 10))
    assert result["flagged"][0] == "width"
    msg = audit_message(result)
    assert msg.startswith("shortcut audit:") and "width (AUC 1.00)" in msg
    assert audit_message({"flagged": [], "columns": {}}) is None
