"""The three jobs of the toolkit as importable functions; the CLI commands are thin wrappers.

- :func:`extract`: labelled or unlabelled images -> features table (Parquet).
- :func:`train`: labelled images -> cross-validated, fitted :class:`~forensics.model.ForensicModel`.
- :func:`score`: a model and images -> one score row per image file (CSV).

Progress is reported through ``progress(stage, n_done, n_total)`` callbacks; nothing here prints.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from forensics.datasets import LABEL_NAMES, collect_inputs, collect_labelled
from forensics.errors import ForensicsError, UsageError
from forensics.extraction import FeatureSpec, Row, iter_features, summarize_errors
from forensics.features.diag import DIAG_COLUMNS
from forensics.loading import DEFAULT_MAX_PIXELS
from forensics.model import ForensicModel, make_card
from forensics.pipelines.train import CLASSIFIERS, WEIGHTINGS, balanced_weights, build_pipeline, check_holdout, train_classifier
from forensics.pipelines.tuning import DEFAULT_INNER_FOLDS, DEFAULT_N_ITER
from forensics.pipelines.tuning import check_options as check_tuning

logger = logging.getLogger(__name__)

StageProgress = Callable[[str, int, int], None]


def _stage(progress: StageProgress | None, stage: str):
    if progress is None:
        return None
    return lambda done, total: progress(stage, done, total)


@dataclass
class RunSummary:
    """What a batch run did: rows written, rows with errors, distinct errors with counts."""

    n_rows: int
    n_failed: int
    errors: Counter
    output: str | None = None
    extra: dict | None = None

    @property
    def n_ok(self) -> int:
        return self.n_rows - self.n_failed


# --------------------------------------------------------------------------------------------------
# extract
# --------------------------------------------------------------------------------------------------


def _arrow_schema(spec: FeatureSpec, labelled: bool):
    import pyarrow as pa

    fields = [pa.field("path", pa.string())]
    if labelled:
        fields.append(pa.field("label", pa.string()))
    fields.append(pa.field("error", pa.string()))
    if spec.face_crop:  # "x,y,w,h" of the face the blocks saw; empty: no face, whole image used
        fields.append(pa.field("face_box", pa.string()))
    for c in DIAG_COLUMNS:
        t = pa.string() if c in ("format", "mode", "sha256") else pa.float64()
        fields.append(pa.field(f"diag__{c}", t))
    fields += [pa.field(n, pa.float64()) for n in spec.feature_names()]
    import json

    meta = {"blocks": spec.blocks, "settings": spec.settings, "max_pixels": spec.max_pixels, "face_crop": bool(spec.face_crop)}
    return pa.schema(fields, metadata={b"forensics.blocks": ",".join(spec.blocks).encode(),
                                       b"forensics.spec": json.dumps(meta, default=list).encode()})


def _rows_to_arrow(rows: list[Row], labels: list | None, schema):
    import pyarrow as pa

    cols = {"path": [r.path for r in rows]}
    if labels is not None:
        cols["label"] = labels
    cols["error"] = [r.error for r in rows]
    if "face_box" in schema.names:
        cols["face_box"] = [r.face_box for r in rows]
    for c in DIAG_COLUMNS:
        vals = [r.diag.get(c) for r in rows]
        if c not in ("format", "mode", "sha256"):
            vals = [math.nan if v is None else float(v) for v in vals]
        cols[f"diag__{c}"] = vals
    feats = np.vstack([r.features for r in rows])
    names = [f.name for f in schema][len(cols):]
    arrays = [pa.array(cols[f.name], type=f.type) for f in list(schema)[: len(cols)]]
    arrays += [pa.array(feats[:, j], type=pa.float64()) for j in range(len(names))]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def extract(
    inputs,
    out: str | os.PathLike,
    *,
    blocks="default",
    settings: dict | None = None,
    labelled: bool | None = None,
    jobs: int = 1,
    cache_dir=None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: StageProgress | None = None,
    chunk_rows: int = 1024,
    face_crop: bool = False,
    scheduler=None,
) -> RunSummary:
    """Write the features table of ``inputs`` to Parquet at ``out``.

    ``inputs`` are DATA arguments (folders with real/ and fake/, CSV manifests) when ``labelled`` is
    true, image files and folders when false; ``None`` decides per the first argument (labelled if it
    is a CSV or has class sub-folders). Columns: ``path``, ``label`` (labelled only), ``error``,
    ``diag__*``, then the features. Rows stream to disk in chunks; the file appears atomically.
    ``face_crop``: blocks see the largest face; a ``face_box`` column follows ``error``.
    ``scheduler``: extract on a dask.distributed cluster (address, ``"local"`` or a Client; see
    :mod:`forensics.distributed`). The file's metadata records the blocks and their settings
    (``forensics.blocks``, ``forensics.spec``), which ``forensics train-table`` reads back.
    """
    import pyarrow.parquet as pq

    spec = FeatureSpec.create(blocks, settings, max_pixels, face_crop=face_crop)
    paths, labels = _gather(inputs, labelled)
    schema = _arrow_schema(spec, labels is not None)
    out = Path(out)
    _check_writable(out)
    remove_stale_temporaries(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    errors: Counter = Counter()
    sources: Counter = Counter()
    n = failed = 0
    buf: list[Row] = []
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for row in iter_features(paths, spec, jobs=jobs, cache_dir=cache_dir, progress=_stage(progress, "extract"),
                                     scheduler=scheduler):
                buf.append(row)
                if len(buf) >= chunk_rows:
                    writer.write_batch(_rows_to_arrow(buf, labels[n : n + len(buf)] if labels else None, schema))
                    n, failed = _count(buf, n, failed, errors, sources)
                    buf = []
            if buf:
                writer.write_batch(_rows_to_arrow(buf, labels[n : n + len(buf)] if labels else None, schema))
                n, failed = _count(buf, n, failed, errors, sources)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return RunSummary(n, failed, errors, str(out), extra=_source_counts(sources))


def _count(buf, n, failed, errors, sources=None):
    for r in buf:
        if r.error:
            errors[r.error] += 1
            if np.all(np.isnan(r.features)):
                failed += 1
        if sources is not None:
            sources[row_source(r)] += 1
    return n + len(buf), failed


def row_source(row: Row) -> str:
    """Where a row's features came from: ``"computed"`` (at least one block ran in this run),
    ``"cache"`` (every block from the feature cache) or ``"failed"`` (no feature at all)."""
    if row.n_computed > 0:
        return "computed"
    return "failed" if np.all(np.isnan(row.features)) else "cache"


def _source_counts(sources: Counter) -> dict:
    """Summary entries for the CLI's "computed N, from cache M"."""
    return {"features_computed": int(sources["computed"]), "features_from_cache": int(sources["cache"])}


def _gather(inputs, labelled):
    inputs = [str(i) for i in inputs]
    if not inputs:
        raise UsageError("no input given")
    if labelled is None:
        first = Path(inputs[0])
        labelled = first.suffix.lower() == ".csv" or (
            first.is_dir() and any(c.is_dir() and c.name.lower() in ("real", "fake", "0_real", "1_fake", "training_real", "training_fake") for c in first.iterdir())
        )
    if labelled:
        items = collect_labelled(inputs)
        if not items:
            raise UsageError(f"no image files found in {', '.join(inputs)}")
        return [i.path for i in items], [LABEL_NAMES[i.label] for i in items]
    paths = collect_inputs(inputs)
    if not paths:
        raise UsageError(f"no image files found in {', '.join(inputs)}")
    return paths, None


def _check_writable(out: Path) -> None:
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.exists():
        raise UsageError(f"output folder does not exist: {parent}")
    if out.is_dir():
        raise UsageError(f"output path is a folder: {out}")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"cannot write to {parent}")
    # os.access says yes to root everywhere: create (and remove) a file, so that a read-only or
    # pseudo file system fails now rather than after hours of feature extraction.
    import tempfile

    try:
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.probe-", dir=parent)
    except OSError as exc:
        raise UsageError(f"cannot write to {parent}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)


def remove_stale_temporaries(out: Path) -> None:
    """Delete the temporary files (``.<name>.tmp-<pid>``, ``.<name>.partial.tmp-<pid>``) that runs
    writing ``out`` left behind when they were killed. Those of a process still running are kept."""
    import glob

    parent = out.parent if str(out.parent) else Path(".")
    for prefix in (f".{out.name}.tmp-", f".{out.name}.partial.tmp-"):
        for tmp in parent.glob(glob.escape(prefix) + "*"):
            pid = tmp.name[len(prefix):]
            if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
                continue
            try:
                tmp.unlink()
                logger.info("removed %s, left by an interrupted run", tmp)
            except OSError as exc:
                logger.warning("could not remove %s: %s", tmp, exc)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


# --------------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------------


def train(
    data,
    *,
    blocks=None,
    settings: dict | None = None,
    classifier: str = "xgb",
    n_splits: int = 5,
    max_fpr: float | None = None,
    jobs: int = 1,
    cache_dir=None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    random_state: int = 0,
    progress: StageProgress | None = None,
    calibration: str = "auto",
    face_crop: bool | None = None,
    warm_start=None,
    video_every: int | None = None,
    video_fps: float | None = None,
    video_max_frames: int | None = None,
    scheduler=None,
    tune: bool = False,
    tune_iter: int = DEFAULT_N_ITER,
    tune_folds: int = DEFAULT_INNER_FOLDS,
    holdout: float = 0.0,
    weights: str = "balanced",
    augment=None,
) -> tuple[ForensicModel, RunSummary]:
    """Extract features of the labelled ``data``, cross-validate, and fit a :class:`ForensicModel`.

    Images that fail to load are left out of training (counted in the summary and the card).
    ``calibration`` maps scores to calibrated probabilities (see :mod:`forensics.pipelines.calibration`).
    The card also records the out-of-fold scores, per-class feature means and a shortcut audit of the
    diag columns (what ``forensics report`` shows without data).

    ``blocks`` ``None`` means the ``default`` preset. ``face_crop``: blocks see the largest face.
    Videos below ``real/``/``fake/`` give one training row per sampled frame (``video_fps``, default
    1 per second, or every ``video_every``-th frame; at most ``video_max_frames``, default 32, per
    video), and cross-validation then keeps each video's frames in one fold (StratifiedGroupKFold).
    ``warm_start`` (a model or model file, xgb only): continue that model with this data, keeping its
    blocks and settings (see :mod:`forensics.incremental`); ``card["rounds"]`` lists every round.
    ``scheduler``: extract the images' features on a dask.distributed cluster (see
    :mod:`forensics.distributed`); cross-validation and the fit stay here (for feature tables larger
    than one machine, see :func:`forensics.pipelines.train_table.train_table`).
    ``tune``: nested cross-validation with a randomized search of ``tune_iter`` candidates on
    ``tune_folds`` inner folds (see :mod:`forensics.pipelines.tuning`); ``card["tuning"]`` records
    the space and the choices. Not with ``warm_start``. ``holdout``: this fraction of the images (of
    the videos, for videos) is set aside before everything else and scored once by the final model:
    ``card["holdout_metrics"]``; ``card["training_data"]`` then counts the rest, which training used.
    ``weights``: ``"balanced"`` (default) weighs every fit so that each DATA argument (folder or
    manifest), and within it real and fake, carry the same total weight
    (:func:`~forensics.pipelines.train.balanced_weights`); ``"none"``: every image counts once.
    ``augment`` (``"jpeg:75,resize:0.5"``, the syntax of ``evaluate --perturb``, or a list of
    :class:`~forensics.perturbations.Perturbation`): every readable training image also gives one
    training row per perturbation, its features computed on the perturbed copy in memory (and kept in
    the feature cache, keyed by the file and the perturbation, when ``cache_dir`` is given);
    an image and its copies share a cross-validation group (and the hold-out's side), so CV never
    scores a copy of an image it trained on. CV metrics, threshold and calibration are then over all
    rows, clean and perturbed; class means, the spectrum profile and the shortcut audit over the
    clean ones. Video frames are not augmented.
    """
    from forensics import video as _video
    from forensics.incremental import load_warm_start, round_record, rounds_of, warm_start_spec

    if classifier not in CLASSIFIERS:
        raise UsageError(f"unknown classifier '{classifier}'; choose one of {', '.join(CLASSIFIERS)}")
    if max_fpr is not None and not 0.0 <= max_fpr < 1.0:
        raise UsageError(f"--max-fpr must be in [0, 1), got {max_fpr}")
    from forensics.pipelines.calibration import CALIBRATIONS

    if calibration not in CALIBRATIONS:  # before feature extraction, not after
        raise UsageError(f"unknown calibration '{calibration}'; choose one of {', '.join(CALIBRATIONS)}")
    check_holdout({}, holdout)
    augmentations = _augmentations(augment)  # before extraction: a typo must not cost a run
    if weights not in WEIGHTINGS:
        raise UsageError(f"unknown weights '{weights}'; choose one of {', '.join(WEIGHTINGS)}")
    if tune:
        check_tuning(n_iter=tune_iter, inner_folds=tune_folds, warm_start=warm_start is not None)
    old = None
    if warm_start is not None:
        old = load_warm_start(warm_start, classifier)
        spec = warm_start_spec(old, blocks=blocks, settings=settings, face_crop=face_crop, max_pixels=max_pixels)
    else:
        spec = FeatureSpec.create(blocks if blocks is not None else "default", settings, max_pixels, face_crop=bool(face_crop))
    names = spec.feature_names()
    build_pipeline(classifier, feature_names=names)  # refuses what it cannot fit (hybrid without cnn) before extracting
    _video.check_sampling(video_every, video_fps, video_max_frames)
    if video_every is None and video_fps is None:
        video_fps = _video.TRAIN_FPS
    if video_max_frames is None:
        video_max_frames = _video.TRAIN_MAX_FRAMES
    items = collect_labelled([str(d) for d in data])
    videos = _video.collect_labelled_videos([str(d) for d in data])
    items = [i for i in items if not _video.is_video_path(i.path)]  # manifest rows naming videos
    if not items and not videos:
        raise UsageError(f"no image or video files found in {', '.join(map(str, data))}")
    counts = Counter(i.label for i in items + videos)
    if len(counts) < 2:
        only = LABEL_NAMES[next(iter(counts))]
        raise UsageError(f"training needs both real and fake images; found only {only} ({len(items) + len(videos)} files)")
    check_holdout(dict(counts), holdout, grouped=bool(videos))  # before extraction; again after it, on what was read
    rows = list(iter_features([i.path for i in items], spec, jobs=jobs, cache_dir=cache_dir, progress=_stage(progress, "extract"),
                              scheduler=scheduler)) if items else []
    X = np.vstack([r.features for r in rows]) if rows else np.zeros((0, len(spec.feature_names())))
    y = np.array([i.label for i in items], dtype=int)
    usable = ~np.all(np.isnan(X), axis=1)
    errors = summarize_errors(r.error for r in rows)
    n_failed = int((~usable).sum())
    X_fit, y_fit, diags = X[usable], y[usable], [r.diag for r, ok in zip(rows, usable) if ok]
    sources = [it.source for it, ok in zip(items, usable) if ok]
    groups = np.array([f"image:{k}" for k in range(len(y_fit))], dtype=object)
    original = np.ones(len(y_fit), dtype=bool)  # False for perturbed copies
    augmented = None
    if augmentations and len(y_fit):  # one more row per image and perturbation, in the image's group
        Xa, of, augmented = augmented_rows([it.path for it, ok in zip(items, usable) if ok], spec, augmentations,
                                           jobs=jobs, progress=_stage(progress, "augment"), cache_dir=cache_dir)
        X_fit, y_fit, groups = np.vstack([X_fit, Xa]), np.concatenate([y_fit, y_fit[of]]), np.concatenate([groups, groups[of]])
        diags, sources = diags + [diags[i] for i in of], sources + [sources[i] for i in of]
        original = np.concatenate([original, np.zeros(len(of), dtype=bool)])
    per_video: list = []
    if videos:  # one row per sampled frame; a video's frames share a CV group
        Xv, yv, gv, per_video, verrors, vdiags = _video.labelled_frame_features(
            videos, spec, every=video_every, fps=video_fps, max_frames=video_max_frames, progress=_stage(progress, "frames"),
            jobs=jobs, cache_dir=cache_dir)
        errors.update(verrors)
        n_failed += sum(1 for _, used in per_video if used == 0)
        groups = np.concatenate([groups, gv])
        X_fit, y_fit, diags = np.vstack([X_fit, Xv]), np.concatenate([y_fit, yv]), diags + vdiags
        original = np.concatenate([original, np.ones(len(yv), dtype=bool)])
        sources += [it.source for it, used in per_video for _ in range(used)]
    if len(y_fit) == 0:
        raise ForensicsError("no image could be read; nothing to train on")
    if not videos and augmented is None:
        groups = None  # plain images: StratifiedKFold, as before groups existed
    sample_weight = balanced_weights(y_fit, sources) if weights == "balanced" else None
    result = train_classifier(
        X_fit, y_fit, classifier=classifier, n_splits=n_splits, max_fpr=max_fpr,
        random_state=random_state, n_jobs=max(1, jobs if jobs > 0 else (os.cpu_count() or 1)),
        progress=_stage(progress, "train"), calibration=calibration,
        groups=groups, init_model=old.pipeline if old is not None else None,
        tune=tune, tune_iter=tune_iter, tune_folds=tune_folds, holdout=holdout, sample_weight=sample_weight,
        feature_names=names,
    )
    held, used_rows = result.holdout_index, result.train_index  # the card describes the rows training used
    X_tr, y_tr, diags_tr = X_fit[used_rows], y_fit[used_rows], [diags[i] for i in used_rows]
    original_tr = original[used_rows]
    per_source: dict[str, dict] = {}
    for it, ok in zip(items, usable):
        d = per_source.setdefault(it.source, {"real": 0, "fake": 0, "failed": 0})
        d[LABEL_NAMES[it.label]] += int(ok)
        d["failed"] += int(not ok)
    for it, used in per_video:
        d = per_source.setdefault(it.source, {"real": 0, "fake": 0, "failed": 0})
        d[f"videos_{LABEL_NAMES[it.label]}"] = d.get(f"videos_{LABEL_NAMES[it.label]}", 0) + int(used > 0)
        d[f"frames_{LABEL_NAMES[it.label]}"] = d.get(f"frames_{LABEL_NAMES[it.label]}", 0) + used
        d["failed"] += int(used == 0)
    training = {
        "data": per_source,
        "n_real": int((y_tr == 0).sum()),
        "n_fake": int((y_tr == 1).sum()),
        "n_failed": n_failed,
        "cv_folds": result.n_splits,
        "weights": weights if weights == "none" else f"{weights}: every source (DATA argument), and real and fake within it, "
                                                     "carry equal total weight",
    }
    if videos:
        training["videos"] = {
            "n_videos": sum(1 for _, used in per_video if used > 0),
            "n_frames": int(sum(used for _, used in per_video)),
            "sampling": {"every": video_every, "fps": video_fps, "max_frames": video_max_frames},
            "cv": "StratifiedGroupKFold: the frames of a video stay in one fold",
        }
    if augmented is not None:
        training["augment"] = {
            **augmented,
            "n_rows": int((~original_tr).sum()),
            "cv": "StratifiedGroupKFold: an image and its perturbed copies stay in one fold; CV metrics, threshold "
                  "and calibration are over all rows, clean and perturbed",
        }
    if len(held):
        training["holdout"] = {"fraction": holdout, "n": int(len(held)), "n_real": result.holdout_metrics["n_real"],
                               "n_fake": result.holdout_metrics["n_fake"], "seed": random_state,
                               "split": "stratified by class" + (", whole videos" if videos else "")
                                        + (", an image with its perturbed copies" if augmented is not None else "")
                                        + "; set aside before cross-validation, tuning, calibration and the final fit"}
    rule = f"max_fpr={max_fpr}" if max_fpr is not None else "best balanced accuracy on out-of-fold scores"
    if tune:
        rule += " (nested cross-validation: tuned in every outer fold)"
    card = make_card(spec=spec, classifier=classifier, training=training, cv_metrics=result.cv_metrics,
                     threshold=result.threshold, threshold_rule=rule,
                     extra=_card_evaluation(result, X_tr, y_tr, diags_tr, original_tr))
    if result.holdout_metrics is not None:
        card["holdout_metrics"] = result.holdout_metrics
    if result.tuning is not None:
        card["tuning"] = result.tuning
    this_round = round_record(date=card["created"], data=per_source,
                              counts={"real": training["n_real"], "fake": training["n_fake"], "failed": n_failed},
                              cv_metrics=result.cv_metrics,
                              extra=_round_extra(result.pipeline, warm_start if old is not None else None))
    card["rounds"] = (rounds_of(old.card) if old is not None else []) + [this_round]
    from forensics.reports.inspect import spectrum_means  # per-class mean luminance profile, for `forensics inspect`

    card["spectrum_means"] = spectrum_means(spec.feature_names(), X_tr[original_tr], y_tr[original_tr])
    model = ForensicModel(pipeline=result.pipeline, spec=spec, threshold=result.threshold, card=card,
                          calibrator=result.calibrator)
    return model, RunSummary(len(rows), n_failed, errors,
                             extra={"oof_scores": result.oof_scores})


def _augmentations(augment) -> list:
    """``augment`` as a list of perturbations (text is parsed; ``None``, ``""`` and ``"none"``: none)."""
    from forensics.perturbations import Perturbation, parse_perturbations

    if augment is None or isinstance(augment, str):
        return parse_perturbations(augment)
    out = list(augment)
    bad = [p for p in out if not isinstance(p, Perturbation)]
    if bad:
        raise UsageError(f"augment takes perturbations (e.g. 'jpeg:75,resize:0.5'), got {bad[0]!r}")
    return out


def augmented_rows(paths: list[str], spec: FeatureSpec, perturbations: list, *, jobs: int = 1,
                   progress: Callable[[int, int], None] | None = None,
                   cache_dir=None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Features of every image in ``paths`` under each perturbation (computed in memory by ``jobs``
    processes; read from and written to the feature cache in ``cache_dir`` when given), for training
    on perturbed copies.

    Returns ``(X, of, info)``: one row per copy that could be computed (image-major, perturbations in
    order), ``of[i]`` the index in ``paths`` of the image row ``i`` was made from, and ``info`` for the
    model card: the perturbations, copies per perturbation, and the copies left out with their
    distinct errors (a copy whose features are all NaN is left out; the clean image still counts).
    """
    from forensics.pipelines.evaluate import iter_conditions

    names = [p.name for p in perturbations]
    n_feat = sum(spec.block_sizes().values())
    X, of, done = [], [], 0
    per: Counter = Counter()
    problems: Counter = Counter()
    if progress:
        progress(0, len(paths))
    for results in iter_conditions(paths, spec, perturbations, clean=False, jobs=jobs, cache_dir=cache_dir):
        for feats, errs in results:
            for name, row, err in zip(names, feats, errs):
                if err:
                    problems[f"{name}: {err}"] += 1
                if np.all(np.isnan(row)):
                    continue
                X.append(row)
                of.append(done)
                per[name] += 1
            done += 1
        if progress:
            progress(done, len(paths))
    info = {"perturbations": names, "per_perturbation": {n: int(per[n]) for n in names},
            "n_left_out": int(len(paths) * len(names) - len(of)), "errors": dict(problems.most_common(10))}
    return (np.vstack(X) if X else np.zeros((0, n_feat))), np.asarray(of, dtype=int), info


def _round_extra(pipeline, warm_start) -> dict:
    """Round details: the model continued (warm start) and the booster's size (xgb)."""
    from forensics.incremental import describe_source

    extra = {"warm_start_from": describe_source(warm_start)} if warm_start is not None else {}
    booster = getattr(getattr(pipeline, "steps", [[None, None]])[-1][1], "get_booster", None)
    if booster is not None:
        extra["n_trees"] = int(booster().num_boosted_rounds())
    return extra


def _card_evaluation(result, X: np.ndarray, y: np.ndarray, diag: list[dict], original: np.ndarray | None = None) -> dict:
    """Card entries for reports: calibration, out-of-fold scores (every row), and over the ``original``
    rows (not the perturbed copies; default all) the per-class feature means and the shortcut audit."""
    from forensics.pipelines.audit import shortcut_audit
    from forensics.pipelines.calibration import calibrator_method

    if original is None:
        original = np.ones(len(y), dtype=bool)

    def means(mask):
        mask = mask & original
        with np.errstate(all="ignore"):
            m = np.nanmean(X[mask], axis=0) if mask.any() else np.full(X.shape[1], np.nan)
        return [None if not np.isfinite(v) else float(f"{v:.6g}") for v in m]

    extra = {
        "calibration": {"method": calibrator_method(result.calibrator), "fitted_on": "out-of-fold scores",
                        "n": int(np.isfinite(result.raw_oof_scores).sum()) if result.raw_oof_scores is not None else 0},
        "class_means": {"real": means(y == 0), "fake": means(y == 1)},
    }
    if np.isfinite(result.oof_scores).any():
        extra["oof"] = {"scores": [round(float(s), 5) for s in result.oof_scores], "labels": [int(v) for v in y]}
    try:  # copies share their image's size, format and quality: they would only repeat it
        extra["shortcut_audit"] = shortcut_audit([d for d, o in zip(diag, original) if o], y[original])
    except Exception as exc:  # noqa: BLE001 - the audit must never sink a training run
        logger.warning("shortcut audit failed: %s", exc)
    return extra


# --------------------------------------------------------------------------------------------------
# score
# --------------------------------------------------------------------------------------------------

SCORE_COLUMNS = ["path", "prob_fake", "label", "error"] + [f"diag__{c}" for c in DIAG_COLUMNS]
_INT_DIAG = ("width", "height", "file_size", "n_frames")


def score_frame(model: ForensicModel, inputs, *, jobs: int = 1, cache_dir=None, progress: StageProgress | None = None,
                uncertain: float | None = None, explain: int = 0, scheduler=None):
    """Scores of every image file in ``inputs`` (files and folders) as a DataFrame, in stable order.

    ``uncertain`` and ``explain`` as in :func:`rows_to_scores`; ``scheduler`` as in :func:`extract`.
    Everything is held in memory: for large folders, :func:`score` streams rows to a CSV instead.
    """
    import pandas as pd

    paths = collect_inputs([str(i) for i in inputs])
    if not paths:
        raise UsageError(f"no image files found in {', '.join(map(str, inputs))}")
    rows = list(iter_features(paths, model.spec, jobs=jobs, cache_dir=cache_dir, progress=_stage(progress, "score"),
                              scheduler=scheduler))
    return rows_to_scores(model, rows, uncertain=uncertain, explain=explain)


def rows_to_scores(model: ForensicModel, rows: list[Row], *, uncertain: float | None = None, explain: int = 0):
    """Score rows (DataFrame, :data:`SCORE_COLUMNS`, plus ``face_box`` for face-crop models) of feature rows.

    ``uncertain``: label ``uncertain`` where ``|prob_fake - threshold| < uncertain``. ``explain``: add
    columns ``explain_1..K``, the K features that pushed each score most (``name:+0.83``, log-odds
    towards fake; see :mod:`forensics.pipelines.explain`); for a model without a per-feature
    decomposition (svm) they are left out and ``frame.attrs["explain_skipped"]`` says why.
    """
    import pandas as pd

    _check_score_options(uncertain, explain)

    X = np.vstack([r.features for r in rows]) if rows else np.zeros((0, len(model.spec.feature_names())))
    probs = model.predict_proba(X)
    data = {
        "path": [r.path for r in rows],
        "prob_fake": probs,
        "label": model.label(probs),
        "error": [r.error for r in rows],
    }
    columns = list(SCORE_COLUMNS)
    if model.spec.face_crop:  # "x,y,w,h" of the face the blocks saw; empty: no face, whole image used
        data["face_box"] = [r.face_box for r in rows]
        columns.insert(columns.index("error") + 1, "face_box")
    for c in DIAG_COLUMNS:
        vals = [r.diag.get(c) for r in rows]
        if c in _INT_DIAG:  # nullable integers: the CSV's float format must not round file sizes
            vals = pd.array([None if v is None or v != v else int(v) for v in vals], dtype="Int64")
        data[f"diag__{c}"] = vals
    frame = pd.DataFrame(data, columns=columns)
    if uncertain:
        near = np.isfinite(probs) & (np.abs(probs - model.threshold) < uncertain)
        frame.loc[near, "label"] = "uncertain"
    if explain:
        _add_explanations(frame, model, X, explain)
    return frame


def _check_score_options(uncertain: float | None, explain: int) -> None:
    if uncertain is not None and not 0.0 <= uncertain < 1.0:
        raise UsageError(f"--uncertain must be in [0, 1), got {uncertain}")
    if explain < 0:
        raise UsageError(f"--explain must be a positive number of features, got {explain}")


def _add_explanations(frame, model: ForensicModel, X: np.ndarray, k: int) -> None:
    from forensics.pipelines.explain import ExplanationUnavailable, contributions, top_features

    try:
        contrib, _ = contributions(model.pipeline, X)
    except ExplanationUnavailable as exc:
        logger.warning("no explanations: %s", exc)
        frame.attrs["explain_skipped"] = str(exc)
        return
    top = top_features(contrib, model.feature_names, k)
    for j in range(k):
        frame[f"explain_{j + 1}"] = [row[j] for row in top]


def score(
    model: ForensicModel | str | os.PathLike,
    inputs,
    out: str | os.PathLike,
    *,
    jobs: int = 1,
    cache_dir=None,
    progress: StageProgress | None = None,
    resume: bool = False,
    uncertain: float | None = None,
    explain: int = 0,
    scheduler=None,
) -> RunSummary:
    """Score every image file in ``inputs`` and write the CSV ``out`` (atomically).

    ``resume``: write rows progressively to ``.<out>.partial`` and reuse the rows an interrupted run
    left there (same path, content hash and model); see :mod:`forensics.resume`. ``uncertain`` and
    ``explain`` as in :func:`rows_to_scores`. ``scheduler``: compute features on a dask.distributed
    cluster (see :func:`extract`).
    """
    _check_score_options(uncertain, explain)  # before hours of feature extraction, not after
    if not isinstance(model, ForensicModel):
        model = ForensicModel.load(model)
    out = Path(out)
    _check_writable(out)
    remove_stale_temporaries(out)
    resumed: dict = {}
    if resume:
        from forensics.resume import score_with_resume

        writer, resumed = score_with_resume(model, inputs, out, jobs=jobs, cache_dir=cache_dir, progress=progress,
                                            uncertain=uncertain, explain=explain, scheduler=scheduler)
    else:
        writer = _score_to_csv(model, inputs, out, jobs=jobs, cache_dir=cache_dir, progress=progress, uncertain=uncertain,
                               explain=explain, scheduler=scheduler)
    return RunSummary(writer.n_rows, writer.n_failed, writer.errors, str(out),
                      extra={"n_fake": writer.labels["fake"], "n_real": writer.labels["real"], **resumed,
                             "n_uncertain": writer.labels["uncertain"], **_source_counts(writer.sources),
                             "explain_skipped": writer.attrs.get("explain_skipped")})


class ScoreCsvWriter:
    """Score rows appended chunk by chunk to a temporary CSV beside ``out``, renamed to ``out`` by
    :meth:`commit`: memory stays flat however many images are scored, and ``out`` only ever holds a
    complete file. Keeps the counts a run summary needs. Use as a context manager (the temporary file
    is removed unless committed)."""

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.tmp = self.out.with_name(f".{self.out.name}.tmp-{os.getpid()}")
        self._fh = None
        self.n_rows = self.n_failed = 0
        self.errors: Counter = Counter()
        self.labels: Counter = Counter()
        self.sources: Counter = Counter()  # "computed" / "cache" / "failed": see row_source
        self.attrs: dict = {}

    def write(self, frame, rows: list[Row] | None = None) -> None:
        """Append score rows (a DataFrame of :func:`rows_to_scores`' columns); ``rows``: the feature
        rows they came from, to count features computed and read from the cache."""
        header = self._fh is None
        if header:
            self._fh = open(self.tmp, "w", encoding="utf-8", newline="")
        frame.to_csv(self._fh, index=False, header=header, float_format="%.6g")
        self.n_rows += len(frame)
        self.n_failed += int(frame["prob_fake"].isna().sum())
        self.errors.update(summarize_errors(frame["error"].dropna()))
        self.labels.update(v for v in frame["label"] if isinstance(v, str))
        self.attrs.update(frame.attrs)
        for r in rows or ():
            self.sources[row_source(r)] += 1

    def commit(self) -> None:
        if self._fh is None:  # no row at all: still a valid (empty) CSV
            self._fh = open(self.tmp, "w", encoding="utf-8", newline="")
        self._fh.close()
        os.replace(self.tmp, self.out)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if self.tmp.exists():
            self.tmp.unlink()
        return False


def _score_to_csv(model: ForensicModel, inputs, out: Path, *, jobs: int = 1, cache_dir=None, progress=None,
                  chunk_rows: int = 1024, scheduler=None, **score_options) -> ScoreCsvWriter:
    """Score ``inputs`` chunk by chunk into ``out`` (see :class:`ScoreCsvWriter`)."""
    paths = collect_inputs([str(i) for i in inputs])
    if not paths:
        raise UsageError(f"no image files found in {', '.join(map(str, inputs))}")
    with ScoreCsvWriter(out) as writer:
        buf: list[Row] = []
        for row in iter_features(paths, model.spec, jobs=jobs, cache_dir=cache_dir, progress=_stage(progress, "score"),
                                 scheduler=scheduler):
            buf.append(row)
            if len(buf) >= chunk_rows:
                writer.write(rows_to_scores(model, buf, **score_options), buf)
                buf = []
        if buf:
            writer.write(rows_to_scores(model, buf, **score_options), buf)
        writer.commit()
    return writer
