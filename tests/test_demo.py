"""forensics.demo: the offline demo dataset."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from forensics.demo import BUNDLED_PHOTOS, _photo_pool, main, make_demo_dataset
from forensics.errors import UsageError
from forensics.loading import load_image


def _digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo")
    calls = []
    counts = make_demo_dataset(root, n_per_class=12, size=64, seed=3, progress=lambda d, t: calls.append((d, t)))
    return root, {"counts": counts, "calls": calls}


def test_counts_and_layout(demo):
    root, info = demo
    assert info["counts"] == {"real": 12, "fake": 12}
    assert sorted(p.name for p in root.iterdir()) == ["fake", "real"]
    for label in ("real", "fake"):
        names = sorted(p.name for p in (root / label).iterdir())
        assert names == [f"{label}_{i:04d}.jpg" for i in range(12)]


def test_progress_reported_after_each_image(demo):
    _, info = demo
    assert info["calls"] == [(i, 24) for i in range(1, 25)]


def test_both_classes_saved_the_same_way(demo):
    root, _ = demo
    seen = {"real": set(), "fake": set()}
    for label in seen:
        for path in (root / label).iterdir():
            img = load_image(path)
            assert img.rgb.shape == (64, 64, 3)
            assert 84 <= img.jpeg_quality <= 96
            seen[label].add((img.format, img.mode, path.suffix))
    assert seen["real"] == seen["fake"] == {("JPEG", "RGB", ".jpg")}


def test_deterministic_for_a_seed(demo, tmp_path):
    root, _ = demo
    make_demo_dataset(tmp_path / "again", n_per_class=12, size=64, seed=3)
    assert _digests(tmp_path / "again") == _digests(root)
    make_demo_dataset(tmp_path / "other", n_per_class=12, size=64, seed=4)
    assert _digests(tmp_path / "other") != _digests(root)


def _peak_contrast(path: Path) -> float:
    """Log power of a Laplacian residual at (1/2, 0) and (0, 1/2) cycles/pixel, minus its surroundings."""
    gray = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    n = gray.shape[0]
    residual = gray - (np.roll(gray, 1, 0) + np.roll(gray, -1, 0) + np.roll(gray, 1, 1) + np.roll(gray, -1, 1)) / 4
    power = np.log(np.abs(np.fft.fft2(residual * np.outer(np.hanning(n), np.hanning(n)))) ** 2 + 1e-8)
    dist = np.hypot(*np.mgrid[-3:4, -3:4])
    contrasts = []
    for peak in ((n // 2, 0), (0, n // 2)):
        patch = np.roll(power, (3 - peak[0], 3 - peak[1]), axis=(0, 1))[:7, :7]  # 7x7 around the peak
        contrasts.append(patch[dist <= 1].mean() - patch[dist >= 2.5].mean())
    return float(np.mean(contrasts))


def test_fakes_carry_a_period_2_pattern(tmp_path):
    # The transposed-convolution step leaves peaks at 1/2 cycle/pixel that the real crops lack; the
    # kernels are only slightly uneven, so the classes overlap (separable, not trivially).
    make_demo_dataset(tmp_path, n_per_class=20, size=64, seed=0)
    real = np.array([_peak_contrast(p) for p in (tmp_path / "real").iterdir()])
    fake = np.array([_peak_contrast(p) for p in (tmp_path / "fake").iterdir()])
    assert np.median(fake) > np.median(real) + 1.0
    auc = np.mean(fake[:, None] > real[None, :])
    assert 0.75 < auc


def test_photo_pool_is_bundled_and_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    _photo_pool.cache_clear()
    pool = _photo_pool()
    assert [name for name, _ in pool] == list(BUNDLED_PHOTOS)
    for _, arr in pool:
        assert arr.dtype == np.uint8 and arr.ndim in (2, 3) and min(arr.shape[:2]) >= 256


def test_refuses_to_mix_with_an_existing_dataset(demo, tmp_path):
    make_demo_dataset(tmp_path, n_per_class=3, size=32)
    with pytest.raises(UsageError, match="not empty"):
        make_demo_dataset(tmp_path, n_per_class=2, size=32)
    assert make_demo_dataset(tmp_path, n_per_class=2, size=32, overwrite=True) == {"real": 2, "fake": 2}
    assert len(list((tmp_path / "real").iterdir())) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_per_class": 0}, "n_per_class"),
        ({"size": 30}, "size"),
        ({"size": 8}, "size"),
        ({"size": 4096}, "size must be at most"),
        ({"jpeg_quality": (90, 80)}, "jpeg_quality"),
    ],
)
def test_bad_parameters(tmp_path, kwargs, message):
    with pytest.raises(UsageError, match=message):
        make_demo_dataset(tmp_path, **kwargs)


def test_main_writes_the_dataset(tmp_path, capsys):
    assert main([str(tmp_path / "out"), "--n-per-class", "2", "--size", "32"]) == 0
    assert "wrote 2 real and 2 fake" in capsys.readouterr().out
    assert len(list((tmp_path / "out" / "fake").glob("*.jpg"))) == 2
    assert main([str(tmp_path / "out"), "--n-per-class", "2", "--size", "32"]) == 2
    assert "not empty" in capsys.readouterr().err
