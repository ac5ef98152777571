"""Training on feature tables too large for one machine: Parquet -> dask.dataframe -> xgboost.dask.

``forensics train-table FEATURES.parquet... --model M [--scheduler ADDRESS]`` reads the tables written by
``forensics extract`` on labelled data (columns ``path``, ``label``, ``error``, ``diag__*``, then the
features) with :mod:`dask.dataframe` and trains :class:`xgboost.dask.DaskXGBClassifier` with the same
parameters as the default model (:data:`forensics.pipelines.train.XGB_PARAMS`) on the workers of a
dask.distributed cluster (a ``local`` cluster of ``jobs`` processes when no address is given). The rows
are spread over the workers; none of them, nor the caller, holds the whole table.

Evaluation is a **holdout split**, not cross-validation (k more fits on a cluster cost k times as
much): a fraction ``holdout`` (default 20 %) of the images is kept out of the fit, chosen by a hash of
each file's SHA-256 (of its path when unknown), so that the split does not depend on the partitioning
and copies of one file always fall on the same side. The model is fitted on the remaining images only
(not refitted on all: the holdout stays honest for the saved model). The calibrator is fitted on the
holdout scores; the threshold and the reported metrics use *cross-fitted* calibrated holdout scores
(each mapped by a calibrator fitted on the other holdout folds), as ``forensics train`` does with
out-of-fold scores.

The fitted booster is copied into a plain :class:`xgboost.XGBClassifier`, so the model file is the
usual one: ``forensics score``, ``report`` and ``evaluate`` use it unchanged. The card says
``training_data["evaluation"] = {"method": "holdout", ...}``; ``cv_metrics`` holds the holdout metrics
and ``oof`` (at most :data:`MAX_CARD_SCORES`) the holdout scores.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from forensics.errors import ForensicsError, UsageError
from forensics.features.diag import DIAG_COLUMNS

logger = logging.getLogger(__name__)

#: Columns of an extract table that are not features.
_NON_FEATURES = frozenset({"path", "label", "error", "face_box"})
#: At most this many holdout scores are stored in the model card (and used by the shortcut audit).
MAX_CARD_SCORES = 20000
_HASH_KEY = "forensics-hold01"  # 16 characters, as pandas' siphash needs
_BUCKETS = 1_000_000


@dataclasses.dataclass
class TableTrainingResult:
    """What :func:`train_table` did: the model and counts (``per_source``: per table file)."""

    model: object
    n_rows: int
    n_failed: int
    n_train: int
    n_holdout: int
    per_source: dict


def table_spec(paths, *, settings: dict | None = None):
    """The :class:`~forensics.extraction.FeatureSpec` of Parquet feature tables, and their feature columns.

    The spec comes from the tables' metadata (``forensics.spec``, written by ``forensics extract``);
    tables without it (older files) give the blocks of ``forensics.blocks`` with ``settings``. Every
    table must have the same columns, a ``label`` column, and exactly the feature columns of the spec.
    """
    import pyarrow.parquet as pq

    from forensics.extraction import FeatureSpec

    paths = [str(p) for p in paths]
    if not paths:
        raise UsageError("no feature table given")
    columns = meta = None
    for p in paths:
        if not Path(p).is_file():
            raise UsageError(f"feature table not found: {p}")
        try:
            schema = pq.read_schema(p)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types on non-Parquet files
            raise UsageError(f"{p} is not a Parquet feature table ({type(exc).__name__}: {exc})") from None
        if "label" not in schema.names:
            raise UsageError(f"{p} has no label column: extract labelled data (folders with real/ and fake/, or a "
                             f"CSV manifest) to train on it")
        if columns is None:
            columns, meta = list(schema.names), dict(schema.metadata or {})
        elif list(schema.names) != columns:
            raise UsageError(f"{p} has other columns than {paths[0]}: tables extracted with different blocks or settings")
        elif (schema.metadata or {}).get(b"forensics.spec") != meta.get(b"forensics.spec"):
            raise UsageError(f"{p} was extracted with other block settings than {paths[0]}; train on tables of one setting")
    features = [c for c in columns if c not in _NON_FEATURES and not c.startswith("diag__")]
    raw = meta.get(b"forensics.spec")
    face_crop = "face_box" in columns
    max_pixels = None
    if raw is not None:
        d = json.loads(raw)
        blocks, table_settings, max_pixels = d["blocks"], d.get("settings") or {}, d.get("max_pixels")
        face_crop = bool(d.get("face_crop", face_crop))
        if settings:
            raise UsageError("--set is only for tables without recorded settings; these record theirs")
        settings = {b: {k: tuple(v) if isinstance(v, list) else v for k, v in s.items()} for b, s in table_settings.items()}
    elif b"forensics.blocks" in meta:
        blocks = meta[b"forensics.blocks"].decode().split(",")
    else:
        raise UsageError(f"{paths[0]} was not written by 'forensics extract' (no forensics metadata)")
    spec = FeatureSpec.create(blocks, settings, max_pixels)
    spec = dataclasses.replace(spec, face_crop=face_crop)
    if spec.feature_names() != features:
        raise UsageError(f"the feature columns of {paths[0]} are not those of blocks {', '.join(blocks)} with these "
                         f"settings ({len(features)} columns, expected {len(spec.feature_names())}); pass the --set "
                         f"options the table was extracted with")
    return spec, features


def _holdout_flags(frame, fraction: float, seed: int):
    """True for the rows of a pandas frame that belong to the holdout (hash of sha256, else path)."""
    import pandas as pd

    key = frame["diag__sha256"].astype(object).where(frame["diag__sha256"].notna(), frame["path"]).astype(str)
    h = pd.util.hash_pandas_object(key + f":{seed}", index=False, hash_key=_HASH_KEY).to_numpy()
    return pd.Series((h % _BUCKETS) < int(round(fraction * _BUCKETS)), index=frame.index)


def train_table(
    tables,
    *,
    scheduler=None,
    jobs: int = 1,
    holdout: float = 0.2,
    max_fpr: float | None = None,
    calibration: str = "auto",
    settings: dict | None = None,
    random_state: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> TableTrainingResult:
    """Train the default XGBoost model on Parquet feature tables with xgboost.dask; see the module doc.

    ``scheduler``: a dask scheduler address, ``"local"``/``None`` (a LocalCluster of ``jobs``
    single-threaded workers) or a :class:`distributed.Client`. Returns the fitted
    :class:`~forensics.model.ForensicModel` (not saved) and counts.
    """
    from forensics.distributed import check_available, dask_client

    check_available()
    import dask
    import dask.dataframe as dd
    from sklearn.pipeline import Pipeline
    from xgboost import XGBClassifier
    from xgboost import config_context as xgb_config
    from xgboost.dask import DaskXGBClassifier

    from forensics.model import ForensicModel, make_card
    from forensics.pipelines import calibration as _cal
    from forensics.pipelines.metrics import choose_threshold, detection_metrics
    from forensics.pipelines.train import XGB_PARAMS

    if not 0.0 < holdout < 1.0:
        raise UsageError(f"--holdout must be between 0 and 1, got {holdout}")
    if max_fpr is not None and not 0.0 <= max_fpr < 1.0:
        raise UsageError(f"--max-fpr must be in [0, 1), got {max_fpr}")
    _cal.resolve_method(calibration, 0)
    tables = [os.path.abspath(str(t)) for t in tables]
    spec, features = table_spec(tables, settings=settings)
    diag = [f"diag__{c}" for c in DIAG_COLUMNS]
    step = _steps(progress, 5)

    with dask_client(scheduler if scheduler is not None else "local", jobs=jobs) as client, client.as_current():
        parts = []
        for i, t in enumerate(tables):
            part = dd.read_parquet(t, columns=["path", "label"] + diag + features)
            parts.append(part.assign(source__=i))
        ddf = dd.concat(parts) if len(parts) > 1 else parts[0]
        usable = ~ddf[features].isna().all(axis=1)
        ddf = ddf.assign(usable__=usable, holdout__=ddf.map_partitions(_holdout_flags, holdout, random_state, meta=(None, bool)))
        counts, labels = dask.compute(
            ddf.groupby(["source__", "label", "usable__", "holdout__"], dropna=False).size(),
            ddf["label"].dropna().unique(),
        )
        step()
        bad = sorted(str(v) for v in labels if v not in ("real", "fake"))
        if bad:
            raise UsageError(f"labels must be real or fake; found {', '.join(bad[:5])}")
        counts = {tuple(k): int(v) for k, v in counts.items()}
        n_rows = sum(counts.values())
        nolabel = sum(v for k, v in counts.items() if not isinstance(k[1], str))
        if nolabel:
            raise UsageError(f"{nolabel} rows have no label: extract labelled data to train on it")
        n = {(lab, hold): sum(v for k, v in counts.items() if k[1] == lab and k[2] and k[3] == hold)
             for lab in ("real", "fake") for hold in (False, True)}
        n_failed = sum(v for k, v in counts.items() if not k[2])
        if n[("real", False)] + n[("fake", False)] + n[("real", True)] + n[("fake", True)] == 0:
            raise ForensicsError("no row of the tables has features; nothing to train on")
        for part_name, hold in (("training part", False), ("holdout", True)):
            missing = [lab for lab in ("real", "fake") if n[(lab, hold)] == 0]
            if missing:
                raise UsageError(f"the {part_name} has no {missing[0]} image ({n[('real', hold)]} real, "
                                 f"{n[('fake', hold)]} fake); training needs both classes on both sides")

        ok = ddf[ddf["usable__"]]
        ok = ok.assign(y__=(ok["label"] == "fake").astype("int64"))
        fit, held = ok[~ok["holdout__"]], ok[ok["holdout__"]]
        clf = DaskXGBClassifier(**XGB_PARAMS, random_state=random_state, verbosity=0)
        clf.client = client
        with xgb_config(verbosity=0):  # the workers run under the caller's xgboost config: quiet
            clf.fit(fit[features].astype("float64"), fit["y__"])
        step()
        n_hold = n[("real", True)] + n[("fake", True)]
        sample = held.sample(frac=min(1.0, MAX_CARD_SCORES / n_hold), random_state=random_state) if n_hold > MAX_CARD_SCORES else held
        with xgb_config(verbosity=0):
            raw = clf.predict_proba(held[features].astype("float64"))[:, 1].compute()
        y_hold, means, audit_rows = dask.compute(  # a separate call: the prediction is not an expression
            held["y__"],
            ok.groupby("y__")[features].mean(),
            sample[["y__"] + diag],
        )
        step()

    y_hold = np.asarray(y_hold, dtype=int)
    raw = np.asarray(raw, dtype=np.float64)
    calibrator = _cal.fit_calibrator(raw, y_hold, calibration)
    scores = _cal.cross_fitted(raw, y_hold, _cal.calibrator_method(calibrator), n_splits=5, random_state=random_state)
    threshold = choose_threshold(y_hold, scores, max_fpr=max_fpr)
    metrics = detection_metrics(y_hold, scores, threshold)
    metrics["auc_uncalibrated"] = detection_metrics(y_hold, raw, 0.5)["auc"]
    step()

    local = XGBClassifier(**XGB_PARAMS, random_state=random_state, n_jobs=1)
    local.load_model(bytearray(clf.get_booster().save_raw("ubj")))
    pipeline = Pipeline([("clf", local)])

    per_source = {}
    for i, t in enumerate(tables):
        per_source[t] = {lab: sum(v for k, v in counts.items() if k[0] == i and k[1] == lab and k[2]) for lab in ("real", "fake")}
        per_source[t]["failed"] = sum(v for k, v in counts.items() if k[0] == i and not k[2])
    n_train = n[("real", False)] + n[("fake", False)]
    training = {
        "data": per_source,
        "n_real": n[("real", False)] + n[("real", True)],
        "n_fake": n[("fake", False)] + n[("fake", True)],
        "n_failed": n_failed,
        "cv_folds": None,
        "evaluation": {
            "method": "holdout",
            "fraction": holdout,
            "n_train": n_train,
            "n_holdout": n_hold,
            "split": "hash of each file's SHA-256 (path when unknown) with the seed; copies of a file stay on one side",
            "refit_on_all": False,
        },
        "trainer": "xgboost.dask.DaskXGBClassifier on a dask.distributed cluster (forensics train-table)",
    }
    rule = f"max_fpr={max_fpr}" if max_fpr is not None else "best balanced accuracy"
    rule += " on cross-fitted calibrated holdout scores"

    def class_means(label):
        row = means.loc[label] if label in means.index else None
        return [None if row is None or not np.isfinite(row[f]) else float(f"{row[f]:.6g}") for f in features]

    keep = _card_sample(len(y_hold), random_state)
    extra = {
        "calibration": {"method": _cal.calibrator_method(calibrator), "fitted_on": "holdout scores", "n": int(np.isfinite(raw).sum())},
        "class_means": {"real": class_means(0), "fake": class_means(1)},
        "oof": {"scores": [round(float(s), 5) for s in scores[keep]], "labels": [int(v) for v in y_hold[keep]],
                "kind": "holdout", "n_total": int(len(y_hold))},
    }
    try:
        from forensics.pipelines.audit import shortcut_audit

        extra["shortcut_audit"] = shortcut_audit(audit_rows[diag], audit_rows["y__"].to_numpy())
    except Exception as exc:  # noqa: BLE001 - the audit must never sink a training run
        logger.warning("shortcut audit failed: %s", exc)
    card = make_card(spec=spec, classifier="xgb", training=training, cv_metrics=metrics, threshold=threshold,
                     threshold_rule=rule, extra=extra)
    model = ForensicModel(pipeline=pipeline, spec=spec, threshold=float(threshold), card=card, calibrator=calibrator)
    step()
    return TableTrainingResult(model, n_rows, n_failed, n_train, n_hold, per_source)


def _card_sample(n: int, seed: int) -> np.ndarray:
    if n <= MAX_CARD_SCORES:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_CARD_SCORES, replace=False))


def _steps(progress, total: int):
    state = {"done": 0}
    if progress:
        progress(0, total)

    def step():
        state["done"] += 1
        if progress:
            progress(state["done"], total)

    return step


__all__ = ["train_table", "table_spec", "TableTrainingResult", "MAX_CARD_SCORES"]
