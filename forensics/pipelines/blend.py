"""``blend``: the mean of an XGBoost model's and an RBF SVM's probabilities (soft voting); ``hybrid``:
the mean of an XGBoost model on the handcrafted features and a logistic regression on the CNN's.

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


def _fit_copy(estimator, X, y, sample_weight=None):
    """A fitted clone of ``estimator``; ``sample_weight`` reaches a Pipeline through its last step."""
    est = clone(estimator)
    if sample_weight is None:
        return est.fit(X, y)
    key = f"{est.steps[-1][0]}__sample_weight" if hasattr(est, "steps") else "sample_weight"
    return est.fit(X, y, **{key: np.asarray(sample_weight, dtype=np.float64)})


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
        self.xgb_ = _fit_copy(self.xgb, X, y, sample_weight)
        self.svm_ = _fit_copy(self.svm, X, y, sample_weight)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict_proba(self, X) -> np.ndarray:
        """``(1 - svm_weight) * p_xgb + svm_weight * p_svm``, shape (n, 2)."""
        check_is_fitted(self, "classes_")
        w = float(self.svm_weight)
        return (1.0 - w) * self.xgb_.predict_proba(X) + w * self.svm_.predict_proba(X)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class HybridClassifier(ClassifierMixin, BaseEstimator):
    """XGBoost on some columns, a linear model on the others, their probabilities averaged.

    Made for the handcrafted blocks next to the frozen CNN's features (``forensics train --blocks
    faces,cnn --classifier hybrid``): boosted trees suit the ~1,700 heterogeneous handcrafted features,
    whose few strong ones they find, while the thousands of correlated CNN activations, each weak,
    are better summed by a strongly regularised logistic regression than split one at a time
    (``benchmarks/cnn_blend.py``; figures in the README).

    Parameters
    ----------
    trees : classifier
        The model of the columns not in ``linear_columns`` (an ``XGBClassifier``; takes NaN as missing).
    linear : classifier
        The model of ``linear_columns``, a Pipeline that imputes and scales before a logistic regression.
    linear_columns : sequence of int
        Indices of the columns the linear model sees; the trees see all the others. Neither side may
        be empty.
    linear_weight : float
        Weight of the linear model's probability in [0, 1]; the trees get ``1 - linear_weight``.

    Attributes
    ----------
    trees_, linear_ : the fitted copies.
    classes_ : ndarray, the class labels.
    """

    def __init__(self, trees=None, linear=None, linear_columns=(), linear_weight: float = 0.5):
        self.trees = trees
        self.linear = linear
        self.linear_columns = linear_columns
        self.linear_weight = linear_weight

    def _split(self, X):
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1] if X.ndim == 2 else X.shape} features; the model was fitted on {self.n_features_in_}")
        return X[:, self.tree_columns_], X[:, self.linear_columns_]

    def fit(self, X, y, sample_weight=None):
        """Fit the trees on the other columns and the linear model on ``linear_columns``;
        ``sample_weight`` reaches both (the linear model's through its last step)."""
        if self.trees is None or self.linear is None:
            raise ValueError("HybridClassifier needs both members (trees and linear)")
        if not 0.0 <= float(self.linear_weight) <= 1.0:
            raise ValueError(f"linear_weight must be in [0, 1], got {self.linear_weight!r}")
        X = np.asarray(X)
        n = X.shape[1]
        cols = np.unique(np.asarray(self.linear_columns, dtype=int))
        if cols.size == 0 or cols.size == n or cols.min() < 0 or cols.max() >= n:
            raise ValueError(f"linear_columns must name some but not all of the {n} columns; got {cols.size} "
                             f"(range {cols.min() if cols.size else '-'}..{cols.max() if cols.size else '-'})")
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError(f"HybridClassifier needs two classes, got {len(self.classes_)}")
        self.n_features_in_ = n
        self.linear_columns_ = cols
        self.tree_columns_ = np.setdiff1d(np.arange(n), cols)
        Xt, Xl = self._split(X)
        self.trees_ = _fit_copy(self.trees, Xt, y, sample_weight)
        self.linear_ = _fit_copy(self.linear, Xl, y, sample_weight)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """``(1 - linear_weight) * p_trees + linear_weight * p_linear``, shape (n, 2)."""
        check_is_fitted(self, "classes_")
        Xt, Xl = self._split(X)
        w = float(self.linear_weight)
        return (1.0 - w) * self.trees_.predict_proba(Xt) + w * self.linear_.predict_proba(Xl)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


__all__ = ["BlendClassifier", "HybridClassifier"]
