"""``blend``: the mean of an XGBoost model's and an RBF SVM's probabilities (soft voting).

The two see the same features differently. Boosted trees split one feature at a time and are strong
where a few features carry the label (CIFAKE); an RBF SVM on standardised features measures distances
in the whole feature space and is strong where many weak, correlated cues add up (the StyleGAN faces).
Averaging their probabilities keeps most of each one's strength (``benchmarks/accuracy.py --classifier
blend``; figures in the README).

scikit-learn's :class:`~sklearn.ensemble.VotingClassifier` does the same averaging but cannot pass
sample weights to a Pipeline member without global metadata routing; this class passes them to both.

References
----------
.. [1] L. Breiman, "Stacked regressions", Machine Learning 24, 1996 (combining different learners).
.. [2] J. Platt, "Probabilistic outputs for support vector machines", 1999 (the SVM's probabilities).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.utils.validation import check_is_fitted


class BlendClassifier(ClassifierMixin, BaseEstimator):
    """Weighted mean of the class probabilities of two fitted copies of ``xgb`` and ``svm``.

    Parameters
    ----------
    xgb : classifier
        The boosted-tree model (an ``XGBClassifier``; takes NaN as missing).
    svm : classifier
        The kernel model, a Pipeline that imputes and scales before a probability-calibrated SVC.
    svm_weight : float
        Weight of the SVM's probability in [0, 1]; the XGBoost model gets ``1 - svm_weight``.

    Attributes
    ----------
    xgb_, svm_ : the fitted copies.
    classes_ : ndarray, the class labels.
    """

    def __init__(self, xgb=None, svm=None, svm_weight: float = 0.5):
        self.xgb = xgb
        self.svm = svm
        self.svm_weight = svm_weight

    def fit(self, X, y, sample_weight=None):
        """Fit both members on ``X, y``; ``sample_weight`` reaches both (the SVM's through its last step)."""
        if self.xgb is None or self.svm is None:
            raise ValueError("BlendClassifier needs both members (xgb and svm)")
        if not 0.0 <= float(self.svm_weight) <= 1.0:
            raise ValueError(f"svm_weight must be in [0, 1], got {self.svm_weight!r}")
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError(f"BlendClassifier needs two classes, got {len(self.classes_)}")
        weights = {} if sample_weight is None else {"sample_weight": np.asarray(sample_weight, dtype=np.float64)}
        self.xgb_ = clone(self.xgb).fit(X, y, **weights)
        svm = clone(self.svm)
        if weights and hasattr(svm, "steps"):
            weights = {f"{svm.steps[-1][0]}__sample_weight": weights["sample_weight"]}
        self.svm_ = svm.fit(X, y, **weights)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict_proba(self, X) -> np.ndarray:
        """``(1 - svm_weight) * p_xgb + svm_weight * p_svm``, shape (n, 2)."""
        check_is_fitted(self, "classes_")
        w = float(self.svm_weight)
        return (1.0 - w) * self.xgb_.predict_proba(X) + w * self.svm_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


__all__ = ["BlendClassifier"]
