"""Classifier pipelines, cross-validation with out-of-fold scores, threshold choice and final fit."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from sklearn.base import clone
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from forensics.errors import UsageError
from forensics.pipelines import calibration as _cal
from forensics.pipelines.metrics import choose_threshold, detection_metrics

logger = logging.getLogger(__name__)

#: Classifier choices of ``forensics train --classifier``.
CLASSIFIERS = ("xgb", "svm", "logreg")

#: XGBoost settings of the default model. Shallow trees, strong column subsampling: several hundred
#: correlated handcrafted features, a few thousand images.
XGB_PARAMS = dict(
    n_estimators=600,
    learning_rate=0.05,
    max_depth=4,
    min_child_weight=2,
    subsample=0.8,
    colsample_bytree=0.4,
    reg_lambda=2.0,
    tree_method="hist",
    eval_metric="logloss",
)


def build_pipeline(classifier: str = "xgb", *, random_state: int = 0, n_jobs: int = 1) -> Pipeline:
    """The scikit-learn Pipeline for ``classifier``.

    - ``xgb``: XGBoost on the raw features (it handles NaN natively; no scaling needed).
    - ``svm``: median imputation, standard scaling, RBF SVM with Platt-scaled probabilities.
    - ``logreg``: median imputation, standard scaling, L2 logistic regression.
    """
    if classifier == "xgb":
        from xgboost import XGBClassifier

        clf = XGBClassifier(**XGB_PARAMS, random_state=random_state, n_jobs=max(1, n_jobs))
        return Pipeline([("clf", clf)])
    if classifier == "svm":
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        clf = CalibratedClassifierCV(
            SVC(kernel="rbf", C=3.0, gamma="scale", random_state=random_state),
            method="sigmoid",
            ensemble=False,
            cv=3,
        )
    elif classifier == "logreg":
        clf = LogisticRegression(C=0.3, max_iter=5000, random_state=random_state)
    else:
        raise UsageError(f"unknown classifier '{classifier}'; choose one of {', '.join(CLASSIFIERS)}")
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("clf", clf),
        ]
    )


def _scores(pipeline: Pipeline, X: np.ndarray) -> np.ndarray:
    return pipeline.predict_proba(X)[:, 1]


@dataclass
class TrainingResult:
    pipeline: Pipeline
    threshold: float
    cv_metrics: dict
    oof_scores: np.ndarray
    n_splits: int
    #: Map from the pipeline's scores to calibrated probabilities (``None``: not calibrated).
    calibrator: object = None
    #: Out-of-fold scores before calibration (``oof_scores`` are calibrated, cross-fitted).
    raw_oof_scores: np.ndarray | None = None


def cross_validated_scores(
    pipeline: Pipeline,
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_splits: int = 5,
    random_state: int = 0,
    progress: Callable[[int, int], None] | None = None,
    groups: np.ndarray | None = None,
    fit_params: dict | None = None,
) -> np.ndarray:
    """Out-of-fold fake probabilities from stratified k-fold cross-validation.

    With ``groups`` (e.g. the video each frame comes from), StratifiedGroupKFold keeps every group in
    one fold, so that no video is both trained on and scored. ``fit_params`` go to every fit.
    """
    if groups is not None:
        skf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    else:
        skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    oof = np.full(len(y), np.nan)
    if progress:
        progress(0, n_splits + 1)
    for i, (tr, te) in enumerate(skf.split(X, y, groups)):
        model = clone(pipeline).fit(X[tr], y[tr], **(fit_params or {}))
        oof[te] = _scores(model, X[te])
        if progress:
            progress(i + 1, n_splits + 1)
    return oof


def train_classifier(
    X: np.ndarray,
    y: np.ndarray,
    *,
    classifier: str = "xgb",
    n_splits: int = 5,
    max_fpr: float | None = None,
    random_state: int = 0,
    n_jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    calibration: str = "auto",
    groups: np.ndarray | None = None,
    init_model: Pipeline | None = None,
) -> TrainingResult:
    """Cross-validate, calibrate, choose the threshold on out-of-fold scores, then fit on all data.

    ``calibration`` (see :mod:`forensics.pipelines.calibration`) is fitted on the out-of-fold scores;
    the threshold and the CV metrics are computed on *cross-fitted* calibrated scores (each mapped by
    a calibrator that did not see it), so the threshold lives on the calibrated scale.

    Raises :class:`UsageError` when there is only one class. With fewer images in the smaller class
    than ``n_splits``, the number of folds shrinks to it (minimum 2); below 2 cross-validation is
    skipped (metrics NaN, threshold 0.5).

    ``groups``: rows sharing a group (frames of one video) stay in one fold (StratifiedGroupKFold);
    the folds are then at most the number of groups in the smaller class. ``init_model``: a fitted
    xgb pipeline to continue (warm start): every fit, in CV and final, adds trees to a copy of its
    booster, with its parameters; see :func:`xgb_booster`.
    """
    y = np.asarray(y).astype(int)
    X = np.asarray(X, dtype=np.float64)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        only = "real" if classes.size and classes[0] == 0 else "fake"
        raise UsageError(f"training needs both real and fake images; found only {only} ({len(y)} images)")
    _cal.resolve_method(calibration, len(y))  # fail early on a bad name
    fit_params: dict = {}
    if init_model is not None:
        if classifier != "xgb":
            raise UsageError(f"a warm start continues an xgb model; --classifier {classifier} cannot continue it")
        booster = xgb_booster(init_model)
        pipeline = clone(init_model)
        last = pipeline.steps[-1][0]
        pipeline.set_params(**{f"{last}__n_jobs": max(1, n_jobs)})
        fit_params = {f"{last}__xgb_model": booster}
    else:
        pipeline = build_pipeline(classifier, random_state=random_state, n_jobs=n_jobs)
    k = int(min(n_splits, counts.min()))
    if groups is not None:
        groups = np.asarray(groups)
        k = int(min(n_splits, min(len(np.unique(groups[y == c])) for c in classes)))
    calibrator, raw_oof = None, None
    if k >= 2:
        raw_oof = cross_validated_scores(pipeline, X, y, n_splits=k, random_state=random_state, progress=progress,
                                         groups=groups, fit_params=fit_params)
        calibrator = _cal.fit_calibrator(raw_oof, y, calibration)
        oof = _cal.cross_fitted(raw_oof, y, _cal.calibrator_method(calibrator), n_splits=k, random_state=random_state)
        threshold = choose_threshold(y, oof, max_fpr=max_fpr)
        metrics = detection_metrics(y, oof, threshold)
        metrics["auc_uncalibrated"] = detection_metrics(y, raw_oof, 0.5)["auc"]
    else:
        logger.warning("too few images in one class for cross-validation; skipping it")
        oof = np.full(len(y), np.nan)
        threshold, metrics = 0.5, {"auc": math.nan, "n": int(len(y))}
    final = clone(pipeline).fit(X, y, **fit_params)
    if progress:
        progress(k + 1 if k >= 2 else 1, k + 1 if k >= 2 else 1)
    return TrainingResult(final, float(threshold), metrics, oof, k, calibrator, raw_oof)


def xgb_booster(pipeline):
    """The XGBoost booster of a fitted xgb pipeline; :class:`UsageError` for any other model."""
    steps = getattr(pipeline, "steps", None)
    clf = steps[-1][1] if steps else pipeline
    get = getattr(clf, "get_booster", None)
    if get is None:
        raise UsageError(f"a warm start needs an xgb model; this one is {type(clf).__name__}")
    try:
        return get()
    except Exception as exc:  # noqa: BLE001 - xgboost raises NotFittedError-like errors
        raise UsageError(f"the model to continue has no fitted booster: {exc}") from None
