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
from forensics.pipelines.train import CLASSIFIERS, train_classifier

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
    for c in DIAG_COLUMNS:
        t = pa.string() if c in ("format", "mode", "sha256") else pa.float64()
        fields.append(pa.field(f"diag__{c}", t))
    fields += [pa.field(n, pa.float64()) for n in spec.feature_names()]
    return pa.schema(fields, metadata={b"forensics.blocks": ",".join(spec.blocks).encode()})


def _rows_to_arrow(rows: list[Row], labels: list | None, schema):
    import pyarrow as pa

    cols = {"path": [r.path for r in rows]}
    if labels is not None:
        cols["label"] = labels
    cols["error"] = [r.error for r in rows]
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
) -> RunSummary:
    """Write the features table of ``inputs`` to Parquet at ``out``.

    ``inputs`` are DATA arguments (folders with real/ and fake/, CSV manifests) when ``labelled`` is
    true, image files and folders when false; ``None`` decides per the first argument (labelled if it
    is a CSV or has class sub-folders). Columns: ``path``, ``label`` (labelled only), ``error``,
    ``diag__*``, then the features. Rows stream to disk in chunks; the file appears atomically.
    """
    import pyarrow.parquet as pq

    spec = FeatureSpec.create(blocks, settings, max_pixels)
    paths, labels = _gather(inputs, labelled)
    schema = _arrow_schema(spec, labels is not None)
    out = Path(out)
    _check_writable(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    errors: Counter = Counter()
    n = failed = 0
    buf: list[Row] = []
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for row in iter_features(paths, spec, jobs=jobs, cache_dir=cache_dir, progress=_stage(progress, "extract")):
                buf.append(row)
                if len(buf) >= chunk_rows:
                    writer.write_batch(_rows_to_arrow(buf, labels[n : n + len(buf)] if labels else None, schema))
                    n, failed = _count(buf, n, failed, errors)
                    buf = []
            if buf:
                writer.write_batch(_rows_to_arrow(buf, labels[n : n + len(buf)] if labels else None, schema))
                n, failed = _count(buf, n, failed, errors)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return RunSummary(n, failed, errors, str(out))


def _count(buf, n, failed, errors):
    for r in buf:
        if r.error:
            errors[r.error] += 1
            if np.all(np.isnan(r.features)):
                failed += 1
    return n + len(buf), failed


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


# --------------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------------


def train(
    data,
    *,
    blocks="default",
    settings: dict | None = None,
    classifier: str = "xgb",
    n_splits: int = 5,
    max_fpr: float | None = None,
    jobs: int = 1,
    cache_dir=None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    random_state: int = 0,
    progress: StageProgress | None = None,
) -> tuple[ForensicModel, RunSummary]:
    """Extract features of the labelled ``data``, cross-validate, and fit a :class:`ForensicModel`.

    Images that fail to load are left out of training (counted in the summary and the card).
    """
    if classifier not in CLASSIFIERS:
        raise UsageError(f"unknown classifier '{classifier}'; choose one of {', '.join(CLASSIFIERS)}")
    if max_fpr is not None and not 0.0 <= max_fpr < 1.0:
        raise UsageError(f"--max-fpr must be in [0, 1), got {max_fpr}")
    spec = FeatureSpec.create(blocks, settings, max_pixels)
    items = collect_labelled([str(d) for d in data])
    if not items:
        raise UsageError(f"no image files found in {', '.join(map(str, data))}")
    counts = Counter(i.label for i in items)
    if len(counts) < 2:
        only = LABEL_NAMES[next(iter(counts))]
        raise UsageError(f"training needs both real and fake images; found only {only} ({len(items)} images)")
    rows = list(iter_features([i.path for i in items], spec, jobs=jobs, cache_dir=cache_dir, progress=_stage(progress, "extract")))
    X = np.vstack([r.features for r in rows])
    y = np.array([i.label for i in items])
    usable = ~np.all(np.isnan(X), axis=1)
    errors = summarize_errors(r.error for r in rows)
    n_failed = int((~usable).sum())
    if usable.sum() == 0:
        raise ForensicsError("no image could be read; nothing to train on")
    result = train_classifier(
        X[usable], y[usable], classifier=classifier, n_splits=n_splits, max_fpr=max_fpr,
        random_state=random_state, n_jobs=max(1, jobs if jobs > 0 else (os.cpu_count() or 1)),
        progress=_stage(progress, "train"),
    )
    per_source: dict[str, dict] = {}
    for it, ok in zip(items, usable):
        d = per_source.setdefault(it.source, {"real": 0, "fake": 0, "failed": 0})
        d[LABEL_NAMES[it.label]] += int(ok)
        d["failed"] += int(not ok)
    training = {
        "data": per_source,
        "n_real": int(((y == 0) & usable).sum()),
        "n_fake": int(((y == 1) & usable).sum()),
        "n_failed": n_failed,
        "cv_folds": result.n_splits,
    }
    rule = f"max_fpr={max_fpr}" if max_fpr is not None else "best balanced accuracy on out-of-fold scores"
    card = make_card(spec=spec, classifier=classifier, training=training, cv_metrics=result.cv_metrics,
                     threshold=result.threshold, threshold_rule=rule)
    model = ForensicModel(pipeline=result.pipeline, spec=spec, threshold=result.threshold, card=card)
    return model, RunSummary(len(rows), n_failed, errors, extra={"oof_scores": result.oof_scores})


# --------------------------------------------------------------------------------------------------
# score
# --------------------------------------------------------------------------------------------------

SCORE_COLUMNS = ["path", "prob_fake", "label", "error"] + [f"diag__{c}" for c in DIAG_COLUMNS]
_INT_DIAG = ("width", "height", "file_size", "n_frames")


def score_frame(model: ForensicModel, inputs, *, jobs: int = 1, cache_dir=None, progress: StageProgress | None = None):
    """Scores of every image file in ``inputs`` (files and folders) as a DataFrame, in stable order."""
    import pandas as pd

    paths = collect_inputs([str(i) for i in inputs])
    if not paths:
        raise UsageError(f"no image files found in {', '.join(map(str, inputs))}")
    rows = list(iter_features(paths, model.spec, jobs=jobs, cache_dir=cache_dir, progress=_stage(progress, "score")))
    X = np.vstack([r.features for r in rows])
    probs = model.predict_proba(X)
    data = {
        "path": [r.path for r in rows],
        "prob_fake": probs,
        "label": model.label(probs),
        "error": [r.error for r in rows],
    }
    for c in DIAG_COLUMNS:
        vals = [r.diag.get(c) for r in rows]
        if c in _INT_DIAG:  # nullable integers: the CSV's float format must not round file sizes
            vals = pd.array([None if v is None or v != v else int(v) for v in vals], dtype="Int64")
        data[f"diag__{c}"] = vals
    return pd.DataFrame(data, columns=SCORE_COLUMNS)


def score(
    model: ForensicModel | str | os.PathLike,
    inputs,
    out: str | os.PathLike,
    *,
    jobs: int = 1,
    cache_dir=None,
    progress: StageProgress | None = None,
) -> RunSummary:
    """Score every image file in ``inputs`` and write the CSV ``out`` (atomically)."""
    if not isinstance(model, ForensicModel):
        model = ForensicModel.load(model)
    out = Path(out)
    _check_writable(out)
    frame = score_frame(model, inputs, jobs=jobs, cache_dir=cache_dir, progress=progress)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        frame.to_csv(tmp, index=False, float_format="%.6g")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    failed = int(frame["prob_fake"].isna().sum())
    errors = summarize_errors(frame["error"].dropna())
    n_fake = int((frame["label"] == "fake").sum())
    return RunSummary(len(frame), failed, errors, str(out), extra={"n_fake": n_fake, "n_real": int((frame["label"] == "real").sum())})
