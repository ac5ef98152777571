"""Videos: streaming decode and sampling, aggregation, the ``forensics video`` command, and training
on frames with group-aware cross-validation. Every test writes its own short videos."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from forensics import api, video
from forensics.demo import make_demo_dataset
from forensics.errors import UsageError
from forensics.extraction import FeatureSpec
from forensics.model import ForensicModel
from forensics.pipelines.train import train_classifier
from cli_utils import run


def write_video(path: Path, n_frames: int = 10, *, fps: float = 10.0, size=(64, 48), seed: int = 0, blocky: bool = False) -> Path:
    """A short video: seeded noise over a moving gradient ('MJPG' for .avi, 'mp4v' for .mp4)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix.lower() == ".mp4" else "MJPG"))
    w, h = size
    writer = cv2.VideoWriter(str(path), fourcc, fps, (w, h))
    assert writer.isOpened(), path
    rng = np.random.default_rng(seed)
    for i in range(n_frames):
        grad = np.add.outer(np.arange(h), np.arange(w) + 3 * i) % 256
        frame = np.clip(grad[:, :, None] + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        if blocky:  # nearest-neighbour up-sampling: the generator-like trace the demo fakes have
            small = frame[::2, ::2]
            frame = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)[:h, :w]
        writer.write(np.ascontiguousarray(frame))
    writer.release()
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("vdata")
    make_demo_dataset(root, n_per_class=10, size=64, seed=5)
    model, _ = api.train([root], blocks="color", classifier="logreg", n_splits=2, cache_dir=None)
    path = tmp_path_factory.mktemp("vmodel") / "m.skops"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    write_video(root / "a.avi", 10)
    write_video(root / "sub" / "b.MP4", 12, seed=1)
    write_video(root / "c.Mkv", 6, seed=2)  # an .mkv name holding an AVI stream: the content decides
    (root / "notes.txt").write_text("not a video")
    (root / "broken.mp4").write_text("not a video either")
    (root / "empty.webm").write_bytes(b"")
    return root


# --------------------------------------------------------------------------------------------------
# Finding, decoding, sampling
# --------------------------------------------------------------------------------------------------


def test_video_extensions_case_insensitive(clips):
    assert video.is_video_path("x.MOV") and video.is_video_path("y.webm") and not video.is_video_path("z.gif")
    found = [Path(p).name for p in video.collect_videos([clips])]
    assert found == ["a.avi", "broken.mp4", "c.Mkv", "empty.webm", "b.MP4"]
    with pytest.raises(UsageError, match="input not found"):
        video.collect_videos([clips / "missing.mp4"])


def test_iter_frames_is_a_stream_with_every_and_fps(clips):
    frames = video.iter_frames(clips / "a.avi", every=3)
    assert isinstance(frames, Iterator)
    got = list(frames)
    assert [f.index for f in got] == [0, 3, 6, 9]
    assert [f.time_s for f in got] == pytest.approx([0.0, 0.3, 0.6, 0.9])
    assert got[0].rgb.shape == (48, 64, 3) and got[0].rgb.dtype == np.uint8
    assert [f.index for f in video.iter_frames(clips / "a.avi", fps=5)] == [0, 2, 4, 6, 8]
    assert [f.index for f in video.iter_frames(clips / "a.avi")] == [0]  # default 1 per second of a 1-s clip


def test_max_frames_spreads_over_the_whole_video(clips):
    assert [f.index for f in video.iter_frames(clips / "a.avi", every=1, max_frames=3)] == [0, 4, 7]
    assert len(list(video.iter_frames(clips / "sub" / "b.MP4", every=1, max_frames=50))) == 12


def test_frames_are_rgb(tmp_path):
    path = tmp_path / "red.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 32))
    for _ in range(3):
        writer.write(np.dstack([np.zeros((32, 32)), np.zeros((32, 32)), np.full((32, 32), 250)]).astype(np.uint8))  # BGR red
    writer.release()
    rgb = next(video.iter_frames(path)).rgb
    assert rgb[..., 0].mean() > 200 and rgb[..., 2].mean() < 50


def test_unreadable_videos_raise_precise_errors(clips, tmp_path):
    (tmp_path / "dir.mp4").mkdir()
    cases = {clips / "broken.mp4": "cannot open video", clips / "empty.webm": "empty file",
             tmp_path / "dir.mp4": "is a directory", tmp_path / "gone.mp4": "file not found"}
    for path, message in cases.items():
        with pytest.raises(video.VideoReadError, match=message):
            list(video.iter_frames(path))


def test_bad_sampling_options():
    for kw in ({"every": 0}, {"fps": 0}, {"every": 2, "fps": 1}, {"max_frames": 0}):
        with pytest.raises(UsageError):
            video.check_sampling(kw.get("every"), kw.get("fps"), kw.get("max_frames"))


def test_aggregates():
    agg = video.aggregate_scores([0.1, 0.2, 0.9, 0.8, float("nan"), 0.3, 0.4, 0.5, 0.6], threshold=0.5)
    assert agg["mean"] == pytest.approx(0.475)
    assert agg["median"] == pytest.approx(0.45)
    assert agg["top_k_mean"] == pytest.approx(0.85)  # ceil(8 / 4) = 2 highest: 0.9, 0.8
    assert agg["frac_over"] == pytest.approx(0.5)
    assert all(math.isnan(v) for v in video.aggregate_scores([], 0.5).values())


# --------------------------------------------------------------------------------------------------
# forensics video
# --------------------------------------------------------------------------------------------------


def test_cli_video_rows_and_frames(model_path, clips, tmp_path):
    out, frames_out = tmp_path / "v.csv", tmp_path / "f.csv"
    res = run("video", model_path, clips, "--out", out, "--frames-out", frames_out, "--every", "2")
    v = pd.read_csv(out)
    f = pd.read_csv(frames_out)
    assert list(v.columns[:5]) == ["path", "n_frames", "prob_fake", "label", "error"]
    assert {"mean", "median", "top_k_mean", "frac_over"} <= set(v.columns)
    assert list(f.columns[:5]) == ["path", "frame_index", "time_s", "face_box", "prob_fake"]
    assert [Path(p).name for p in v["path"]] == ["a.avi", "broken.mp4", "c.Mkv", "empty.webm", "b.MP4"]
    by_name = v.set_index(v["path"].map(lambda p: Path(p).name))
    good = by_name[by_name["error"].isna()]
    assert good["n_frames"].to_dict() == {"a.avi": 5, "c.Mkv": 3, "b.MP4": 6}
    assert by_name.loc["broken.mp4", "error"].startswith("cannot open video")
    assert by_name.loc["empty.webm", "error"] == "empty file"
    assert by_name.loc["empty.webm", "n_frames"] == 0 and pd.isna(by_name.loc["empty.webm", "prob_fake"])
    assert len(f) == good["n_frames"].sum()
    model = ForensicModel.load(model_path)
    for path, g in f.groupby("path"):
        row = v[v["path"] == path].iloc[0]
        assert row["median"] == pytest.approx(g["prob_fake"].median(), rel=1e-4)
        assert row["mean"] == pytest.approx(g["prob_fake"].mean(), rel=1e-4)
        assert row["prob_fake"] == row["median"]
        assert row["label"] == ("fake" if row["prob_fake"] >= model.threshold else "real")
        assert list(g["frame_index"]) == list(range(0, 2 * len(g), 2))
    text = " ".join(res.stdout.split() + res.stderr.split())
    assert "scored 3 of 5 videos" in text and "cannot open video" in text


def test_cli_video_frames_match_image_scores(model_path, tmp_path):
    """A frame is scored exactly like the same pixels saved as a PNG image."""
    from PIL import Image

    clip = write_video(tmp_path / "one.avi", 3)
    run("video", model_path, clip, "--out", tmp_path / "v.csv", "--frames-out", tmp_path / "f.csv", "--every", "1")
    first = next(video.iter_frames(clip))
    Image.fromarray(first.rgb).save(tmp_path / "frame.png")
    run("score", model_path, tmp_path / "frame.png", "--out", tmp_path / "s.csv", "--no-cache")
    frame_p = pd.read_csv(tmp_path / "f.csv")["prob_fake"].iloc[0]
    assert frame_p == pytest.approx(pd.read_csv(tmp_path / "s.csv")["prob_fake"].iloc[0], rel=1e-5)


def test_cli_video_aggregate_choice_and_errors(model_path, clips, tmp_path):
    run("video", model_path, clips / "a.avi", "--out", tmp_path / "v.csv", "--aggregate", "top_k_mean", "--every", "1")
    v = pd.read_csv(tmp_path / "v.csv")
    assert v["prob_fake"].iloc[0] == v["top_k_mean"].iloc[0] and v["aggregate"].iloc[0] == "top_k_mean"
    assert run("video", model_path, clips, "--out", tmp_path / "x.csv", "--aggregate", "max", ok=False).exit_code == 2
    assert run("video", model_path, clips, "--out", tmp_path / "x.csv", "--every", "2", "--fps", "1", ok=False).exit_code == 2
    (tmp_path / "none").mkdir()
    res = run("video", model_path, tmp_path / "none", "--out", tmp_path / "x.csv", ok=False)
    assert res.exit_code == 2 and "no video files found" in res.stderr
    res = run("video", model_path, clips / "broken.mp4", "--out", tmp_path / "x.csv", ok=False)
    assert res.exit_code == 1 and "no video could be scored" in " ".join(res.stderr.split())
    assert pd.read_csv(tmp_path / "x.csv")["error"].notna().all()  # the row is still written


# --------------------------------------------------------------------------------------------------
# Training on videos
# --------------------------------------------------------------------------------------------------


def test_train_on_videos_and_images(tmp_path):
    data = tmp_path / "data"
    make_demo_dataset(data, n_per_class=4, size=48, seed=3)
    for k in range(3):
        write_video(data / "real" / f"r{k}.avi", 12, fps=4, seed=10 + k)
        write_video(data / "fake" / f"f{k}.mp4", 12, fps=4, seed=20 + k, blocky=True)
    model_file = tmp_path / "m.skops"
    res = run("train", data, "--model", model_file, "--blocks", "color", "--classifier", "logreg", "--folds", "3",
              "--video-every", "4", "--no-cache", "--jobs", "2")  # two workers read the videos
    card = ForensicModel.load(model_file).card
    vids = card["training_data"]["videos"]
    assert vids["n_videos"] == 6 and vids["n_frames"] == 18 and "StratifiedGroupKFold" in vids["cv"]
    assert card["training_data"]["n_real"] == 4 + 9 and card["training_data"]["n_fake"] == 4 + 9
    assert "6 videos gave 18 training frames" in " ".join(res.stdout.split())
    src = card["training_data"]["data"][str(data)]
    assert src["videos_real"] == 3 and src["frames_fake"] == 9


def test_group_cv_keeps_a_videos_frames_together():
    """Frames of one video look alike; labels are random per video. Plain k-fold leaks the video's
    look from training to test frames (AUC near 1); group k-fold does not (AUC near 0.5)."""
    rng = np.random.default_rng(0)
    n_videos, per = 40, 8
    looks = rng.normal(size=(n_videos, 6))
    labels = np.array([0, 1] * (n_videos // 2))
    X = np.repeat(looks, per, axis=0) + rng.normal(scale=0.01, size=(n_videos * per, 6))
    y = np.repeat(labels, per)
    groups = np.repeat(np.arange(n_videos), per)
    leaky = train_classifier(X, y, classifier="xgb", n_splits=4, calibration="none")
    grouped = train_classifier(X, y, classifier="xgb", n_splits=4, calibration="none", groups=groups)
    assert leaky.cv_metrics["auc"] > 0.9
    assert grouped.cv_metrics["auc"] < 0.75


def test_video_features_survive_bad_files(clips):
    spec = FeatureSpec.create("color")
    vf = video.video_features(clips / "broken.mp4", spec)
    assert vf.error and vf.frames == []
    vf = video.video_features(clips / "a.avi", spec, every=5)
    assert vf.error is None and [f.index for f in vf.frames] == [0, 5] and vf.X.shape == (2, len(spec.feature_names()))


# --------------------------------------------------------------------------------------------------
# Worker processes
# --------------------------------------------------------------------------------------------------


def test_cli_video_jobs_give_the_same_rows(model_path, clips, tmp_path):
    """Two worker processes write the same rows, in the same order, errors and hashes included."""
    outs = {}
    for jobs in ("1", "2"):
        v, f = tmp_path / f"v{jobs}.csv", tmp_path / f"f{jobs}.csv"
        res = run("video", model_path, clips, "--out", v, "--frames-out", f, "--every", "2", "--jobs", jobs, "--no-cache")
        assert "scored 3 of 5 videos" in " ".join(res.stdout.split())
        outs[jobs] = (pd.read_csv(v), pd.read_csv(f))
    pd.testing.assert_frame_equal(outs["1"][0], outs["2"][0])
    pd.testing.assert_frame_equal(outs["1"][1], outs["2"][1])
    v = outs["2"][0].set_index(outs["2"][0]["path"].map(lambda p: Path(p).name))
    assert v.loc["a.avi", "sha256"] == video.file_sha256(clips / "a.avi")
    assert pd.isna(v.loc["broken.mp4", "sha256"]) and v.loc["broken.mp4", "error"].startswith("cannot open video")


def test_labelled_frame_features_jobs(clips):
    from forensics.datasets import LabelledImage

    spec = FeatureSpec.create("color")
    items = [LabelledImage(str(clips / "a.avi"), 0, "c"), LabelledImage(str(clips / "broken.mp4"), 1, "c"),
             LabelledImage(str(clips / "sub" / "b.MP4"), 1, "c")]
    seen = []
    one = video.labelled_frame_features(items, spec, every=3, fps=None, max_frames=None, jobs=1)
    two = video.labelled_frame_features(items, spec, every=3, fps=None, max_frames=None, jobs=2,
                                        progress=lambda d, t: seen.append((d, t)))
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    assert list(one[2]) == list(two[2]) == [items[0].path] * 4 + [items[2].path] * 4
    assert [used for _, used in two[3]] == [4, 0, 4] and sum(two[4].values()) == 1
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("face_crop", [False, True])
def test_frame_features_are_cached_by_file_and_frame_index(clips, tmp_path, face_crop):
    from forensics import faces

    if face_crop and not faces.faces_available():
        pytest.skip("optional package yuface not installed")
    spec = FeatureSpec.create("color,spectrum", face_crop=face_crop)
    paths = [str(clips / "a.avi"), str(clips / "broken.mp4"), str(clips / "sub" / "b.MP4")]

    def frames(every, jobs=1, cache_dir=tmp_path):
        return [vf for vf, _ in video.iter_video_features(paths, spec, every=every, jobs=jobs, cache_dir=cache_dir)]

    plain = frames(2, cache_dir=None)
    first = frames(2, jobs=2)  # workers compute, this process writes
    second = frames(2)
    for a, b, c in zip(plain, first, second):
        assert a.error == b.error == c.error and len(a.frames) == len(c.frames)
        for fa, fb, fc in zip(a.frames, b.frames, c.frames):
            np.testing.assert_array_equal(fa.row.features, fc.row.features)
            np.testing.assert_array_equal(fb.row.features, fc.row.features)
            assert json.dumps(fa.row.diag, sort_keys=True) == json.dumps(fc.row.diag, sort_keys=True)  # NaN == NaN
            assert fa.row.face_box == fc.row.face_box
            assert fc.row.n_computed == 0  # read back, not computed
    assert second[1].error and not second[1].frames
    # every frame instead of every other one: only the odd frames are new
    third = frames(1)
    computed = {(Path(vf.path).name, f.index) for vf in third for f in vf.frames if f.row.n_computed}
    assert computed == {(Path(vf.path).name, f.index) for vf in third for f in vf.frames if f.index % 2 == 1}


def test_cli_video_reuses_the_cache(model_path, clips, tmp_path, monkeypatch):
    from forensics.cache import FeatureCache

    outs = []
    for k in range(2):
        v, f = tmp_path / f"v{k}.csv", tmp_path / f"f{k}.csv"
        run("video", model_path, clips, "--out", v, "--frames-out", f, "--every", "2", "--cache-dir", tmp_path / "c")
        outs.append((pd.read_csv(v), pd.read_csv(f)))
        if k == 0:  # the second run must not compute a block
            assert len(FeatureCache(tmp_path / "c")) == 14 * 2  # 5 + 3 + 6 frames x (one block + diag)
            real = video.features_for_array
            computed = []
            monkeypatch.setattr(video, "features_for_array", lambda *a, **kw: (r := real(*a, **kw), computed.append(r.n_computed))[0])
    assert len(computed) == 14 and not any(computed)
    pd.testing.assert_frame_equal(*[o[0] for o in outs])
    pd.testing.assert_frame_equal(*[o[1] for o in outs])
