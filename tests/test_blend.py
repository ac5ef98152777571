"""The ``blend`` and ``hybrid`` classifiers: the weighted mean of their members' probabilities, with
weights reaching both; ``hybrid``'s members each see their own columns."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from forensics.pipelines import build_pipeline, train_classifier
from forensics.errors import UsageError
from forensics.pipelines.blend import BlendClassifier, HybridClassifier
from forensics.pipelines.train import balanced_weights


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    y = (X[:, 0] + X[:, 1] * X[:, 2] + 0.7 * rng.normal(size=n) > 0).astype(int)
    X[rng.random(X.shape) < 0.05] = np.nan  # both members take NaN (the SVM imputes)
    return X, y


def _members():
    clf = build_pipeline("blend").named_steps["clf"]
    return clf.xgb, clf.svm


def test_probabilities_are_the_weighted_mean_of_the_members():
    X, y = _data()
    xgb, svm = _members()
    p_xgb = clone(xgb).fit(X, y).predict_proba(X)
    p_svm = clone(svm).fit(X, y).predict_proba(X)
    assert not np.allclose(p_xgb, p_svm, atol=0.05)  # two different models, or the test proves nothing
    for w in (0.0, 0.3, 1.0):
        p = BlendClassifier(xgb=xgb, svm=svm, svm_weight=w).fit(X, y).predict_proba(X)
        np.testing.assert_allclose(p, (1 - w) * p_xgb + w * p_svm, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)


def test_sample_weights_reach_both_members():
    X, y = _data(seed=1)
    xgb, svm = _members()
    w = np.where(y == 1, 5.0, 0.2)
    plain = BlendClassifier(xgb=xgb, svm=svm).fit(X, y)
    weighted = BlendClassifier(xgb=xgb, svm=svm).fit(X, y, sample_weight=w)
    # each member, weighted, is the member fitted alone with the same weights, and differs from the plain one
    alone_xgb = clone(xgb).fit(X, y, sample_weight=w).predict_proba(X)
    alone_svm = clone(svm).fit(X, y, clf__sample_weight=w).predict_proba(X)
    np.testing.assert_allclose(weighted.xgb_.predict_proba(X), alone_xgb, rtol=1e-6)
    np.testing.assert_allclose(weighted.svm_.predict_proba(X), alone_svm, rtol=1e-6)
    assert not np.allclose(weighted.xgb_.predict_proba(X), plain.xgb_.predict_proba(X), atol=1e-3)
    assert not np.allclose(weighted.svm_.predict_proba(X), plain.svm_.predict_proba(X), atol=1e-3)


def test_train_classifier_weighs_classes_in_both_members():
    # unbalanced classes: the weights train_classifier is given reach both members of every fit
    X, y = _data(n=200, seed=2)
    keep = np.flatnonzero((y == 0) | (np.arange(len(y)) % 4 == 0))
    X, y = X[keep], y[keep]
    w = balanced_weights(y)
    plain = train_classifier(X, y, classifier="blend", n_splits=3, calibration="none")
    fair = train_classifier(X, y, classifier="blend", n_splits=3, calibration="none", sample_weight=w)
    xgb, svm = _members()
    for name, alone in (("xgb_", clone(xgb).fit(X, y, sample_weight=w)), ("svm_", clone(svm).fit(X, y, clf__sample_weight=w))):
        final, unweighted = getattr(fair.pipeline[-1], name), getattr(plain.pipeline[-1], name)
        np.testing.assert_allclose(final.predict_proba(X), alone.predict_proba(X), rtol=1e-6)
        assert not np.allclose(final.predict_proba(X), unweighted.predict_proba(X), atol=1e-3), name
    # the small class scores higher out of fold once it weighs as much as the other
    assert fair.raw_oof_scores[y == 1].mean() > plain.raw_oof_scores[y == 1].mean()


@pytest.mark.parametrize("kw, message", [({"svm_weight": 1.5}, "svm_weight"), ({"svm": None}, "both members")])
def test_bad_settings_are_refused(kw, message):
    xgb, svm = _members()
    args = {"xgb": xgb, "svm": svm, **kw}
    with pytest.raises(ValueError, match=message):
        BlendClassifier(**args).fit(*_data())


def test_one_class_is_refused():
    X, _ = _data()
    xgb, svm = _members()
    with pytest.raises(ValueError, match="two classes"):
        BlendClassifier(xgb=xgb, svm=svm).fit(X, np.zeros(len(X), dtype=int))


def test_predict_is_the_more_probable_class():
    X, y = _data(seed=3)
    clf = build_pipeline("blend").fit(X, y)
    np.testing.assert_array_equal(clf.predict(X), (clf.predict_proba(X)[:, 1] > 0.5).astype(int))


# --------------------------------------------------------------------------------------------------
# hybrid: XGBoost on the handcrafted columns, logistic regression on the cnn ones
# --------------------------------------------------------------------------------------------------

NAMES = ["color__a", "color__b", "spectrum__c", "cnn__0000", "cnn__0001", "cnn__0002", "cnn__0003", "cnn__0004"]


def _hybrid_data(n=160, seed=0):
    """Columns 0-2 handcrafted, 3-7 cnn; the label depends on a step in a handcrafted column and on a
    sum of cnn columns."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    y = (np.sign(X[:, 0]) + X[:, 3:].sum(axis=1) / 2 + 0.5 * rng.normal(size=n) > 0).astype(int)
    X[rng.random(X.shape) < 0.05] = np.nan
    return X, y


def _hybrid_members():
    clf = build_pipeline("hybrid", feature_names=NAMES).named_steps["clf"]
    return clf.trees, clf.linear


def test_hybrid_sees_the_cnn_columns_linearly_and_the_rest_with_trees():
    X, y = _hybrid_data()
    clf = build_pipeline("hybrid", feature_names=NAMES).named_steps["clf"]
    assert list(clf.linear_columns) == [3, 4, 5, 6, 7] and clf.linear.named_steps["clf"].C == 0.001
    trees, linear = _hybrid_members()
    p_trees = clone(trees).fit(X[:, :3], y).predict_proba(X[:, :3])
    p_linear = clone(linear).fit(X[:, 3:], y).predict_proba(X[:, 3:])
    assert not np.allclose(p_trees, p_linear, atol=0.05)
    for w in (0.0, 0.5, 0.8):
        fitted = HybridClassifier(trees=trees, linear=linear, linear_columns=[3, 4, 5, 6, 7], linear_weight=w).fit(X, y)
        np.testing.assert_allclose(fitted.predict_proba(X), (1 - w) * p_trees + w * p_linear, rtol=1e-6, atol=1e-9)
        assert fitted.trees_.n_features_in_ == 3 and fitted.linear_.n_features_in_ == 5
    # each member is worse than the two together on this data, where each sees half of the signal
    # (a weaker penalty than the default's, which is made for thousands of columns, not five)
    from sklearn.metrics import roc_auc_score

    X, y = _hybrid_data(n=600, seed=8)
    Xn, yn = _hybrid_data(n=600, seed=9)
    linear = clone(linear).set_params(clf__C=1.0)
    both = HybridClassifier(trees=trees, linear=linear, linear_columns=[3, 4, 5, 6, 7]).fit(X, y)
    auc = roc_auc_score(yn, both.predict_proba(Xn)[:, 1])
    assert auc > roc_auc_score(yn, both.trees_.predict_proba(Xn[:, :3])[:, 1]) + 0.02
    assert auc > roc_auc_score(yn, both.linear_.predict_proba(Xn[:, 3:])[:, 1]) + 0.02


def test_hybrid_sample_weights_reach_both_members():
    X, y = _hybrid_data(seed=1)
    trees, linear = _hybrid_members()
    w = np.where(y == 1, 5.0, 0.2)
    weighted = HybridClassifier(trees=trees, linear=linear, linear_columns=[3, 4, 5, 6, 7]).fit(X, y, sample_weight=w)
    plain = HybridClassifier(trees=trees, linear=linear, linear_columns=[3, 4, 5, 6, 7]).fit(X, y)
    np.testing.assert_allclose(weighted.trees_.predict_proba(X[:, :3]),
                               clone(trees).fit(X[:, :3], y, sample_weight=w).predict_proba(X[:, :3]), rtol=1e-6)
    np.testing.assert_allclose(weighted.linear_.predict_proba(X[:, 3:]),
                               clone(linear).fit(X[:, 3:], y, clf__sample_weight=w).predict_proba(X[:, 3:]), rtol=1e-6)
    assert not np.allclose(weighted.predict_proba(X), plain.predict_proba(X), atol=1e-3)


@pytest.mark.parametrize("kw, message", [
    ({"linear_weight": -0.1}, "linear_weight"),
    ({"linear": None}, "both members"),
    ({"linear_columns": []}, "some but not all of the 8 columns"),
    ({"linear_columns": list(range(8))}, "some but not all"),
    ({"linear_columns": [3, 8]}, "some but not all"),
])
def test_hybrid_bad_settings_are_refused(kw, message):
    trees, linear = _hybrid_members()
    args = {"trees": trees, "linear": linear, "linear_columns": [3, 4], **kw}
    with pytest.raises(ValueError, match=message):
        HybridClassifier(**args).fit(*_hybrid_data())


def test_hybrid_refuses_data_of_another_width():
    X, y = _hybrid_data()
    clf = build_pipeline("hybrid", feature_names=NAMES).fit(X, y)
    with pytest.raises(ValueError, match="X has 7 features; the model was fitted on 8"):
        clf.predict_proba(X[:, :7])
    np.testing.assert_array_equal(clf.predict(X), (clf.predict_proba(X)[:, 1] > 0.5).astype(int))


def test_hybrid_needs_both_kinds_of_columns():
    with pytest.raises(ValueError, match="needs feature_names"):
        build_pipeline("hybrid")
    with pytest.raises(UsageError, match="no cnn block: use e.g. --blocks faces,cnn"):
        build_pipeline("hybrid", feature_names=NAMES[:3])
    with pytest.raises(UsageError, match="only the cnn block"):
        build_pipeline("hybrid", feature_names=NAMES[3:])
