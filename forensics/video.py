"""Videos: stream frames with OpenCV, sample them, score each with an image model, aggregate per video.

Frames are decoded one at a time (``cv2.VideoCapture``: never a whole video in memory); only the
sampled ones are converted to RGB and go through the feature blocks, optionally after cropping the
largest face (:mod:`forensics.faces`). Each video gets one row, an unreadable or empty one included
(with its ``error``); each scored frame can get a row too.

Per-video aggregates of the frame scores (all are written; ``prob_fake`` is the one chosen):

- ``mean``: mean frame score;
- ``median``: median frame score (robust to a few odd frames: blur, cuts, a frame without a face);
- ``top_k_mean``: mean of the highest quarter of frame scores (at least one frame): a fake that is
  visible only in part of a video still counts;
- ``frac_over``: fraction of frames whose score is at or above the model's threshold (labelled fake
  when at least half are).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from forensics.cache import FeatureCache, run_cache
from forensics.datasets import LabelledImage, _class_dirs, collect_inputs, read_manifest
from forensics.errors import ForensicsError, UsageError
from forensics.extraction import FeatureSpec, Row, _effective_jobs, features_for_array

logger = logging.getLogger(__name__)

#: File extensions recognised as videos (lower case, without the dot).
VIDEO_EXTENSIONS = frozenset({"mp4", "avi", "mov", "mkv", "webm"})
#: Aggregates of frame scores, in column order.
AGGREGATES = ("mean", "median", "top_k_mean", "frac_over")
#: The aggregate that becomes ``prob_fake`` by default (see the README for the measurements).
DEFAULT_AGGREGATE = "median"
#: Share of frames averaged by ``top_k_mean``.
TOP_FRACTION = 0.25
#: Default sampling when scoring videos: frames per second of video and cap per video.
SCORE_FPS = 2.0
SCORE_MAX_FRAMES = 64
#: Default sampling when training on videos (each sampled frame is one training row).
TRAIN_FPS = 1.0
TRAIN_MAX_FRAMES = 32

VIDEO_COLUMNS = ["path", "n_frames", "prob_fake", "label", "error", "aggregate", "mean", "median", "top_k_mean",
                 "frac_over", "n_no_face", "duration_s", "fps", "width", "height", "sha256"]
FRAME_COLUMNS = ["path", "frame_index", "time_s", "face_box", "prob_fake", "error"]

StageProgress = Callable[[str, int, int], None]


class VideoReadError(ForensicsError):
    """A video file cannot be opened or holds no decodable frame."""


def is_video_path(path: str | os.PathLike) -> bool:
    """True when the file name has one of :data:`VIDEO_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower().lstrip(".") in VIDEO_EXTENSIONS


def find_videos(root: str | os.PathLike) -> list[str]:
    """Video files (by extension, case-insensitively) at any depth below ``root``, sorted."""
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        found.extend(os.path.join(dirpath, n) for n in filenames if is_video_path(n))
    return sorted(found)


def collect_videos(inputs) -> list[str]:
    """Expand VIDEO_OR_FOLDER arguments into a de-duplicated list of video paths, in a stable order.

    A file named explicitly is kept whatever its extension; folders are searched recursively. A path
    that does not exist raises :class:`UsageError`.
    """
    return collect_inputs(inputs, find=find_videos)


def collect_labelled_videos(data_args) -> list[LabelledImage]:
    """Videos in DATA arguments: below the ``real/`` and ``fake/`` sub-folders of folders (any depth),
    and manifest rows whose path has a video extension. Images are collected by
    :func:`forensics.datasets.collect_labelled`; this finds the videos beside them."""
    items: list[LabelledImage] = []
    for arg in data_args:
        p = Path(arg)
        if p.is_file() and p.suffix.lower() == ".csv":
            items.extend(i for i in read_manifest(p) if is_video_path(i.path))
        elif p.is_dir():
            real_dirs, fake_dirs = _class_dirs(p)
            for label, dirs in ((0, real_dirs), (1, fake_dirs)):
                for d in dirs:
                    items.extend(LabelledImage(f, label, str(arg)) for f in find_videos(d))
    seen: set[str] = set()
    return [i for i in items if not (i.path in seen or seen.add(i.path))]


# --------------------------------------------------------------------------------------------------
# Decoding and sampling
# --------------------------------------------------------------------------------------------------


@dataclass
class Frame:
    """One sampled frame: its index in the stream, its time, and its pixels (RGB uint8)."""

    index: int
    time_s: float
    rgb: np.ndarray


@dataclass
class VideoInfo:
    fps: float
    n_frames_declared: int
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.n_frames_declared / self.fps if self.fps > 0 and self.n_frames_declared > 0 else math.nan


def check_sampling(every: int | None, fps: float | None, max_frames: int | None) -> None:
    """Early :class:`UsageError` for bad sampling options."""
    if every is not None and fps is not None:
        raise UsageError("give either --every or --fps, not both")
    if every is not None and every < 1:
        raise UsageError(f"--every must be at least 1, got {every}")
    if fps is not None and not fps > 0:
        raise UsageError(f"--fps must be positive, got {fps}")
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"--max-frames must be at least 1, got {max_frames}")


def _open(path: str):
    import cv2

    p = Path(path)
    if p.is_dir():
        raise VideoReadError("is a directory, not a video file")
    if not p.exists():
        raise VideoReadError("file not found (or a dangling link)")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise VideoReadError(f"cannot read file: {exc.strerror or exc}") from None
    if size == 0:
        raise VideoReadError("empty file")
    if not os.access(p, os.R_OK):
        raise VideoReadError("cannot read file: permission denied")
    cap = cv2.VideoCapture(str(p), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        cap.release()
        raise VideoReadError("cannot open video (not a video, truncated, or an unsupported codec)")
    info = VideoInfo(
        fps=_finite(cap.get(cv2.CAP_PROP_FPS)),
        n_frames_declared=int(max(0.0, _finite(cap.get(cv2.CAP_PROP_FRAME_COUNT)))),
        width=int(_finite(cap.get(cv2.CAP_PROP_FRAME_WIDTH))),
        height=int(_finite(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))),
    )
    return cap, info


def _finite(v) -> float:
    v = float(v)
    return v if math.isfinite(v) and v > 0 else 0.0


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, declared frame count and size from the container (:class:`VideoReadError` if unreadable)."""
    cap, info = _open(str(path))
    cap.release()
    return info


def iter_frames(
    path: str | os.PathLike,
    *,
    every: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    max_pixels: int | None = None,
    info: list | None = None,
) -> Iterator[Frame]:
    """Decode ``path`` as a stream and yield the sampled frames (RGB), one at a time.

    Parameters
    ----------
    every : int, keyword-only
        Take every N-th frame (frame 0, N, 2N...).
    fps : float, keyword-only
        Take this many frames per second of video (default 1 when neither ``every`` nor ``fps`` is given).
    max_frames : int, keyword-only
        At most this many frames. When the container declares its length and the sampling would give
        more, the step grows so that the frames spread over the whole video instead of its start.
    max_pixels : int, keyword-only
        Refuse videos whose frames have more pixels than this.
    info : list, keyword-only
        If given, the :class:`VideoInfo` is appended to it once the video is open.

    Raises :class:`VideoReadError` when the file cannot be opened, is too large, or yields no frame.
    """
    import cv2

    check_sampling(every, fps, max_frames)
    cap, vinfo = _open(str(path))
    if info is not None:
        info.append(vinfo)
    try:
        if max_pixels is not None and vinfo.width * vinfo.height > max_pixels:
            raise VideoReadError(f"frames of {vinfo.width}x{vinfo.height} pixels are over the limit of {max_pixels}")
        native = vinfo.fps
        if every is not None:
            step = float(every)
        else:
            rate = fps if fps is not None else 1.0
            step = max(1.0, native / rate) if native > 0 else 1.0
        n = vinfo.n_frames_declared
        if max_frames is not None and n > 0 and math.ceil(n / step) > max_frames:
            step = n / max_frames
        index, taken, next_at = 0, 0, 0.0
        while max_frames is None or taken < max_frames:
            if not cap.grab():
                break
            if index + 1e-9 >= next_at:
                ok, bgr = cap.retrieve()
                if ok and bgr is not None and bgr.ndim == 3:
                    t = index / native if native > 0 else _finite(cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
                    yield Frame(index, float(t), np.ascontiguousarray(bgr[:, :, 2::-1]))
                    taken += 1
                while next_at <= index + 1e-9:
                    next_at += step
            index += 1
        if taken == 0:
            raise VideoReadError("no frame could be decoded" if index == 0 else f"none of {index} frames could be decoded")
    finally:
        cap.release()


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------------
# Frame features
# --------------------------------------------------------------------------------------------------


@dataclass
class FrameRow:
    index: int
    time_s: float
    row: Row


@dataclass
class VideoFeatures:
    """Features of one video's sampled frames (``frames`` empty and ``error`` set when unreadable)."""

    path: str
    frames: list[FrameRow] = field(default_factory=list)
    info: VideoInfo | None = None
    error: str | None = None
    sha256: str | None = None  # the file's hash, when the feature cache was used
    cache_entries: dict = field(default_factory=dict, repr=False)  # computed here, for the cache's writer

    @property
    def X(self) -> np.ndarray:
        return np.vstack([f.row.features for f in self.frames]) if self.frames else np.zeros((0, 0))


def video_features(
    path: str | os.PathLike,
    spec: FeatureSpec,
    *,
    every: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    cache: FeatureCache | None = None,
) -> VideoFeatures:
    """Features of the sampled frames of one video (never raises for a bad video: see ``error``).

    With ``cache``, a frame's features (and diag record and face box) are keyed by the file's hash
    and the frame's index, whichever sampling picked it: frames found there are decoded but not
    computed, and ``cache_entries`` holds what was computed, for the caller to write."""
    path = str(path)
    out = VideoFeatures(path)
    info: list = []
    if cache is not None:
        out.sha256 = _safe_sha(path)
        if out.sha256 is None:
            cache = None  # an unreadable file: iter_frames says why
    try:
        for frame in iter_frames(path, every=every, fps=fps, max_frames=max_frames, max_pixels=spec.max_pixels, info=info):
            keys = cached = None
            if cache is not None:
                keys = spec.cache_keys(f"{out.sha256}~frame{frame.index}")
                cached = cache.get_many(list(keys.values()))
            row = features_for_array(frame.rgb, spec, name=f"{path}#{frame.index}", cached=cached, keys=keys,
                                     new=out.cache_entries)
            out.frames.append(FrameRow(frame.index, frame.time_s, row))
    except VideoReadError as exc:
        out.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a decoder crash must not sink the batch
        logger.warning("video %s failed: %s", path, exc)
        out.error = f"video decoding failed: {type(exc).__name__}: {exc}"
    out.info = info[0] if info else None
    return out


_VWORKER: dict = {}


def _init_video_worker(spec: FeatureSpec, sampling: dict, hash_files: bool, opencv_log_level: int | None,
                       cache_dir: str | None) -> None:
    if opencv_log_level is not None:
        import cv2

        cv2.utils.logging.setLogLevel(opencv_log_level)  # as quiet (or loud) as the parent about bad files
    _VWORKER.update(spec=spec, sampling=sampling, hash_files=hash_files,
                    cache=FeatureCache(cache_dir, readonly=True) if cache_dir else None)


def _video_task(path: str, spec: FeatureSpec, sampling: dict, hash_files: bool,
                cache: FeatureCache | None) -> tuple[VideoFeatures, str | None]:
    vf = video_features(path, spec, cache=cache, **sampling)
    if not hash_files or vf.error is not None:
        return vf, None
    return vf, (vf.sha256 or _safe_sha(path))


def _video_worker(path: str) -> tuple[VideoFeatures, str | None]:
    w = _VWORKER
    return _video_task(path, w["spec"], w["sampling"], w["hash_files"], w["cache"])


def iter_video_features(
    paths: list[str],
    spec: FeatureSpec,
    *,
    every: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    jobs: int = 1,
    hash_files: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> Iterator[tuple[VideoFeatures, str | None]]:
    """Yield ``(features, sha256)`` for each video in ``paths``, in order, with ``jobs`` processes.

    Each worker decodes and extracts whole videos (a video's frames are a stream, read by one
    process); ``jobs`` 1 runs here, ``-1`` means one per CPU. ``sha256`` is the file's hash when
    ``hash_files`` and the video was readable, else ``None``. A bad video never raises (see
    :func:`video_features`). With ``cache_dir``, frames' features are read from the feature cache
    there and those computed are written to it after each video (by this process), so an interrupted
    or repeated run computes only frames it has not computed before.
    """
    paths = [str(p) for p in paths]
    sampling = {"every": every, "fps": fps, "max_frames": max_frames}
    jobs = min(_effective_jobs(jobs), len(paths))
    with run_cache(cache_dir) as cache:

        def written(result):
            if cache is not None:
                cache.put_many(result[0].cache_entries)
            result[0].cache_entries = {}
            return result

        if jobs <= 1:
            for path in paths:
                yield written(_video_task(path, spec, sampling, hash_files, cache))
            return
        import cv2

        from forensics.runtime import worker_pool

        args = (spec, sampling, hash_files, cv2.utils.logging.getLogLevel(), str(cache_dir) if cache_dir is not None else None)
        with worker_pool(jobs, _init_video_worker, args) as pool:
            for result in pool.map(_video_worker, paths):
                yield written(result)


def labelled_frame_features(
    videos: list[LabelledImage],
    spec: FeatureSpec,
    *,
    every: int | None = None,
    fps: float | None = TRAIN_FPS,
    max_frames: int | None = TRAIN_MAX_FRAMES,
    progress: Callable[[int, int], None] | None = None,
    jobs: int = 1,
    cache_dir: str | os.PathLike | None = None,
):
    """Training rows from labelled videos: one per sampled frame, ``jobs`` videos at a time (frames'
    features through the feature cache in ``cache_dir`` when given).

    Returns ``(X, y, groups, per_video, errors, diags)``: ``groups`` holds the video's path for every
    frame (so that cross-validation keeps a video's frames in one fold), ``per_video`` a list of
    ``(item, n_frames_used)``, ``errors`` a Counter of the distinct problems and ``diags`` the frames'
    diag records.
    """
    n_feat = len(spec.feature_names())
    Xs, ys, groups, per_video, diags = [], [], [], [], []
    errors: Counter = Counter()
    if progress:
        progress(0, len(videos))
    results = iter_video_features([v.path for v in videos], spec, every=every, fps=fps, max_frames=max_frames, jobs=jobs,
                                  cache_dir=cache_dir)
    for k, (item, (vf, _)) in enumerate(zip(videos, results)):
        if vf.error:
            errors[vf.error] += 1
        used = 0
        for fr in vf.frames:
            if fr.row.error:
                errors[fr.row.error] += 1
            if np.all(np.isnan(fr.row.features)):
                continue
            Xs.append(fr.row.features)
            ys.append(item.label)
            groups.append(item.path)
            diags.append(fr.row.diag)
            used += 1
        per_video.append((item, used))
        if progress:
            progress(k + 1, len(videos))
    X = np.vstack(Xs) if Xs else np.zeros((0, n_feat))
    return X, np.asarray(ys, dtype=int), np.asarray(groups, dtype=object), per_video, errors, diags


# --------------------------------------------------------------------------------------------------
# Aggregation and scoring
# --------------------------------------------------------------------------------------------------


def aggregate_scores(probs, threshold: float) -> dict[str, float]:
    """Every per-video aggregate (:data:`AGGREGATES`) of frame scores; NaN scores are ignored."""
    p = np.asarray(probs, dtype=np.float64)
    p = p[np.isfinite(p)]
    if p.size == 0:
        return {a: math.nan for a in AGGREGATES}
    k = max(1, math.ceil(TOP_FRACTION * p.size))
    return {
        "mean": float(p.mean()),
        "median": float(np.median(p)),
        "top_k_mean": float(np.sort(p)[-k:].mean()),
        "frac_over": float((p >= threshold).mean()),
    }


def decision_threshold(aggregate: str, model_threshold: float) -> float:
    """Threshold applied to an aggregate: the model's, except for ``frac_over`` (half the frames)."""
    return 0.5 if aggregate == "frac_over" else float(model_threshold)


@dataclass
class VideoRunSummary:
    n_videos: int
    n_failed: int
    errors: Counter
    output: str
    frames_output: str | None
    n_fake: int
    n_real: int
    face_crop: bool
    n_frames: int = 0
    n_no_face: int = 0

    @property
    def n_ok(self) -> int:
        return self.n_videos - self.n_failed


def score_videos(
    model,
    inputs,
    out: str | os.PathLike,
    *,
    frames_out: str | os.PathLike | None = None,
    every: int | None = None,
    fps: float | None = None,
    max_frames: int | None = SCORE_MAX_FRAMES,
    face_crop: bool | None = None,
    aggregate: str = DEFAULT_AGGREGATE,
    progress: StageProgress | None = None,
    jobs: int = 1,
    cache_dir: str | os.PathLike | None = None,
) -> VideoRunSummary:
    """Score every video in ``inputs`` (files and folders) with an image model; write one CSV row per
    video to ``out`` and, if asked, one row per scored frame to ``frames_out`` (both atomically).

    ``face_crop`` ``None`` follows the model (crops if it was trained on crops); ``True``/``False``
    override it. Without ``every`` and ``fps``, :data:`SCORE_FPS` frames per second are sampled.
    ``jobs`` worker processes decode and extract whole videos in parallel (``-1``: one per CPU); rows
    keep the input order and do not depend on ``jobs``. ``cache_dir``: the feature cache folder, where
    each frame's features are kept by the file's hash and the frame's index (``None``: none), so that
    scoring the videos again, after an interruption or with another model of the same blocks, only
    decodes the frames already done.
    """
    import pandas as pd

    from forensics.api import _check_writable
    from forensics.model import ForensicModel

    if aggregate not in AGGREGATES:
        raise UsageError(f"unknown aggregate '{aggregate}'; choose one of {', '.join(AGGREGATES)}")
    check_sampling(every, fps, max_frames)
    if every is None and fps is None:
        fps = SCORE_FPS
    if not isinstance(model, ForensicModel):
        model = ForensicModel.load(model)
    spec = model.spec
    if face_crop is not None and bool(face_crop) != bool(spec.face_crop):
        if face_crop:
            from forensics.faces import check_available

            check_available()
        logger.warning("face crop %s for a model trained %s face crops", "on" if face_crop else "off",
                       "with" if spec.face_crop else "without")
        spec = replace(spec, face_crop=bool(face_crop))
    out = Path(out)
    _check_writable(out)
    if frames_out is not None:
        frames_out = Path(frames_out)
        _check_writable(frames_out)
    paths = collect_videos([str(i) for i in inputs])
    if not paths:
        raise UsageError(f"no video files found in {', '.join(map(str, inputs))} (extensions: {', '.join(sorted(VIDEO_EXTENSIONS))})")
    cut = decision_threshold(aggregate, model.threshold)
    video_rows, frame_rows = [], []
    errors: Counter = Counter()
    n_frames = n_no_face = 0
    stage = (lambda d, t: progress("videos", d, t)) if progress else None
    if stage:
        stage(0, len(paths))
    results = iter_video_features(paths, spec, every=every, fps=fps, max_frames=max_frames, jobs=jobs, hash_files=True,
                                   cache_dir=cache_dir)
    for k, (path, (vf, sha)) in enumerate(zip(paths, results)):
        probs = model.predict_proba(vf.X) if vf.frames else np.zeros(0)
        agg = aggregate_scores(probs, model.threshold)
        value = agg[aggregate]
        frame_errors = Counter(f.row.error for f in vf.frames if f.row.error)
        no_face = sum(1 for f in vf.frames if f.row.face_box == "")
        err = vf.error
        n_scored = int(np.isfinite(probs).sum())
        if err is None and n_scored == 0:
            err = "no frame could be scored" + (f" ({frame_errors.most_common(1)[0][0]})" if frame_errors else "")
        if err:
            errors[err] += 1
        info = vf.info
        video_rows.append({
            "path": path,
            "n_frames": n_scored,
            "prob_fake": value,
            "label": None if not math.isfinite(value) else ("fake" if value >= cut else "real"),
            "error": err,
            "aggregate": aggregate,
            **agg,
            "n_no_face": no_face if spec.face_crop and vf.frames else None,
            "duration_s": info.duration_s if info else math.nan,
            "fps": info.fps if info and info.fps > 0 else math.nan,
            "width": info.width if info else None,
            "height": info.height if info else None,
            "sha256": sha,
        })
        for f, p in zip(vf.frames, probs):
            frame_rows.append({
                "path": path, "frame_index": f.index, "time_s": round(f.time_s, 4),
                "face_box": f.row.face_box if spec.face_crop else None,
                "prob_fake": p, "error": f.row.error,
            })
        n_frames += n_scored
        n_no_face += no_face
        if stage:
            stage(k + 1, len(paths))
    vframe = pd.DataFrame(video_rows, columns=VIDEO_COLUMNS)
    for c in ("width", "height", "n_no_face"):
        vframe[c] = pd.array([None if v is None or v != v else int(v) for v in vframe[c]], dtype="Int64")
    _write_csv(vframe, out)
    if frames_out is not None:
        _write_csv(pd.DataFrame(frame_rows, columns=FRAME_COLUMNS), frames_out)
    failed = int(vframe["prob_fake"].isna().sum())
    return VideoRunSummary(
        n_videos=len(vframe), n_failed=failed, errors=errors, output=str(out),
        frames_output=str(frames_out) if frames_out is not None else None,
        n_fake=int((vframe["label"] == "fake").sum()), n_real=int((vframe["label"] == "real").sum()),
        face_crop=bool(spec.face_crop), n_frames=n_frames, n_no_face=n_no_face,
    )


def _safe_sha(path: str) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None


def _write_csv(frame, out: Path) -> None:
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        frame.to_csv(tmp, index=False, float_format="%.6g", quoting=csv.QUOTE_MINIMAL)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()


__all__ = [
    "AGGREGATES", "DEFAULT_AGGREGATE", "VIDEO_EXTENSIONS", "Frame", "VideoFeatures", "VideoReadError",
    "aggregate_scores", "collect_labelled_videos", "collect_videos", "find_videos", "is_video_path",
    "iter_frames", "labelled_frame_features", "score_videos", "video_features", "video_info",
]
