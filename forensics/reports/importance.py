"""Which features and which blocks the model relies on.

- :func:`xgb_gain`: XGBoost's total gain per feature (what the trees split on), as shares.
- :func:`mean_abs_contributions`: mean |SHAP value| per feature (TreeSHAP from the booster's
  ``pred_contribs``; coefficient x standardised value for logistic regression) and, per block, the
  mean |sum of the block's contributions| (one number per image for the whole block).
- :func:`block_permutation_importance`: drop in AUC when a whole block's columns are shuffled
  together (rows permuted jointly, so that correlations inside the block are kept; Breiman 2001,
  grouped as in Gregorutti et al. 2017).
- :func:`block_ablation`: cross-validated AUC of each block alone and of all blocks but one,
  retrained with a lighter classifier (3 folds; XGBoost with :data:`ABLATION_TREES` trees).

References
----------
Breiman, "Random forests", Machine Learning 2001.
Gregorutti, Michel & Saint-Pierre, "Grouped variable importance with random forests", Stat. Comput. 2017.
Lundberg et al., "From local explanations to global understanding with explainable AI for trees",
Nature Machine Intelligence 2020.
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import numpy as np

from forensics.pipelines.explain import ExplanationUnavailable, classifier_kind, contributions

logger = logging.getLogger(__name__)

#: Trees of the XGBoost models retrained by the ablation (the full model uses 600).
ABLATION_TREES = 150
#: Folds of the ablation's cross-validation.
ABLATION_FOLDS = 3
#: The ablation retrains on at most this many images (a stratified sample) to stay quick.
ABLATION_MAX_IMAGES = 4000


def block_of(name: str) -> str:
    """``spectrum__lum_profile__...`` -> ``spectrum``."""
    return name.split("__", 1)[0]


def block_index(names: list[str]) -> dict[str, np.ndarray]:
    """Column indices of each block, in order of first appearance."""
    out: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        out.setdefault(block_of(n), []).append(i)
    return {b: np.array(ix) for b, ix in out.items()}


def xgb_gain(pipeline, n_features: int) -> np.ndarray | None:
    """Total gain per feature as a share of the total (``None`` unless the classifier is XGBoost)."""
    if classifier_kind(pipeline) != "xgb":
        return None
    booster = pipeline.steps[-1][1].get_booster()
    score = booster.get_score(importance_type="total_gain")
    names = booster.feature_names
    gain = np.zeros(n_features)
    for key, value in score.items():
        if names is not None and key in names:
            gain[names.index(key)] = value
        elif key.startswith("f") and key[1:].isdigit():
            gain[int(key[1:])] = value
    total = gain.sum()
    return gain / total if total > 0 else gain


def linear_weights(pipeline) -> np.ndarray | None:
    """|coefficient| per standardised feature of a logistic regression (``None`` otherwise)."""
    if classifier_kind(pipeline) != "logreg":
        return None
    return np.abs(pipeline.steps[-1][1].coef_[0])


def mean_abs_contributions(pipeline, X, names: list[str]) -> tuple[np.ndarray, dict[str, float]] | None:
    """Mean |contribution| per feature and mean |block sum| per block (log-odds); ``None`` for svm."""
    try:
        contrib, _ = contributions(pipeline, X)
    except ExplanationUnavailable:
        return None
    ok = np.isfinite(contrib).all(axis=1)
    contrib = contrib[ok]
    if not len(contrib):
        return None
    per_feature = np.abs(contrib).mean(axis=0)
    per_block = {b: float(np.abs(contrib[:, ix].sum(axis=1)).mean()) for b, ix in block_index(names).items()}
    return per_feature, per_block


def block_permutation_importance(score_fn: Callable[[np.ndarray], np.ndarray], X, y, names: list[str], *,
                                 n_repeats: int = 3, random_state: int = 0) -> dict[str, tuple[float, float]]:
    """AUC drop (mean, std over repeats) when each block's columns are permuted jointly."""
    from sklearn.metrics import roc_auc_score

    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(int)
    ok = ~np.all(np.isnan(X), axis=1)
    X, y = X[ok], y[ok]
    if len(np.unique(y)) < 2:
        return {}
    base = roc_auc_score(y, score_fn(X))
    rng = np.random.default_rng(random_state)
    out: dict[str, tuple[float, float]] = {}
    for block, ix in block_index(names).items():
        drops = []
        for _ in range(n_repeats):
            Xp = X.copy()
            perm = rng.permutation(len(X))
            Xp[:, ix] = X[perm][:, ix]
            drops.append(base - roc_auc_score(y, score_fn(Xp)))
        out[block] = (float(np.mean(drops)), float(np.std(drops)))
    return out


#: Where the XGBoost model sits in each classifier's pipeline that has one (the blend's and the
#: hybrid's is a member).
_XGB_PREFIX = {"xgb": "clf__", "blend": "clf__xgb__", "hybrid": "clf__trees__"}


def _light_pipeline(classifier: str, random_state: int, trees: int = ABLATION_TREES, n_jobs: int = 1,
                    names: list[str] | None = None):
    """``classifier``'s pipeline with fewer, faster trees. ``hybrid`` on columns ``names`` of one kind
    only (handcrafted, or the cnn block's) becomes its member for that kind: XGBoost, or its logistic
    regression."""
    from forensics.pipelines.train import HYBRID_LINEAR_PREFIX, build_pipeline, hybrid_linear_pipeline

    if classifier == "hybrid" and names is not None:
        n_cnn = sum(n.startswith(HYBRID_LINEAR_PREFIX) for n in names)
        if n_cnn == len(names):
            return hybrid_linear_pipeline(random_state)
        if n_cnn == 0:
            classifier = "xgb"
    pipe = build_pipeline(classifier, random_state=random_state, n_jobs=n_jobs, feature_names=names)
    prefix = _XGB_PREFIX.get(classifier)
    if prefix is not None:
        pipe.set_params(**{f"{prefix}n_estimators": trees, f"{prefix}learning_rate": 0.1})
    return pipe


def block_ablation(X, y, names: list[str], classifier: str, *, n_splits: int = ABLATION_FOLDS,
                   max_images: int = ABLATION_MAX_IMAGES, random_state: int = 0, trees: int = ABLATION_TREES,
                   n_jobs: int = 1, progress: Callable[[int, int], None] | None = None) -> dict | None:
    """CV AUC with all blocks, each block alone, and all blocks but each one.

    XGBoost is retrained with ``trees`` trees at learning rate 0.1 (the report's default is quick;
    ``benchmarks/accuracy.py --ablate`` uses more), also inside ``blend`` and ``hybrid``; other
    classifiers with their own settings. For ``hybrid``, a subset of one kind of blocks is fitted by
    the hybrid's member for that kind (XGBoost for handcrafted blocks, its logistic regression for
    ``cnn``).

    Returns ``{"all": auc, "alone": {block: auc}, "without": {block: auc}, "folds", "n", "classifier"}``,
    or ``None`` when there are too few images of a class for ``n_splits`` folds (at least 2).
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from forensics.pipelines.train import cross_validated_scores

    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(int)
    ok = ~np.all(np.isnan(X), axis=1)
    X, y = X[ok], y[ok]
    if len(y) > max_images:
        X, _, y, _ = train_test_split(X, y, train_size=max_images, stratify=y, random_state=random_state)
    counts = np.bincount(y, minlength=2)
    k = int(min(n_splits, counts.min()))
    if k < 2:
        return None
    blocks = block_index(names)
    subsets: list[tuple[str, str, np.ndarray]] = [("all", "all", np.arange(X.shape[1]))]
    for b, ix in blocks.items():
        subsets.append(("alone", b, ix))
        if len(blocks) > 1:
            subsets.append(("without", b, np.setdiff1d(np.arange(X.shape[1]), ix)))
    result: dict = {"alone": {}, "without": {}, "folds": k, "n": int(len(y)), "classifier": classifier,
                    "trees": trees if classifier in _XGB_PREFIX else None}
    for i, (kind, b, ix) in enumerate(subsets):
        pipe = _light_pipeline(classifier, random_state, trees, n_jobs, names=[names[j] for j in ix])
        oof = cross_validated_scores(pipe, X[:, ix], y, n_splits=k, random_state=random_state)
        auc = float(roc_auc_score(y, oof)) if np.isfinite(oof).all() else math.nan
        if kind == "all":
            result["all"] = auc
        else:
            result[kind][b] = auc
        if progress:
            progress(i + 1, len(subsets))
    return result
