"""Per-image explanations: how much each feature pushed one image's score towards fake.

- XGBoost: exact TreeSHAP contributions from the booster itself
  (``booster.predict(DMatrix, pred_contribs=True)``, Lundberg et al. 2020), in log-odds.
- Logistic regression: coefficient x standardised feature value (the linear model's exact
  decomposition of its log-odds around the training mean).
- SVM (RBF), the xgb + svm ``blend`` (whose SVM half has none) and ``hybrid`` (the mean of two
  models' probabilities, not of their log-odds): no faithful per-feature decomposition;
  :class:`ExplanationUnavailable` is raised.

Contributions are on the classifier's raw (log-odds) scale, before calibration: calibration is monotone,
so the ranking of the features and their signs are the same.

References
----------
Lundberg, Erion, Chen et al., "From local explanations to global understanding with explainable AI for
trees", Nature Machine Intelligence 2020.
"""

from __future__ import annotations

import numpy as np

from forensics.errors import UsageError


class ExplanationUnavailable(UsageError):
    """The model's classifier has no per-feature decomposition (an RBF SVM)."""


def classifier_kind(pipeline) -> str:
    """``xgb``, ``logreg``, ``blend``, ``hybrid`` or ``other`` for the final step of a fitted pipeline."""
    clf = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    name = type(clf).__name__
    if name == "XGBClassifier":
        return "xgb"
    if name == "LogisticRegression":
        return "logreg"
    if name == "BlendClassifier":
        return "blend"
    if name == "HybridClassifier":
        return "hybrid"
    return "other"


def contributions(pipeline, X) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature contributions (n_images, n_features) and the bias term (n_images,), in log-odds.

    Rows whose features are all NaN get NaN contributions.
    """
    X = np.asarray(X, dtype=np.float64)
    kind = classifier_kind(pipeline)
    out = np.full(X.shape, np.nan)
    bias = np.full(X.shape[0], np.nan)
    ok = ~np.all(np.isnan(X), axis=1) if X.size else np.zeros(X.shape[0], bool)
    if kind == "xgb":
        if ok.any():
            from xgboost import DMatrix

            booster = pipeline.steps[-1][1].get_booster()
            contrib = booster.predict(DMatrix(X[ok], missing=np.nan), pred_contribs=True)
            out[ok], bias[ok] = contrib[:, :-1], contrib[:, -1]
        return out, bias
    if kind == "logreg":
        if ok.any():
            clf = pipeline.steps[-1][1]
            Z = pipeline[:-1].transform(X[ok]) if len(pipeline.steps) > 1 else X[ok]
            out[ok] = Z * clf.coef_[0]
            bias[ok] = clf.intercept_[0]
        return out, bias
    clf = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    what = {"blend": "blend, whose SVM half", "hybrid": "hybrid, which averages two models' probabilities,"}.get(
        kind, "svm, whose RBF kernel")
    raise ExplanationUnavailable(
        f"per-image explanations need an xgb or logreg model; this one is {type(clf).__name__} ({what} "
        "has no per-feature decomposition)"
    )


def top_features(contrib: np.ndarray, names: list[str], k: int) -> list[list[str]]:
    """For each row, the ``k`` features with the largest absolute contribution, as ``name:+0.83``
    (positive pushes towards fake); empty strings where a row has no contributions."""
    contrib = np.asarray(contrib, dtype=float)
    out: list[list[str]] = []
    k = max(0, int(k))
    for row in contrib:
        if not np.isfinite(row).any():
            out.append([""] * k)
            continue
        mag = np.where(np.isfinite(row), np.abs(row), -1.0)
        idx = np.argsort(-mag, kind="stable")[:k]
        items = [f"{names[i]}:{row[i]:+.2f}" for i in idx]
        out.append(items + [""] * (k - len(items)))
    return out
