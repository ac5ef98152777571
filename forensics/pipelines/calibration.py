"""Calibration of classifier scores into probabilities, fitted on out-of-fold scores.

A classifier's ``predict_proba`` is a ranking score, not a probability: boosted trees are over-confident,
an SVM's Platt scaling is fitted on its own inner folds. The model's ``prob_fake`` is made a calibrated
probability by a one-dimensional map fitted on the *out-of-fold* scores of cross-validation (scores of
images the classifier did not see), as in Niculescu-Mizil & Caruana (2005):

- ``isotonic``: :class:`~sklearn.isotonic.IsotonicRegression` (monotone, non-parametric), for large sets;
- ``sigmoid`` (Platt scaling): :class:`~sklearn.linear_model.LogisticRegression` on the logit of the
  score, for small sets where isotonic regression overfits;
- ``auto``: ``sigmoid`` below :data:`ISOTONIC_MIN_SAMPLES` images, else ``isotonic``;
- ``none``: no calibration.

Both calibrators are scikit-learn types, so model files stay loadable by skops without new trust.

References
----------
Platt, "Probabilistic outputs for support vector machines", 1999.
Zadrozny & Elkan, "Transforming classifier scores into accurate multiclass probability estimates", KDD 2002.
Niculescu-Mizil & Caruana, "Predicting good probabilities with supervised learning", ICML 2005.
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from forensics.errors import UsageError

logger = logging.getLogger(__name__)

#: ``calibration`` choices of training.
CALIBRATIONS = ("auto", "isotonic", "sigmoid", "none")
#: Below this many scored images, ``auto`` uses Platt scaling instead of isotonic regression.
ISOTONIC_MIN_SAMPLES = 1000
_EPS = 1e-6


def resolve_method(method: str, n: int) -> str:
    """The calibration actually used for ``method`` with ``n`` out-of-fold scores."""
    if method not in CALIBRATIONS:
        raise UsageError(f"unknown calibration '{method}'; choose one of {', '.join(CALIBRATIONS)}")
    if method == "auto":
        return "isotonic" if n >= ISOTONIC_MIN_SAMPLES else "sigmoid"
    return method


def _logit(scores) -> np.ndarray:
    s = np.clip(np.asarray(scores, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(s / (1.0 - s)).reshape(-1, 1)


def fit_calibrator(scores, y, method: str = "auto"):
    """Fit the map from scores to probabilities; ``None`` for ``none`` or when it cannot be fitted.

    A Platt fit whose slope is not positive (scores unrelated to the label) would invert the ranking;
    it is refused (``None``, scores left as they are) with a warning.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(int)
    ok = np.isfinite(s)
    s, y = s[ok], y[ok]
    method = resolve_method(method, len(s))
    if method == "none" or len(np.unique(y)) < 2:
        return None
    if method == "isotonic":
        return IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(s, y)
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(_logit(s), y)
    if lr.coef_[0, 0] <= 0:
        logger.warning("Platt calibration has a non-positive slope (scores unrelated to labels); not calibrating")
        return None
    return lr


def apply_calibrator(calibrator, scores) -> np.ndarray:
    """Calibrated probabilities (NaN stays NaN); the identity for ``None``."""
    s = np.asarray(scores, dtype=np.float64)
    if calibrator is None:
        return s.copy()
    out = np.full(s.shape, np.nan)
    ok = np.isfinite(s)
    if ok.any():
        if isinstance(calibrator, IsotonicRegression):
            out[ok] = calibrator.predict(s[ok])
        elif isinstance(calibrator, LogisticRegression):
            out[ok] = calibrator.predict_proba(_logit(s[ok]))[:, 1]
        else:
            raise TypeError(f"unsupported calibrator {type(calibrator).__name__}")
    return out


def calibrator_method(calibrator) -> str:
    """``isotonic``, ``sigmoid`` or ``none``."""
    if calibrator is None:
        return "none"
    return "isotonic" if isinstance(calibrator, IsotonicRegression) else "sigmoid"


def cross_fitted(scores, y, method: str = "auto", *, n_splits: int = 5, random_state: int = 0) -> np.ndarray:
    """Calibrated out-of-fold scores where each score is mapped by a calibrator fitted on the *other*
    folds' scores: an honest estimate of what the calibrated model does on unseen images (metrics and
    the threshold are computed on these). The method is resolved once, on the whole set.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y).astype(int)
    method = resolve_method(method, int(np.isfinite(s).sum()))
    if method == "none":
        return s.copy()
    counts = np.bincount(y[np.isfinite(s)], minlength=2)
    k = int(min(n_splits, counts.min()))
    if k < 2:
        return apply_calibrator(fit_calibrator(s, y, method), s)
    out = np.full(s.shape, np.nan)
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=random_state + 1)
    for tr, te in skf.split(s.reshape(-1, 1), y):
        cal = fit_calibrator(s[tr], y[tr], method)
        out[te] = apply_calibrator(cal, s[te])
    return out
