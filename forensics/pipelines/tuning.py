"""Hyper-parameter search for ``forensics train --tune``: scikit-learn's RandomizedSearchCV over a small,
fixed search space per classifier, scored by ROC AUC on inner stratified folds.

:func:`tune` runs one search on the data it is given; :func:`forensics.pipelines.train.train_classifier`
runs it once per outer cross-validation fold, on that fold's training part only (nested
cross-validation: the outer folds score models whose parameters were chosen without them), then once
on all training data for the final model. With ``groups`` (the video each frame comes from) the inner
folds are StratifiedGroupKFold, so no video straddles an inner fold either.

The spaces are lists of values (no continuous distributions): RandomizedSearchCV then draws ``n_iter``
distinct candidates, the card can record the space as it is, and a fixed ``random_state`` makes every
search reproducible.

References
----------
Bergstra & Bengio, "Random search for hyper-parameter optimization", JMLR 13, 2012.
Cawley & Talbot, "On over-fitting in model selection and subsequent selection bias in performance
evaluation", JMLR 11, 2010 (why the tuned score must come from nested cross-validation).
"""

from __future__ import annotations

import logging
import math

import numpy as np
from sklearn.model_selection import RandomizedSearchCV, StratifiedGroupKFold, StratifiedKFold

from forensics.errors import UsageError

logger = logging.getLogger(__name__)

#: Values tried per classifier, around the defaults of :func:`forensics.pipelines.train.build_pipeline`
#: (which are in every list). Keys are the classifier's own parameter names.
SEARCH_SPACES: dict[str, dict[str, list]] = {
    "xgb": {
        "n_estimators": [1000, 2000, 3000],
        "learning_rate": [0.02, 0.05, 0.1],
        "max_depth": [3, 4, 6],
        "min_child_weight": [1, 2, 5],
        "subsample": [0.6, 0.8, 1.0],
        "colsample_bytree": [0.1, 0.2, 0.4],
        "reg_lambda": [0.5, 2.0, 8.0],
    },
    # the SVC inside CalibratedClassifierCV; features are standardised, so gamma "scale" is 1 / n_features
    "svm": {"C": [0.3, 1.0, 3.0, 10.0, 30.0], "gamma": ["scale", 0.001, 0.003, 0.01, 0.03]},
    # down to strong penalties: thousands of correlated features (faceparts, the cnn grid) on a thousand
    # or two images want C = 0.001-0.003 (README, "Optional CNN block"), the default blocks on faces-stylegan 0.3
    "logreg": {"C": [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0]},
    # the members' own parameters (xgb__..., svm__...) and the SVM's share of the mean
    "blend": {
        "svm_weight": [0.3, 0.5, 0.7],
        "svm__clf__estimator__C": [1.0, 3.0, 10.0],
        "xgb__max_depth": [3, 4, 6],
        "xgb__colsample_bytree": [0.1, 0.2, 0.4],
    },
    # the trees' parameters, the logistic regression's C and its share of the mean
    "hybrid": {
        "linear_weight": [0.3, 0.5, 0.7],
        "linear__clf__C": [0.0003, 0.001, 0.003],
        "trees__max_depth": [3, 4, 6],
        "trees__colsample_bytree": [0.1, 0.2, 0.4],
    },
}

#: Where each classifier's parameters sit in its pipeline (``build_pipeline``).
_PREFIX = {"xgb": "clf__", "svm": "clf__estimator__", "logreg": "clf__", "blend": "clf__", "hybrid": "clf__"}

#: Defaults of ``forensics train --tune-iter`` and ``--tune-folds``.
DEFAULT_N_ITER = 12
DEFAULT_INNER_FOLDS = 3
SCORING = "roc_auc"


def check_options(*, n_iter: int, inner_folds: int, warm_start: bool = False) -> None:
    """:class:`UsageError` naming the bad option; ``warm_start``: tuning was asked for with a warm start."""
    if warm_start:
        raise UsageError("--tune cannot be combined with --warm-start: a warm start continues the old model "
                         "with its own parameters")
    if n_iter < 1:
        raise UsageError(f"--tune-iter must be at least 1, got {n_iter}")
    if inner_folds < 2:
        raise UsageError(f"--tune-folds must be at least 2, got {inner_folds}")


def search_space(classifier: str) -> dict[str, list]:
    """The values tried for ``classifier`` (a copy), keyed by the classifier's parameter names."""
    try:
        return {k: list(v) for k, v in SEARCH_SPACES[classifier].items()}
    except KeyError:
        raise UsageError(f"no search space for classifier '{classifier}'; choose one of {', '.join(SEARCH_SPACES)}") from None


def n_candidates(classifier: str, n_iter: int) -> int:
    """Candidates one search tries: ``n_iter``, or the whole space when it is smaller."""
    return min(n_iter, math.prod(len(v) for v in SEARCH_SPACES[classifier].values()))


def inner_splits(y: np.ndarray, groups: np.ndarray | None, inner_folds: int) -> int:
    """Inner folds on this data: ``inner_folds``, at most the images (groups, with ``groups``) of the smaller class."""
    y = np.asarray(y)
    classes = np.unique(y)
    if groups is None:
        smallest = min(int((y == c).sum()) for c in classes)
    else:
        smallest = min(len(np.unique(np.asarray(groups)[y == c])) for c in classes)
    return int(min(inner_folds, smallest)) if len(classes) == 2 else 0


def tune(
    classifier: str,
    pipeline,
    X: np.ndarray,
    y: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    n_iter: int = DEFAULT_N_ITER,
    inner_folds: int = DEFAULT_INNER_FOLDS,
    random_state: int = 0,
    fit_params: dict | None = None,
) -> RandomizedSearchCV:
    """Fit a RandomizedSearchCV of ``pipeline`` over :data:`SEARCH_SPACES` ``[classifier]`` on ``X, y``.

    Inner folds: StratifiedKFold, or StratifiedGroupKFold with ``groups`` (shuffled, ``random_state``),
    at most as many as images (groups) in the smaller class. The search runs its fits one after the
    other (``n_jobs=1``): the classifier keeps the threads it was given, parallelism is not nested.
    A candidate whose fit fails scores NaN (one warning counts the errors). The returned search is
    refitted: ``best_estimator_`` is the pipeline with the best parameters, fitted on all of ``X``.
    ``fit_params`` go to every fit (RandomizedSearchCV slices per-row arrays such as sample weights
    per inner fold); the inner AUCs are unweighted.
    """
    check_options(n_iter=n_iter, inner_folds=inner_folds)
    k = inner_splits(y, groups, inner_folds)
    if k < 2:
        what = "videos or images" if groups is not None else "images"
        raise UsageError(f"too few {what} of one class to tune ({k} in a training part; the inner folds need 2): "
                         "add data or leave out --tune")
    splitter = (StratifiedGroupKFold if groups is not None else StratifiedKFold)(n_splits=k, shuffle=True,
                                                                                 random_state=random_state)
    prefix = _PREFIX[classifier]
    space = {prefix + name: values for name, values in search_space(classifier).items()}
    search = RandomizedSearchCV(pipeline, space, n_iter=n_candidates(classifier, n_iter), scoring=SCORING, cv=splitter,
                                refit=True, random_state=random_state, n_jobs=1, error_score=np.nan)
    search.fit(X, y, **({"groups": groups} if groups is not None else {}), **(fit_params or {}))
    return search


def chosen(classifier: str, search: RandomizedSearchCV) -> dict:
    """What a fitted search chose: ``params`` (classifier parameter names), its inner-CV AUC ``inner_auc``,
    the ``inner_folds`` it used and its ``n_fits`` (candidates x inner folds, plus the refit)."""
    prefix = _PREFIX[classifier]
    best = search.best_params_
    params = {name: best[prefix + name] for name in SEARCH_SPACES[classifier] if prefix + name in best}
    k = int(search.cv.get_n_splits())
    return {"params": params, "inner_auc": float(search.best_score_), "inner_folds": k,
            "n_fits": len(search.cv_results_["params"]) * k + 1}


def tuning_record(classifier: str, *, n_iter: int, inner_folds: int, final: dict, folds: list[dict]) -> dict:
    """The card's ``tuning`` entry: the search, its space, the final choice (``final``, a :func:`chosen`)
    and each outer fold's (``folds``; empty when cross-validation was skipped)."""
    return {
        "search": "RandomizedSearchCV",
        "scoring": SCORING,
        "search_space": search_space(classifier),
        "n_iter": n_candidates(classifier, n_iter),
        "inner_folds": inner_folds,
        "outer_folds": len(folds),
        "n_fits": final["n_fits"] + sum(f["n_fits"] for f in folds),
        "best_params": final["params"],
        "best_inner_auc": final["inner_auc"],
        "folds": folds,
    }


def format_params(params: dict) -> str:
    """``name=value, ...``."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def describe(record: dict) -> str:
    """One line on a :func:`tuning_record`: the search, its cost, the final choice, the outer folds' inner AUCs."""
    where = (f"in each of {record['outer_folds']} outer folds and once on all training images" if record["outer_folds"]
             else "on all training images (no outer cross-validation)")
    text = (f"tuning: {record['search']} ({record['scoring']}), {record['n_iter']} candidates x {record['inner_folds']} "
            f"inner folds, {where} ({record['n_fits']} fits); chosen: {format_params(record['best_params'])}")
    if record["folds"]:
        text += "; inner AUC per outer fold: " + ", ".join(f"{f['inner_auc']:.3f}" for f in record["folds"])
    return text
