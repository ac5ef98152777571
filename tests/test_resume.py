"""Resumable scoring: rows go to ``.<out>.partial`` as they are computed; a rerun after an interruption
reuses the rows whose path, file hash and model match, and computes only the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from forensics import api
from forensics.demo import make_demo_dataset
from forensics.resume import model_fingerprint, partial_path, read_partial, score_with_resume


def images(folder: Path, n: int, size: int = 40, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"img{k:04d}.png")
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("rdata")
    make_demo_dataset(root, n_per_class=10, size=48, seed=7)
    m, _ = api.train([root], blocks="color", classifier="logreg", n_splits=2, cache_dir=None)
    return m


@pytest.fixture()
def folder(tmp_path):
    f = images(tmp_path / "in", 40)
    (f / "broken.png").write_bytes(b"not an image")
    return f


class Stop(Exception):
    pass


def interrupted_run(model, folder, out, after_rows: int):
    """Score until at least ``after_rows`` rows are on disk, then stop as an interruption would."""

    def progress(stage, done, total):
        if done >= after_rows:
            raise Stop

    with pytest.raises(Stop):
        score_with_resume(model, [folder], out, progress=progress, chunk_size=8)


def test_resume_gives_the_same_file_as_a_plain_run(model, folder, tmp_path):
    api.score(model, [folder], tmp_path / "plain.csv", cache_dir=None)
    summary = api.score(model, [folder], tmp_path / "resumable.csv", cache_dir=None, resume=True)
    assert (tmp_path / "plain.csv").read_bytes() == (tmp_path / "resumable.csv").read_bytes()
    assert summary.extra["n_reused"] == 0 and summary.extra["n_computed"] == 41
    assert not partial_path(tmp_path / "resumable.csv").exists()


def test_interrupted_run_is_picked_up(model, folder, tmp_path):
    out = tmp_path / "s.csv"
    interrupted_run(model, folder, out, after_rows=16)
    assert not out.exists()
    header, rows = read_partial(partial_path(out))
    assert header is not None and len(rows) == 16
    summary = api.score(model, [folder], out, cache_dir=None, resume=True)
    assert summary.extra == {**summary.extra, "n_reused": 16, "n_computed": 41 - 16}
    api.score(model, [folder], tmp_path / "plain.csv", cache_dir=None)
    assert out.read_bytes() == (tmp_path / "plain.csv").read_bytes()
    assert not partial_path(out).exists()


def test_torn_last_line_and_changed_files_are_scored_again(model, folder, tmp_path):
    out = tmp_path / "s.csv"
    interrupted_run(model, folder, out, after_rows=24)
    part = partial_path(out)
    text = part.read_text()
    part.write_text(text[: len(text) - 40])  # the last line cut short, as a kill mid-write leaves it
    _, rows = read_partial(part)
    assert len(rows) == 23
    changed = sorted(folder.glob("img*.png"))[0]  # among the rows already scored
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(changed)
    summary = api.score(model, [folder], out, cache_dir=None, resume=True)
    assert summary.extra["n_reused"] == 22 and summary.extra["n_computed"] == 41 - 22
    frame = pd.read_csv(out)
    assert len(frame) == 41 and frame["path"].is_unique
    api.score(model, [folder], tmp_path / "plain.csv", cache_dir=None)
    assert out.read_bytes() == (tmp_path / "plain.csv").read_bytes()


def test_rows_of_another_model_are_not_reused(model, folder, tmp_path, tmp_path_factory):
    out = tmp_path / "s.csv"
    interrupted_run(model, folder, out, after_rows=16)
    root = tmp_path_factory.mktemp("other")
    make_demo_dataset(root, n_per_class=10, size=48, seed=8)
    other, _ = api.train([root], blocks="color", classifier="logreg", n_splits=2, cache_dir=None)
    assert model_fingerprint(other) != model_fingerprint(model)
    assert model_fingerprint(model) == model_fingerprint(model)
    summary = api.score(other, [folder], out, cache_dir=None, resume=True)
    assert summary.extra["n_reused"] == 0


def test_a_partial_file_of_another_format_is_ignored(model, folder, tmp_path):
    out = tmp_path / "s.csv"
    partial_path(out).write_text(json.dumps({"format": "something else"}) + "\n" + "garbage\n")
    summary = api.score(model, [folder], out, cache_dir=None, resume=True)
    assert summary.extra["n_reused"] == 0 and len(pd.read_csv(out)) == 41


# --------------------------------------------------------------------------------------------------
# A real process killed with SIGKILL halfway
# --------------------------------------------------------------------------------------------------


def _cli(*args) -> list[str]:
    return [sys.executable, "-c", "from forensics.cli import main; main()", *map(str, args)]


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_sigkill_halfway_then_rerun(model, tmp_path):
    folder = images(tmp_path / "many", 200, size=160, seed=1)  # colour block: about 10 ms per image
    model_file = tmp_path / "m.skops"
    model.save(model_file)
    out = tmp_path / "scores.csv"
    part = partial_path(out)
    cmd = _cli("--quiet", "score", model_file, folder, "--out", out, "--no-cache")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if part.exists() and part.read_text().count("\n") >= 1 + 32:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    _, done_before = read_partial(part)
    assert 32 <= len(done_before) < 200

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    said = " ".join(rerun.stdout.split())
    assert f"reused {len(done_before)} rows, scored {200 - len(done_before)} files" in said
    frame = pd.read_csv(out)
    assert len(frame) == 200 and frame["path"].is_unique
    assert sorted(frame["path"]) == sorted(str(p) for p in folder.glob("*.png"))
    assert not part.exists()
    # the same scores as an uninterrupted run
    clean = tmp_path / "clean.csv"
    api.score(model_file, [folder], clean, cache_dir=None)
    assert out.read_bytes() == clean.read_bytes()
