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
from forensics.pipelines import tuning as _tuning
from forensics.pipelines.metrics import choose_threshold, detection_metrics

logger = logging.getLogger(__name__)

#: Classifier choices of ``forensics train --classifier``.
CLASSIFIERS = ("xgb", "svm", "logreg", "blend", "hybrid")

#: ``hybrid``: the prefix of the columns its logistic regression sees (the ``cnn`` block's), and the
#: regression's inverse L2 strength: thousands of correlated activations on a few thousand images
#: need a strong penalty (``benchmarks/cnn_blend.py --C``; README, "Optional CNN block").
HYBRID_LINEAR_PREFIX = "cnn__"
HYBRID_C = 0.001

#: XGBoost settings of the default model: many shallow trees, each seeing a tenth of the ~1,800
#: correlated handcrafted features (measured on ../shared/data, 5-fold CV on faces-stylegan: 0.9463
#: with 1200 trees of depth 6 and colsample 0.4, 0.9526 with 2000 of these on the six blocks before
#: ``layout``). 3000 trees rather than 2000: a set's own model gains little from the extra thousand
#: (faces-stylegan 0.9547 -> 0.9557 CV AUC), but one model trained on several sets together needs them
#: (its loss on faces-stylegan against that set's own model 0.021 -> 0.020; README, Measured results).
XGB_PARAMS = dict(
    n_estimators=3000,
    learning_rate=0.05,
    max_depth=4,
    min_child_weight=2,
    subsample=0.8,
    colsample_bytree=0.1,
    reg_lambda=2.0,
    tree_method="hist",
    eval_metric="logloss",
)


def build_pipeline(classifier: str = "xgb", *, random_state: int = 0, n_jobs: int = 1,
                   feature_names: list[str] | None = None) -> Pipeline:
    """The scikit-learn Pipeline for ``classifier``.

    - ``xgb``: XGBoost on the raw features (it handles NaN natively; no scaling needed).
    - ``svm``: median imputation, standard scaling, RBF SVM with Platt-scaled probabilities.
    - ``logreg``: median imputation, standard scaling, L2 logistic regression.
    - ``blend``: the mean of the ``xgb`` and ``svm`` pipelines' probabilities
      (:class:`~forensics.pipelines.blend.BlendClassifier`).
    - ``hybrid``: the mean of the ``xgb`` model on the handcrafted columns and a logistic regression
      (C = :data:`HYBRID_C`) on the ``cnn__*`` ones (:class:`~forensics.pipelines.blend.HybridClassifier`);
      needs ``feature_names`` (the columns of X, in order) to tell them apart, and both kinds.
    """
    if classifier == "hybrid":
        from forensics.pipelines.blend import HybridClassifier

        if feature_names is None:
            raise ValueError("build_pipeline('hybrid') needs feature_names: the columns of X, in order")
        cols = [i for i, n in enumerate(feature_names) if n.startswith(HYBRID_LINEAR_PREFIX)]
        if not cols or len(cols) == len(feature_names):
            have = "only the cnn block" if cols else "no cnn block"
            raise UsageError(f"--classifier hybrid fits XGBoost on the handcrafted blocks and a logistic regression on "
                             f"the cnn block's features; these features have {have}: use e.g. --blocks faces,cnn or "
                             "--blocks default,cnn (pip install 'forensics[cnn]')")
        trees = build_pipeline("xgb", random_state=random_state, n_jobs=n_jobs).steps[-1][1]
        return Pipeline([("clf", HybridClassifier(trees=trees, linear=hybrid_linear_pipeline(random_state),
                                                  linear_columns=cols, linear_weight=0.5))])
    if classifier == "xgb":
        from xgboost import XGBClassifier

        clf = XGBClassifier(**XGB_PARAMS, random_state=random_state, n_jobs=max(1, n_jobs))
        return Pipeline([("clf", clf)])
    if classifier == "blend":
        from forensics.pipelines.blend import BlendClassifier

        xgb = build_pipeline("xgb", random_state=random_state, n_jobs=n_jobs).steps[-1][1]
        svm = build_pipeline("svm", random_state=random_state, n_jobs=n_jobs)
        return Pipeline([("clf", BlendClassifier(xgb=xgb, svm=svm, svm_weight=0.5))])
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


def hybrid_linear_pipeline(random_state: int = 0) -> Pipeline:
    """``hybrid``'s model of the cnn columns: the ``logreg`` pipeline with C = :data:`HYBRID_C`."""
    return build_pipeline("logreg", random_state=random_state).set_params(clf__C=HYBRID_C)


def _scores(pipeline: Pipeline, X: np.ndarray) -> np.ndarray:
    return pipeline.predict_proba(X)[:, 1]


@dataclass
class TrainingResult:
    pipeline: Pipeline
    threshold: float
    cv_metrics: dict
    #: Out-of-fold scores of the training rows (``train_index``), calibrated and cross-fitted.
    oof_scores: np.ndarray
    n_splits: int
    #: Map from the pipeline's scores to calibrated probabilities (``None``: not calibrated).
    calibrator: object = None
    #: Out-of-fold scores before calibration (``oof_scores`` are calibrated, cross-fitted).
    raw_oof_scores: np.ndarray | None = None
    #: Rows of ``X`` used for training (all of them without a held-out split).
    train_index: np.ndarray | None = None
    #: Rows of ``X`` held out (never fitted on) and scored once by the final model; empty without.
    holdout_index: np.ndarray | None = None
    #: :func:`~forensics.pipelines.metrics.detection_metrics` of the final model on the held-out rows.
    holdout_metrics: dict | None = None
    #: The hyper-parameter search (``--tune``; see :func:`forensics.pipelines.tuning.tuning_record`).
    tuning: dict | None = None


#: Choices of ``forensics train --weights``.
WEIGHTINGS = ("balanced", "none")


def balanced_weights(y, sources=None) -> np.ndarray:
    """Sample weights giving every (source, class) cell the same total weight, mean 1.

    ``sources`` names where each row came from (the DATA folder or manifest); ``None``: one source.
    Pooling a 16,000-image set with a 2,400-image one otherwise lets the large set dominate every
    split of the trees; within a source, real and fake count equally.
    """
    y = np.asarray(y).astype(int)
    src = np.zeros(len(y), dtype=int) if sources is None else np.unique(np.asarray(sources, dtype=str), return_inverse=True)[1]
    cells = src * 2 + y
    uniq, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    return (len(y) / (len(uniq) * counts))[inverse].astype(np.float64)


def _weight_param(pipeline) -> str:
    """The fit parameter that routes sample weights to the pipeline's classifier."""
    return f"{pipeline.steps[-1][0]}__sample_weight"


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
    fit_fold: Callable[..., object] | None = None,
    models: list | None = None,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Out-of-fold fake probabilities from stratified k-fold cross-validation.

    With ``groups`` (e.g. the video each frame comes from), StratifiedGroupKFold keeps every group in
    one fold, so that no video is both trained on and scored. ``fit_params`` go to every fit.
    ``fit_fold(X, y, groups, sample_weight)`` replaces the fit of a clone of ``pipeline`` on a fold's
    training part (e.g. a hyper-parameter search: nested cross-validation); it sees that part only.
    ``models``: a list that receives each fold's fitted model, in fold order. ``sample_weight``: per-row
    weights, the training part's go to each fit.
    """
    if groups is not None:
        skf = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    else:
        skf = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    oof = np.full(len(y), np.nan)
    if progress:
        progress(0, n_splits + 1)
    for i, (tr, te) in enumerate(skf.split(X, y, groups)):
        w = None if sample_weight is None else sample_weight[tr]
        if fit_fold is None:
            weights = {} if w is None else {_weight_param(pipeline): w}
            model = clone(pipeline).fit(X[tr], y[tr], **(fit_params or {}), **weights)
        else:
            model = fit_fold(X[tr], y[tr], None if groups is None else groups[tr], w)
        oof[te] = _scores(model, X[te])
        if models is not None:
            models.append(model)
        if progress:
            progress(i + 1, n_splits + 1)
    return oof


def _n_held(n: int, fraction: float) -> int:
    """Held-out members of a class of ``n``: ``fraction`` of them rounded half up, at least one."""
    return max(1, int(math.floor(fraction * n + 0.5))) if fraction > 0 else 0


def check_holdout(counts: dict, fraction: float, *, grouped: bool = False) -> None:
    """:class:`UsageError` unless ``0 <= fraction < 1`` and, with ``counts`` (images, or groups with
    ``grouped``, per label 0/1), the held-out split leaves at least 2 of each class for training."""
    if not 0.0 <= fraction < 1.0:
        raise UsageError(f"--holdout must be in [0, 1) (0: no held-out split), got {fraction}")
    if fraction == 0:
        return
    what = "videos or images" if grouped else "images"
    for label, n in sorted(counts.items()):
        left = n - _n_held(n, fraction)
        if left < 2:
            name = "real" if label == 0 else "fake"
            raise UsageError(f"--holdout {fraction:g} leaves {max(left, 0)} of the {n} {name} {what} for training (at least "
                             "2 needed): lower --holdout or add data")


def holdout_split(y, fraction: float, *, groups=None, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, held_out)`` of a stratified split: :func:`_n_held` of the images of each
    class (of its groups, with ``groups``: a video's frames stay together) are held out, drawn with
    ``random_state``. A group's class is that of its first row (frames of a video share a label)."""
    y = np.asarray(y).astype(int)
    g = np.asarray(groups) if groups is not None else np.arange(len(y))
    uniq, first = np.unique(g, return_index=True)
    labels = y[first]
    check_holdout({int(c): int((labels == c).sum()) for c in np.unique(labels)}, fraction, grouped=groups is not None)
    rng = np.random.default_rng(random_state)
    held_groups = [rng.permutation(uniq[labels == c])[: _n_held(int((labels == c).sum()), fraction)] for c in np.unique(labels)]
    held = np.isin(g, np.concatenate(held_groups)) if held_groups else np.zeros(len(y), bool)
    return np.flatnonzero(~held), np.flatnonzero(held)


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
    tune: bool = False,
    tune_iter: int = _tuning.DEFAULT_N_ITER,
    tune_folds: int = _tuning.DEFAULT_INNER_FOLDS,
    holdout: float = 0.0,
    sample_weight: np.ndarray | None = None,
    feature_names: list[str] | None = None,
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

    ``tune``: nested cross-validation. Each outer fold runs :func:`forensics.pipelines.tuning.tune`
    (``tune_iter`` candidates, ``tune_folds`` inner folds, grouped like the outer ones) on its training
    part only and scores its test part with the refitted best pipeline, so the out-of-fold scores, the
    CV metrics, the calibration and the threshold are those of the whole tuning procedure; the final
    model is the search run on all training rows. Not with ``init_model``.

    ``holdout``: before anything else, :func:`holdout_split` sets this fraction of the rows aside
    (stratified, by group with ``groups``, drawn with ``random_state``); everything above uses the
    rest, and the final model (calibrated, at the chosen threshold) is scored once on them:
    ``holdout_metrics``.

    ``sample_weight`` (e.g. :func:`balanced_weights`): per-row weights of every fit (outer, inner and
    final); calibration, threshold and metrics stay unweighted.

    ``feature_names``: the columns of ``X``, in order; ``classifier="hybrid"`` needs them (see
    :func:`build_pipeline`).
    """
    y = np.asarray(y).astype(int)
    X = np.asarray(X, dtype=np.float64)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        only = "real" if classes.size and classes[0] == 0 else "fake"
        raise UsageError(f"training needs both real and fake images; found only {only} ({len(y)} images)")
    _cal.resolve_method(calibration, len(y))  # fail early on a bad name
    check_holdout({}, holdout)
    if tune:
        _tuning.check_options(n_iter=tune_iter, inner_folds=tune_folds, warm_start=init_model is not None)
    if groups is not None:
        groups = np.asarray(groups)
    train_index, holdout_index = np.arange(len(y)), np.arange(0)
    if holdout > 0:
        train_index, holdout_index = holdout_split(y, holdout, groups=groups, random_state=random_state)
    X_held, y_held = X[holdout_index], y[holdout_index]
    X, y = X[train_index], y[train_index]
    groups = groups[train_index] if groups is not None else None
    if sample_weight is not None:
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
        if sample_weight.shape != (len(train_index) + len(holdout_index),):
            raise ValueError(f"sample_weight has {sample_weight.shape} values for {len(train_index) + len(holdout_index)} rows")
        sample_weight = sample_weight[train_index]
    classes, counts = np.unique(y, return_counts=True)
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
        pipeline = build_pipeline(classifier, random_state=random_state, n_jobs=n_jobs, feature_names=feature_names)
    fit_fold = None
    if tune:
        def fit_fold(X_part, y_part, groups_part, weight_part=None):
            weights = None if weight_part is None else {_weight_param(pipeline): weight_part}
            return _tuning.tune(classifier, pipeline, X_part, y_part, groups=groups_part, n_iter=tune_iter,
                                inner_folds=tune_folds, random_state=random_state, fit_params=weights)
    k = int(min(n_splits, counts.min()))
    if groups is not None:
        k = int(min(n_splits, min(len(np.unique(groups[y == c])) for c in classes)))
    calibrator, raw_oof, searches = None, None, []
    if k >= 2:
        raw_oof = cross_validated_scores(pipeline, X, y, n_splits=k, random_state=random_state, progress=progress,
                                         groups=groups, fit_params=fit_params, fit_fold=fit_fold, models=searches,
                                         sample_weight=sample_weight)
        calibrator = _cal.fit_calibrator(raw_oof, y, calibration)
        oof = _cal.cross_fitted(raw_oof, y, _cal.calibrator_method(calibrator), n_splits=k, random_state=random_state)
        threshold = choose_threshold(y, oof, max_fpr=max_fpr)
        metrics = detection_metrics(y, oof, threshold)
        metrics["auc_uncalibrated"] = detection_metrics(y, raw_oof, 0.5)["auc"]
    else:
        logger.warning("too few images in one class for cross-validation; skipping it")
        oof = np.full(len(y), np.nan)
        threshold, metrics = 0.5, {"auc": math.nan, "n": int(len(y))}
    tuning = None
    if tune:
        search = fit_fold(X, y, groups, sample_weight)
        final = search.best_estimator_
        tuning = _tuning.tuning_record(classifier, n_iter=tune_iter, inner_folds=tune_folds,
                                       final=_tuning.chosen(classifier, search),
                                       folds=[_tuning.chosen(classifier, s) for s in searches])
    else:
        weights = {} if sample_weight is None else {_weight_param(pipeline): sample_weight}
        final = clone(pipeline).fit(X, y, **fit_params, **weights)
    held_metrics = None
    if len(holdout_index):
        held_metrics = detection_metrics(y_held, _cal.apply_calibrator(calibrator, _scores(final, X_held)), threshold)
    if progress:
        progress(k + 1 if k >= 2 else 1, k + 1 if k >= 2 else 1)
    return TrainingResult(final, float(threshold), metrics, oof, k, calibrator, raw_oof, train_index, holdout_index,
                          held_metrics, tuning)


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
