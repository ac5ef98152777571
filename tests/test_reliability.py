"""Reliability and security, end to end: nothing crashes, nothing is lost, nothing runs from a model file.

- every command over the awkward-file folder (tests/awkward.py): one row per image-named file, scores
  for the valid ones, a clear error for the others, odd names round-tripping exactly;
- the decompression bomb refused through the command line, fast and without allocating its pixels;
- ``extract`` killed with SIGKILL half way and run again: one row per file, only the rest computed
  (the same for ``score`` is in tests/test_resume.py);
- score rows streamed to the CSV in chunks, byte-identical to scoring everything at once;
- hostile or unusable model files refused by every command that loads one;
- argument errors of every command: one line, non-zero exit, nothing written.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import skops.io as sio
from PIL import Image

import forensics.model as model_mod
from forensics import api
from forensics.cache import FeatureCache
from forensics.cli import app
from forensics.demo import make_demo_dataset
from forensics.features import base as features_base
from forensics.features.base import feature_names
from forensics.features.diag import DIAG_COLUMNS
from forensics.loading import is_image_path
from forensics.model import MODEL_FORMAT_VERSION, ForensicModel
from forensics.resume import partial_path
from cli_utils import flat, run, runner

sys.path.insert(0, str(Path(__file__).parent))
import awkward  # noqa: E402  (a helper module next to the tests, not a package)

COLOR = feature_names("color")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def cli(*args) -> list[str]:
    """The command line in a real process."""
    return [sys.executable, "-c", "from forensics.cli import main; main()", *map(str, args)]


def noise_images(folder: Path, n: int, size: int = 64, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        p = folder / f"img{k:04d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(p, compress_level=1)
        out.append(p)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_demo_dataset(root, n_per_class=10, size=48, seed=21)
    return root


@pytest.fixture(scope="module")
def model(data) -> ForensicModel:
    m, _ = api.train([data], blocks="color", classifier="logreg", n_splits=2, cache_dir=None)
    return m


@pytest.fixture(scope="module")
def model_path(model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.skops"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def awk(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("awkward")
    return root, awkward.make_awkward_folder(root)


def image_named_files(root: Path) -> dict[str, str]:
    """Every image-named file below ``root`` (dangling links included, folders excluded): ok/error."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            if is_image_path(n):
                p = os.path.join(dirpath, n)
                out[p] = "error" if Path(p).relative_to(root).as_posix().startswith("broken/") else "ok"
    return out


# --------------------------------------------------------------------------------------------------
# The awkward folder through every command
# --------------------------------------------------------------------------------------------------


def test_awkward_fixture_has_every_kind_of_file(awk):
    root, files = awk
    rels = set(files)
    needed = {
        "broken/empty.jpg", "broken/truncated.jpg", "broken/notes.png", "broken/bomb.png", "formats/tiny_1x1.png",
        "formats/deep/gray16.png", "formats/deep/float.tif", "formats/cmyk.jpg", "formats/alpha/rgba.png",
        "formats/animated.gif", "formats/image.webp", "formats/image.bmp", "photos/phone/exif_rotated.jpg",
        "broken/links/dangling.jpg", "broken/folder.jpg",
    }
    assert needed <= rels
    names = " ".join(rels)
    for odd in ("é", "ü", " ", ",", '"'):
        assert odd in names, odd
    assert (root / "broken/links/dangling.jpg").is_symlink() and not (root / "broken/links/dangling.jpg").exists()
    assert (root / "broken/folder.jpg").is_dir()
    with Image.open(root / "broken/bomb.png") as im:
        assert im.size == (awkward.BOMB_SIDE, awkward.BOMB_SIDE)


def test_extract_awkward_folder_one_row_per_file_and_exact_names(awk, tmp_path):
    root, _ = awk
    expected = image_named_files(root)
    out = tmp_path / "f.parquet"
    cache = tmp_path / "cache"
    result = run("extract", root, "--out", out, "--blocks", "color", "--cache-dir", cache)
    n_ok = sum(v == "ok" for v in expected.values())
    assert f"wrote {len(expected)} rows" in flat(result.stdout)
    assert f"({n_ok} with features; computed {n_ok}, from cache 0)" in flat(result.stdout)
    frame = pq.read_table(out).to_pandas()
    assert frame["path"].is_unique and len(frame) == len(expected)
    assert set(frame["path"]) == set(expected)  # unicode, spaces, commas, quotes: exactly as on disk
    assert str(root / "broken/folder.jpg") not in set(frame["path"])  # a folder is not a file
    by_path = frame.set_index("path")
    for path, kind in expected.items():
        row = by_path.loc[path]
        if kind == "ok":
            assert pd.isna(row["error"]), (path, row["error"])
            assert np.isfinite(row[COLOR].to_numpy(dtype=float)).all(), path
        else:
            assert isinstance(row["error"], str) and row["error"], path
            assert row[COLOR].isna().all(), path
    assert "decompression bomb" in by_path.loc[str(root / "broken/bomb.png"), "error"]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    # again: everything readable now comes from the cache, nothing is computed
    again = run("extract", root, "--out", out, "--blocks", "color", "--cache-dir", cache)
    assert f"computed 0, from cache {n_ok}" in flat(again.stdout)


def test_score_csv_round_trips_odd_names_and_counts_cache(awk, model_path, tmp_path):
    root, _ = awk
    expected = image_named_files(root)
    out = tmp_path / "s.csv"
    cache = tmp_path / "cache"
    result = run("score", model_path, root, "--out", out, "--cache-dir", cache)
    n_ok = sum(v == "ok" for v in expected.values())
    assert f"computed {n_ok}, from cache 0" in flat(result.stdout)
    frame = pd.read_csv(out, dtype={"path": str})
    assert frame["path"].tolist() == sorted(expected)  # stable order, every name exact
    ok = frame["path"].map(expected) == "ok"
    assert frame.loc[ok, "prob_fake"].between(0, 1).all() and frame.loc[ok, "error"].isna().all()
    assert frame.loc[~ok, "prob_fake"].isna().all() and frame.loc[~ok, "error"].notna().all()
    again = run("score", model_path, root, "--out", tmp_path / "s2.csv", "--cache-dir", cache)
    assert f"computed 0, from cache {n_ok}" in flat(again.stdout)


def _write_video(path: Path, n_frames: int = 6, size=(48, 32)) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, size)
    assert writer.isOpened()
    rng = np.random.default_rng(0)
    for _ in range(n_frames):
        writer.write(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    writer.release()
    return path


def test_video_awkward_folder_one_row_per_video_file(model_path, tmp_path):
    folder = tmp_path / "clips"
    good = _write_video(folder / "good.mp4")
    odd = _write_video(folder / 'sub/a, "quoted" clip é.mp4')
    data = good.read_bytes()
    (folder / "broken.mp4").write_bytes(data[: len(data) // 3])  # truncated
    (folder / "notes.mp4").write_text("not a video\n")
    (folder / "empty.mp4").write_bytes(b"")
    os.symlink(folder / "nowhere.mp4", folder / "dangling.mp4")
    (folder / "folder.mp4").mkdir()
    out = tmp_path / "v.csv"
    result = run("video", model_path, folder, "--out", out)
    frame = pd.read_csv(out, dtype={"path": str})
    expected = {str(good), str(odd), *(str(folder / n) for n in ("broken.mp4", "notes.mp4", "empty.mp4", "dangling.mp4"))}
    assert frame["path"].is_unique and set(frame["path"]) == expected
    rows = frame.set_index("path")
    for p in (good, odd):
        assert 0 <= rows.loc[str(p), "prob_fake"] <= 1 and pd.isna(rows.loc[str(p), "error"])
    for n in ("broken.mp4", "notes.mp4", "empty.mp4", "dangling.mp4"):
        row = rows.loc[str(folder / n)]
        assert pd.isna(row["prob_fake"]) and isinstance(row["error"], str) and row["error"], n
    assert "scored 2 of 6 videos" in flat(result.stdout)


# --------------------------------------------------------------------------------------------------
# The decompression bomb, through the command line
# --------------------------------------------------------------------------------------------------


def test_bomb_refused_through_the_cli_fast_and_without_its_pixels(awk, model_path, tmp_path):
    root, _ = awk
    bomb, tiny = root / "broken/bomb.png", root / "formats/tiny_1x1.png"
    timings = {}
    for name, path in (("tiny", tiny), ("bomb", bomb)):
        for command in ("extract", "score"):
            args = (["extract", path, "--out", tmp_path / f"{name}.parquet", "--blocks", "color"] if command == "extract"
                    else ["score", model_path, path, "--out", tmp_path / f"{name}.csv"])
            tracemalloc.start()
            start = time.perf_counter()
            result = run(*args, "--no-cache", ok=False)
            timings[name, command] = time.perf_counter() - start
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            if name == "bomb":
                assert result.exit_code == 1  # nothing could be processed
                assert "decompression bomb" in result.stderr and "Traceback" not in result.stderr
                assert peak < 50e6, f"{command}: peak Python allocation {peak / 1e6:.0f} MB"
            else:
                assert result.exit_code == 0
    for command in ("extract", "score"):  # the command's own overhead is the same for both files
        assert timings["bomb", command] < timings["tiny", command] + 0.5, timings
    rows = pd.read_csv(tmp_path / "bomb.csv")
    assert len(rows) == 1 and "40000x40000" in rows.loc[0, "error"]


@pytest.mark.skipif(not hasattr(os, "wait4"), reason="needs os.wait4 for the child's peak RSS")
def test_bomb_peak_memory_of_a_real_process(awk, model_path, tmp_path):
    root, _ = awk

    def peak_rss_mb(path: Path) -> tuple[float, int]:
        proc = subprocess.Popen(cli("--quiet", "score", model_path, path, "--out", tmp_path / "s.csv", "--no-cache"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return usage.ru_maxrss / 1024, proc.returncode  # KiB on Linux

    tiny_mb, tiny_rc = peak_rss_mb(root / "formats/tiny_1x1.png")
    bomb_mb, bomb_rc = peak_rss_mb(root / "broken/bomb.png")
    assert (tiny_rc, bomb_rc) == (0, 1)
    # 40000 x 40000 RGB would be 4800 MB; the refusal costs nothing measurable
    assert bomb_mb < tiny_mb + 100, (tiny_mb, bomb_mb)


# --------------------------------------------------------------------------------------------------
# Crash safety: extract killed half way, then run again
# --------------------------------------------------------------------------------------------------


def _cached_rows(cache_dir: Path) -> int:
    path = cache_dir / "features-v1.sqlite"
    if not path.exists():
        return 0
    try:
        con = sqlite3.connect(path, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM features").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_extract_sigkill_halfway_then_rerun(tmp_path):
    n = 300
    folder = tmp_path / "imgs"
    files = noise_images(folder, n, size=96, seed=3)
    cache = tmp_path / "cache"
    out = tmp_path / "f.parquet"
    per_image = len(api.FeatureSpec.create("fast").blocks) + 1  # a row per block, plus the diag record
    cmd = cli("--quiet", "extract", folder, "--out", out, "--blocks", "fast", "--cache-dir", cache)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if _cached_rows(cache) >= 2 * 16 * per_image:  # two chunks of the runner committed
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    # nothing at the target path; the killed run's temporary file is there, to be cleaned up
    assert not out.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".f.parquet.tmp-")]
    assert leftovers == [f".f.parquet.tmp-{proc.pid}"]
    rows = _cached_rows(cache)
    assert rows % per_image == 0  # chunks are committed whole
    done = rows // per_image
    assert 32 <= done < n

    rerun = subprocess.run(cli("extract", folder, "--out", out, "--blocks", "fast", "--cache-dir", cache),
                           capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})
    assert rerun.returncode == 0, rerun.stderr
    assert f"computed {n - done}, from cache {done}" in flat(rerun.stdout)  # finished work is not redone
    frame = pd.read_parquet(out)
    assert len(frame) == n and frame["path"].is_unique
    assert sorted(frame["path"]) == sorted(map(str, files))
    assert frame["error"].isna().all()
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]  # the stale temporary is gone
    # and the features are those of an uninterrupted run
    clean = tmp_path / "clean.parquet"
    api.extract([folder], clean, blocks="fast", cache_dir=None)
    pd.testing.assert_frame_equal(frame, pd.read_parquet(clean))


def test_stale_temporaries_of_dead_processes_only_are_removed(tmp_path):
    out = tmp_path / "scores.csv"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = [f".scores.csv.tmp-{dead.pid}", f".scores.csv.partial.tmp-{dead.pid}", f".scores.csv.tmp-{live.pid}",
                 ".scores.csv.tmp-notapid", ".other.csv.tmp-1"]
        for name in names:
            (tmp_path / name).write_text("half a file")
        api.remove_stale_temporaries(out)
        left = sorted(p.name for p in tmp_path.iterdir())
    finally:
        live.kill()
        live.wait()
    assert left == sorted([f".scores.csv.tmp-{live.pid}", ".scores.csv.tmp-notapid", ".other.csv.tmp-1"])


# --------------------------------------------------------------------------------------------------
# Score rows streamed in chunks
# --------------------------------------------------------------------------------------------------


def test_score_in_chunks_gives_the_same_csv_as_all_at_once(awk, model, tmp_path):
    root, _ = awk
    whole = tmp_path / "whole.csv"
    api.score_frame(model, [root], cache_dir=None).to_csv(whole, index=False, float_format="%.6g")
    # plain path, 3 rows a chunk: good and broken files fall in different chunks
    writer = api._score_to_csv(model, [root], tmp_path / "plain.csv", cache_dir=None, chunk_rows=3)
    assert (tmp_path / "plain.csv").read_bytes() == whole.read_bytes()
    expected = image_named_files(root)
    assert writer.n_rows == len(expected) and writer.n_failed == sum(v == "error" for v in expected.values())
    # resumable path, 2 rows a chunk
    from forensics.resume import score_with_resume

    score_with_resume(model, [root], tmp_path / "resumed.csv", cache_dir=None, chunk_size=2)
    assert (tmp_path / "resumed.csv").read_bytes() == whole.read_bytes()
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or p.name.endswith(".partial")]


def test_score_interrupted_then_resumed_over_awkward_files(awk, model, tmp_path):
    root, _ = awk
    out = tmp_path / "s.csv"
    from forensics.resume import score_with_resume

    class Stop(Exception):
        pass

    def stop_after_8(stage, done, total):
        if done >= 8:
            raise Stop

    with pytest.raises(Stop):
        score_with_resume(model, [root], out, cache_dir=None, chunk_size=4, progress=stop_after_8)
    assert not out.exists() and partial_path(out).exists()
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]  # the CSV's temporary is removed
    summary = api.score(model, [root], out, cache_dir=None, resume=True)
    # 8 rows were on disk; the dangling link among them has no content to hash, so it is scored again
    assert summary.extra["n_reused"] == 7 and summary.extra["n_computed"] == len(image_named_files(root)) - 7
    api.score(model, [root], tmp_path / "plain.csv", cache_dir=None)
    assert out.read_bytes() == (tmp_path / "plain.csv").read_bytes()


def test_plain_score_failing_half_way_leaves_nothing(awk, model, tmp_path):
    root, _ = awk
    out = tmp_path / "s.csv"

    def boom(stage, done, total):
        if done >= 5:
            raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        api.score(model, [root], out, cache_dir=None, progress=boom)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# Model files: nothing runs from them; refusals are one line, through every command
# --------------------------------------------------------------------------------------------------


class _Payload:
    """Pickles to a call of os.system: what a malicious "model" would do."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch '{self.target}'",))


class NotTrusted:
    def __init__(self):
        self.value = 1


def _bad_model(kind: str, folder: Path, flag: Path, model: ForensicModel) -> Path:
    path = folder / f"{kind}.skops"
    if kind == "pickle":
        path.write_bytes(pickle.dumps(_Payload(flag)))
    elif kind == "random":
        path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "untrusted":
        sio.dump({"format": "forensics-model", "payload": NotTrusted()}, path)
    elif kind == "unknown_block":
        m = copy.deepcopy(model)
        m.spec.blocks = m.spec.blocks + ["block_from_the_future"]
        m.save(path)
    return path


BAD_MODELS = {
    "pickle": r"is not a forensics model file",
    "random": r"is not a forensics model file",
    "untrusted": r"holds types this tool does not trust \(.*NotTrusted",
    "unknown_block": r"needs feature block\(s\) block_from_the_future, which this installation does not provide",
}


def _command(name: str, model: Path, data: Path, out_dir: Path) -> list:
    return {
        "score": ["score", model, data, "--out", out_dir / "s.csv"],
        "video": ["video", model, data, "--out", out_dir / "v.csv"],
        "report": ["report", model, "--out", out_dir / "r.html"],
        "evaluate": ["evaluate", model, data, "--out", out_dir / "e.json"],
        "inspect": ["inspect", next(data.rglob("*.jpg")), "--model", model, "--out", out_dir / "i.html"],
        "train --warm-start": ["train", data, "--model", out_dir / "t.skops", "--warm-start", model, "--no-cache"],
    }[name]


@pytest.mark.parametrize("command", ["score", "video", "report", "evaluate", "inspect", "train --warm-start"])
@pytest.mark.parametrize("kind", list(BAD_MODELS))
def test_bad_model_files_are_refused_by_every_command(kind, command, model, data, tmp_path):
    flag = tmp_path / "PWNED"
    models = tmp_path / "models"
    models.mkdir()
    path = _bad_model(kind, models, flag, model)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    result = runner.invoke(app, [str(a) for a in _command(command, path, data, out_dir)])
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(BAD_MODELS[kind], flat(result.stderr)), result.stderr
    assert "Traceback" not in result.stderr
    assert not flag.exists()  # the pickle's payload never ran
    assert list(out_dir.iterdir()) == []


def test_pickle_model_refused_by_a_real_process_without_running_it(model, data, tmp_path):
    flag = tmp_path / "PWNED"
    path = _bad_model("pickle", tmp_path, flag, model)
    proc = subprocess.run(cli("score", path, data, "--out", tmp_path / "x.csv"), capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "300"})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: {path} is not a forensics model file (not a skops file: BadZipFile)"]
    assert not flag.exists() and not (tmp_path / "x.csv").exists()


def test_model_of_a_newer_format_is_refused_through_the_cli(model, data, tmp_path, monkeypatch):
    path = tmp_path / "future.skops"
    monkeypatch.setattr(model_mod, "MODEL_FORMAT_VERSION", MODEL_FORMAT_VERSION + 1)
    model.save(path)
    monkeypatch.setattr(model_mod, "MODEL_FORMAT_VERSION", MODEL_FORMAT_VERSION)
    result = run("score", path, data, "--out", tmp_path / "s.csv", ok=False)
    assert result.exit_code == 1
    assert "was written by a newer forensics" in flat(result.stderr) and "upgrade" in result.stderr
    assert not (tmp_path / "s.csv").exists()


def test_model_needing_a_missing_optional_dependency_is_refused(model_path, data, tmp_path, monkeypatch):
    color = features_base._REGISTRY["color"]
    monkeypatch.setitem(features_base._REGISTRY, "color",
                        dataclasses.replace(color, requires=("no_such_module_xyz",), install_hint="pip install xyz"))
    result = run("score", model_path, data, "--out", tmp_path / "s.csv", ok=False)
    assert result.exit_code == 1
    text = flat(result.stderr)
    assert "cannot be used here: block 'color' needs no_such_module_xyz, which is not installed: pip install xyz" in text
    assert not (tmp_path / "s.csv").exists()


def test_model_whose_feature_names_changed_is_refused(model, data, tmp_path):
    m = copy.deepcopy(model)
    m.card["feature_names"] = ["color__renamed"] + m.card["feature_names"][1:]
    m.save(tmp_path / "old.skops")
    result = run("score", tmp_path / "old.skops", data, "--out", tmp_path / "s.csv", ok=False)
    assert result.exit_code == 1 and "feature names differ" in flat(result.stderr) and "retrain" in result.stderr


# --------------------------------------------------------------------------------------------------
# Argument errors of the newer commands (extract, train, score: tests/test_cli.py)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def places(data, model_path, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("places")
    (root / "empty").mkdir()
    make_demo_dataset(root / "onlyreal", n_per_class=3, size=32, seed=1)
    for p in (root / "onlyreal" / "fake").iterdir():
        p.unlink()
    (root / "outdir").mkdir()
    (root / "bomb.png").write_bytes(awkward.bomb_png_bytes())
    (root / "notes.png").write_text("not an image")
    (root / "bad.skops").write_bytes(b"PK\x03\x04 not really a zip")
    return {"data": data, "model": model_path, "root": root}


USAGE = {
    "report missing model": (["report", "{r}/nope.skops", "--out", "{r}/r.html"], 1, r"model file not found"),
    "report missing data": (["report", "{m}", "{r}/ghost", "--out", "{r}/r.html"], 2, r"data not found: .*ghost"),
    "report no class folders": (["report", "{m}", "{r}/empty", "--out", "{r}/r.html"], 2, r"has no real/ or fake/ sub-folder"),
    "report missing out folder": (["report", "{m}", "--out", "{r}/no/r.html"], 2, r"output folder does not exist"),
    "report out is a folder": (["report", "{m}", "--out", "{r}/outdir"], 2, r"output path is a folder"),
    "evaluate missing model": (["evaluate", "{r}/nope.skops", "{d}"], 1, r"model file not found"),
    "evaluate missing data": (["evaluate", "{m}", "{r}/ghost"], 2, r"data not found: .*ghost"),
    "evaluate no class folders": (["evaluate", "{m}", "{r}/empty"], 2, r"has no real/ or fake/ sub-folder"),
    "evaluate bad perturbation": (["evaluate", "{m}", "{d}", "--perturb", "jpeg:500"], 2, r"bad perturbation 'jpeg:500'"),
    "evaluate unknown perturbation": (["evaluate", "{m}", "{d}", "--perturb", "swirl:3"], 2, r"unknown perturbation 'swirl:3'"),
    "evaluate missing out folder": (["evaluate", "{m}", "{d}", "--out", "{r}/no/e.json"], 2, r"output folder does not exist"),
    "audit missing data": (["audit", "{r}/ghost"], 2, r"data not found: .*ghost"),
    "audit no class folders": (["audit", "{r}/empty"], 2, r"has no real/ or fake/ sub-folder"),
    "audit one class": (["audit", "{r}/onlyreal"], 2, r"needs both real and fake images"),
    "audit missing out folder": (["audit", "{d}", "--out", "{r}/no/a.json"], 2, r"output folder does not exist"),
    "video missing model": (["video", "{r}/nope.skops", "{r}/empty", "--out", "{r}/v.csv"], 1, r"model file not found"),
    "video missing input": (["video", "{m}", "{r}/ghost", "--out", "{r}/v.csv"], 2, r"input not found: .*ghost"),
    "video no videos": (["video", "{m}", "{r}/empty", "--out", "{r}/v.csv"], 2, r"no video files found"),
    "video bad every": (["video", "{m}", "{r}/empty", "--out", "{r}/v.csv", "--every", "0"], 2, r"--every must be at least 1"),
    "video every and fps": (["video", "{m}", "{r}/empty", "--out", "{r}/v.csv", "--every", "2", "--fps", "1"], 2,
                            r"either --every or --fps"),
    "video unknown aggregate": (["video", "{m}", "{r}/empty", "--out", "{r}/v.csv", "--aggregate", "max"], 2, r"unknown aggregate 'max'"),
    "video missing out folder": (["video", "{m}", "{r}/empty", "--out", "{r}/no/v.csv"], 2, r"output folder does not exist"),
    "train unknown calibration": (["train", "{d}", "--model", "{r}/t.skops", "--blocks", "color", "--calibration", "magic"], 2,
                                  r"calibration"),
    "inspect missing image": (["inspect", "{r}/ghost.png", "--out", "{r}/i.html"], 1, r"cannot inspect .*ghost.png: file not found"),
    "inspect not an image": (["inspect", "{r}/notes.png", "--out", "{r}/i.html"], 1, r"not a recognised image format"),
    "inspect a folder": (["inspect", "{r}/empty", "--out", "{r}/i.html"], 1, r"is a directory"),
    "inspect bomb": (["inspect", "{r}/bomb.png", "--out", "{r}/i.html"], 1, r"40000x40000 .*decompression bomb"),
    "inspect bad model": (["inspect", "{r}/notes.png", "--model", "{r}/bad.skops", "--out", "{r}/i.html"], 1,
                          r"not a forensics model file"),
    "inspect missing out folder": (["inspect", "{r}/notes.png", "--out", "{r}/no/i.html"], 2, r"output folder does not exist"),
    "train-table missing table": (["train-table", "{r}/ghost.parquet", "--model", "{r}/t.skops"], 2, r"feature table not found"),
    "train-table not a table": (["train-table", "{r}/notes.png", "--model", "{r}/t.skops"], 2, r"is not a Parquet feature table"),
    "train-table missing model folder": (["train-table", "{r}/notes.png", "--model", "{r}/no/t.skops"], 2,
                                         r"folder of --model does not exist"),
    "extract unknown preset in list": (["extract", "{d}", "--out", "{r}/f.parquet", "--blocks", "color,nosuch"], 2,
                                       r"unknown feature block 'nosuch'"),
}


@pytest.mark.parametrize("case", list(USAGE))
def test_usage_errors_of_every_command_are_one_line(case, places):
    args, code, pattern = USAGE[case]
    fmt = {"m": places["model"], "d": places["data"], "r": places["root"]}
    args = [a.format(**fmt) for a in args]
    before = sorted(p.name for p in places["root"].iterdir())
    result = runner.invoke(app, args)
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)  # handled, not a crash
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert re.search(pattern, flat(result.stderr)), result.stderr
    assert sorted(p.name for p in places["root"].iterdir()) == before  # nothing written


@pytest.mark.parametrize("args", [["score", "{m}", "{d}", "--out", "{r}/s.csv", "--uncertain", "2"],
                                  ["extract", "{d}", "--out", "{r}/f.parquet", "--jobs", "many"],
                                  ["score", "{m}"], ["no-such-command"], ["audit", "{d}", "--bogus"]])
def test_parser_errors_exit_2_without_traceback(args, places):
    # Typer's own parsing errors (bad option values, missing arguments): its usage message, exit code 2
    fmt = {"m": places["model"], "d": places["data"], "r": places["root"]}
    result = runner.invoke(app, [a.format(**fmt) for a in args])
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr + result.stdout
    assert "Error" in result.stderr


def _unwritable_folder(tmp_path: Path):
    """A folder nobody may write to: a chmod 500 folder, or for root (who ignores modes) /sys."""
    if not IS_ROOT:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        return locked
    if Path("/sys").is_dir():
        return Path("/sys")
    pytest.skip("running as root without a read-only folder to write to")


@pytest.mark.parametrize("command", ["extract", "train", "score", "report", "evaluate", "audit", "video", "inspect", "train-table"])
def test_unwritable_output_is_refused_before_any_work(command, places, tmp_path):
    locked = _unwritable_folder(tmp_path)
    m, d, r = places["model"], places["data"], places["root"]
    args = {
        "extract": ["extract", d, "--out", locked / "f.parquet", "--blocks", "color", "--no-cache"],
        "train": ["train", d, "--model", locked / "t.skops", "--blocks", "color", "--no-cache"],
        "score": ["score", m, d, "--out", locked / "s.csv", "--no-cache"],
        "report": ["report", m, "--out", locked / "r.html"],
        "evaluate": ["evaluate", m, d, "--out", locked / "e.json"],
        "audit": ["audit", d, "--out", locked / "a.json", "--no-cache"],
        "video": ["video", m, r / "empty", "--out", locked / "v.csv"],
        "inspect": ["inspect", r / "notes.png", "--out", locked / "i.html"],
        "train-table": ["train-table", r / "notes.png", "--model", locked / "t.skops"],
    }[command]
    try:
        start = time.perf_counter()
        result = runner.invoke(app, ["--quiet", *map(str, args)])
        elapsed = time.perf_counter() - start
    finally:
        if not IS_ROOT:
            locked.chmod(0o700)
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert result.stderr.strip().startswith(f"error: cannot write to {locked}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert elapsed < 30  # refused up front, not after the work


def test_debug_shows_the_traceback_of_a_newer_command(places):
    args = ["audit", str(places["root"] / "onlyreal")]
    plain = runner.invoke(app, args)
    assert isinstance(plain.exception, SystemExit) and plain.exit_code == 2
    debug = runner.invoke(app, ["--debug", *args])
    assert type(debug.exception).__name__ == "UsageError"


def test_every_command_is_covered():
    # a new command must be added to the error tests above
    from typer.main import get_command

    commands = set(get_command(app).commands)
    covered = {"extract", "train", "score", "report", "evaluate", "audit", "video", "inspect", "train-table", "blocks", "demo"}
    assert commands <= covered, f"commands without reliability tests: {sorted(commands - covered)}"
