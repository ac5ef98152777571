"""forensics.pipelines: metrics with known answers, threshold choice, and train_classifier."""

from __future__ import annotations

import math

import numpy as np
import pytest

from forensics.errors import UsageError
from forensics.pipelines import CLASSIFIERS, build_pipeline, choose_threshold, detection_metrics, equal_error_rate, train_classifier
from forensics.pipelines.metrics import auc_confidence_interval

# --------------------------------------------------------------------------------------------------
# equal error rate
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "y, s, expected",
    [
        ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 0.0),  # perfect separation
        ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 1.0),  # perfectly wrong
        ([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], 0.5),  # AUC 0.75: one of each on the wrong side
        # one real above one fake: at t = 0.65 FPR = FNR = 1/4
        ([0, 0, 0, 0, 1, 1, 1, 1], [0.1, 0.2, 0.3, 0.65, 0.6, 0.7, 0.8, 0.9], 0.25),
        # 1 of 10 reals above every fake except none; FPR 0.1 at FNR 0.1
        ([0] * 10 + [1] * 10, list(range(9)) + [15] + [9] + list(range(10, 15)) + list(range(16, 20)), 0.1),
    ],
)
def test_equal_error_rate_known_values(y, s, expected):
    assert equal_error_rate(y, s) == pytest.approx(expected, abs=1e-12)


def test_equal_error_rate_is_invariant_to_monotone_transforms():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    s = rng.normal(size=100) + y
    assert equal_error_rate(y, s) == pytest.approx(equal_error_rate(y, 1 / (1 + np.exp(-3 * s))))
    assert 0.0 < equal_error_rate(y, s) < 0.5


def test_equal_error_rate_one_class_is_nan():
    assert math.isnan(equal_error_rate([1, 1, 1], [0.2, 0.5, 0.9]))


# --------------------------------------------------------------------------------------------------
# detection_metrics
# --------------------------------------------------------------------------------------------------


def test_detection_metrics_hand_made():
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.65, 0.6, 0.7, 0.8, 0.9]
    m = detection_metrics(y, s, threshold=0.5)
    # at 0.5: reals 0.65 wrong (3/4 right), fakes all right
    assert m["acc_real"] == pytest.approx(0.75)
    assert m["acc_fake"] == pytest.approx(1.0)
    assert m["balanced_accuracy"] == pytest.approx(0.875)
    assert m["auc"] == pytest.approx(15 / 16)  # one discordant pair of 16
    assert m["eer"] == pytest.approx(0.25)
    assert (m["n"], m["n_real"], m["n_fake"]) == (8, 4, 4)
    assert m["threshold"] == 0.5
    assert 0.9 < m["ap"] <= 1.0


def test_detection_metrics_threshold_is_inclusive_and_nan_scores_dropped():
    y = [0, 1, 1, 0]
    s = [0.2, 0.5, np.nan, 0.49]
    m = detection_metrics(y, s, threshold=0.5)
    assert (m["n"], m["n_real"], m["n_fake"]) == (3, 2, 1)
    assert m["acc_fake"] == 1.0  # 0.5 >= 0.5 means fake
    assert m["acc_real"] == 1.0
    assert m["auc"] == 1.0


def test_detection_metrics_one_class():
    m = detection_metrics([0, 0, 0], [0.1, 0.7, 0.2], threshold=0.5)
    assert math.isnan(m["auc"]) and math.isnan(m["eer"]) and math.isnan(m["balanced_accuracy"])
    assert m["acc_real"] == pytest.approx(2 / 3)
    assert math.isnan(m["acc_fake"])


# --------------------------------------------------------------------------------------------------
# AUC confidence interval
# --------------------------------------------------------------------------------------------------


def test_auc_interval_hand_made():
    # fakes 0.6-0.9 see 3/4, 1, 1, 1 of the reals below them; reals see 1, 1, 1, 3/4 of the fakes above:
    # both variances 1/64, se^2 = 1/128; on the logit scale se / (AUC (1 - AUC)), AUC = 15/16
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    s = [0.1, 0.2, 0.3, 0.65, 0.6, 0.7, 0.8, 0.9]
    half = 1.959963984540054 * math.sqrt(1 / 128) / (15 / 16 * 1 / 16)
    expected = (1 / (1 + math.exp(-(math.log(15) - half))), 1 / (1 + math.exp(-(math.log(15) + half))))
    assert auc_confidence_interval(y, s) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx((0.43818, 0.99655), abs=1e-5)
    m = detection_metrics(y, s)
    assert (m["auc_ci_low"], m["auc_ci_high"]) == pytest.approx(expected, rel=1e-9)
    assert m["auc_ci_low"] < m["auc"] < m["auc_ci_high"]


def _delong_direct(y, s):
    """DeLong's variance from every (fake, real) pair, O(m n): the definition the midrank form must match."""
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(1), psi.mean(0)
    return psi.mean(), v10.var(ddof=1) / len(pos) + v01.var(ddof=1) / len(neg)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_interval_matches_the_pairwise_definition_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(90) < 0.4).astype(int)
    s = rng.integers(0, 6, 90) + y  # few distinct values: many ties, within and across the classes
    auc, var = _delong_direct(y, s.astype(float))
    z = 1.959963984540054 * math.sqrt(var) / (auc * (1 - auc))
    lo, hi = auc_confidence_interval(y, s)
    assert lo == pytest.approx(1 / (1 + math.exp(-(math.log(auc / (1 - auc)) - z))), rel=1e-9)
    assert hi == pytest.approx(1 / (1 + math.exp(-(math.log(auc / (1 - auc)) + z))), rel=1e-9)


def test_auc_interval_covers_the_true_auc():
    # binormal scores with a known AUC, Phi(d / sqrt 2): a 95 % interval must cover it about 95 % of the time
    rng = np.random.default_rng(7)
    d = 1.2
    true = 0.5 * (1 + math.erf(d / 2))  # Phi(d / sqrt(2))
    y = np.repeat([0, 1], [120, 80])
    hits = [lo <= true <= hi for lo, hi in (auc_confidence_interval(y, rng.normal(size=200) + d * y) for _ in range(400))]
    assert 0.92 <= np.mean(hits) <= 0.98


def test_auc_interval_width_shrinks_like_one_over_root_n_and_stays_in_range():
    rng = np.random.default_rng(3)

    def width(n):
        y = np.repeat([0, 1], n)
        return np.mean([np.subtract(*auc_confidence_interval(y, rng.normal(size=2 * n) + 0.5 * y)[::-1]) for _ in range(40)])

    assert width(400) / width(100) == pytest.approx(0.5, abs=0.08)
    y = np.repeat([0, 1], 30)
    s = np.r_[rng.normal(size=30), rng.normal(size=30) + 3.0]
    lo, hi = auc_confidence_interval(y, s)
    auc = detection_metrics(y, s)["auc"]
    assert 0.0 < lo < auc < hi < 1.0
    assert auc - lo > hi - auc  # near 1 the interval reaches further down than up, never past 1


def test_auc_interval_degenerate_cases():
    assert auc_confidence_interval([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == (1.0, 1.0)  # perfect separation
    assert auc_confidence_interval([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == (0.0, 0.0)
    assert all(math.isnan(v) for v in auc_confidence_interval([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.9]))  # one fake
    assert all(math.isnan(v) for v in auc_confidence_interval([0, 0, 1, 1], [0.1, 0.5, np.nan, 0.9]))  # NaN dropped
    m = detection_metrics([0, 0, 0], [0.1, 0.7, 0.2])
    assert math.isnan(m["auc_ci_low"]) and math.isnan(m["auc_ci_high"])
    with pytest.raises(ValueError, match="level"):
        auc_confidence_interval([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], level=1.0)


# --------------------------------------------------------------------------------------------------
# choose_threshold
# --------------------------------------------------------------------------------------------------


def _bal_acc(y, s, t):
    y, s = np.asarray(y), np.asarray(s)
    return 0.5 * ((s[y == 0] < t).mean() + (s[y == 1] >= t).mean())


def test_choose_threshold_separable_is_midpoint():
    assert choose_threshold([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.25)
    assert choose_threshold([1, 0, 1, 0], [0.9, 0.05, 0.6, 0.4]) == pytest.approx(0.5)


def test_choose_threshold_best_balanced_accuracy_with_imbalance():
    # 1 fake among many reals: a threshold that calls everything real has accuracy 0.9 but balanced 0.5
    y = [0] * 9 + [1]
    s = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.7, 0.6]
    t = choose_threshold(y, s)
    assert t == pytest.approx(0.525)  # between 0.45 and 0.6: all fakes caught, one real lost
    assert _bal_acc(y, s, t) == pytest.approx(0.5 * (8 / 9 + 1))


def test_choose_threshold_with_tied_scores():
    # the tied pair (0.5, 0.5) can only go to one side together: both sides give balanced accuracy 0.75
    y = [0, 1, 0, 1]
    s = [0.5, 0.5, 0.1, 0.9]
    t = choose_threshold(y, s)
    assert t in (pytest.approx(0.3), pytest.approx(0.7))
    assert _bal_acc(y, s, t) == pytest.approx(0.75)


@pytest.mark.parametrize("seed", range(5))
def test_choose_threshold_maximises_balanced_accuracy(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 40)
    y[:2] = [0, 1]
    s = np.round(rng.normal(size=40) + 1.2 * y, 2)  # rounding makes ties
    t = choose_threshold(y, s)
    candidates = np.concatenate([np.unique(s), [np.inf]])
    best = max(_bal_acc(y, s, c) for c in candidates)
    assert _bal_acc(y, s, t) == pytest.approx(best)


@pytest.mark.parametrize("max_fpr", [0.0, 0.01, 0.05, 0.1, 0.25, 0.5])
@pytest.mark.parametrize("seed", range(3))
def test_choose_threshold_max_fpr_holds_on_the_training_scores(max_fpr, seed):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], [57, 43])
    s = np.round(rng.normal(size=100) + y, 1)  # heavy ties
    t = choose_threshold(y, s, max_fpr=max_fpr)
    real = s[y == 0]
    fpr = (real >= t).mean()
    assert fpr <= max_fpr
    # and it is the lowest such threshold among the real scores: one step lower breaks the target
    lower = real[real < t]
    if lower.size:
        assert (real >= lower.max()).mean() > max_fpr


def test_choose_threshold_validation_and_one_class():
    with pytest.raises(ValueError, match="max_fpr"):
        choose_threshold([0, 1], [0.1, 0.9], max_fpr=1.0)
    with pytest.raises(ValueError, match="max_fpr"):
        choose_threshold([0, 1], [0.1, 0.9], max_fpr=-0.1)
    assert choose_threshold([0, 0], [0.1, 0.9]) == 0.5


# --------------------------------------------------------------------------------------------------
# train_classifier
# --------------------------------------------------------------------------------------------------


def _separable(n_per_class=40, n_features=8, seed=0, nan_frac=0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2 * n_per_class, n_features))
    y = np.repeat([0, 1], n_per_class)
    X[y == 1, :3] += 3.0  # three informative features
    if nan_frac:
        X[rng.random(X.shape) < nan_frac] = np.nan
    return X, y


def _names(n_features: int) -> list[str]:
    """Column names for ``hybrid``: the first two handcrafted, the rest the cnn block's (with one of
    the three informative columns)."""
    return ["a__0", "a__1"] + [f"cnn__{i:04d}" for i in range(n_features - 2)]


@pytest.mark.parametrize("classifier", CLASSIFIERS)
def test_train_classifier_on_separable_data(classifier):
    X, y = _separable()
    progress = []
    result = train_classifier(X, y, classifier=classifier, n_splits=3, progress=lambda d, t: progress.append((d, t)),
                              feature_names=_names(X.shape[1]))
    assert result.n_splits == 3
    assert result.cv_metrics["auc"] > 0.9
    assert result.cv_metrics["n"] == len(y)
    assert 0.0 < result.threshold < 1.0
    assert result.oof_scores.shape == (len(y),)
    assert np.isfinite(result.oof_scores).all()
    assert ((result.oof_scores >= 0) & (result.oof_scores <= 1)).all()
    # the threshold was chosen on the out-of-fold scores
    assert result.threshold == pytest.approx(choose_threshold(y, result.oof_scores))
    # the final pipeline is fitted on everything and scores new data
    Xn, yn = _separable(seed=1)
    p = result.pipeline.predict_proba(Xn)[:, 1]
    assert detection_metrics(yn, p)["auc"] > 0.9
    assert progress[0] == (0, 4) and progress[-1] == (4, 4)


@pytest.mark.parametrize("classifier", CLASSIFIERS)
def test_train_classifier_handles_missing_values(classifier):
    X, y = _separable(nan_frac=0.1, seed=2)
    result = train_classifier(X, y, classifier=classifier, n_splits=3, feature_names=_names(X.shape[1]))
    assert np.isfinite(result.oof_scores).all()
    assert result.cv_metrics["auc"] > 0.85


def test_train_classifier_max_fpr_applies_to_the_oof_scores():
    X, y = _separable(seed=3)
    X[:, :3] /= 3.0  # overlap the classes so that the constraint bites
    result = train_classifier(X, y, classifier="logreg", n_splits=4, max_fpr=0.05)
    real = result.oof_scores[y == 0]
    assert (real >= result.threshold).mean() <= 0.05
    assert result.cv_metrics["acc_real"] >= 0.95


def test_train_classifier_is_reproducible():
    X, y = _separable(seed=4)
    a = train_classifier(X, y, classifier="xgb", n_splits=3, random_state=7)
    b = train_classifier(X, y, classifier="xgb", n_splits=3, random_state=7)
    np.testing.assert_array_equal(a.oof_scores, b.oof_scores)
    assert a.threshold == b.threshold


@pytest.mark.parametrize("label", [0, 1])
def test_train_classifier_one_class_is_usage_error(label):
    X, _ = _separable()
    with pytest.raises(UsageError, match=f"found only {'real' if label == 0 else 'fake'}"):
        train_classifier(X, np.full(len(X), label), classifier="logreg")


def test_train_classifier_tiny_class_shrinks_folds():
    X, y = _separable(n_per_class=20)
    keep = np.r_[np.arange(20), 20, 21, 22]  # 20 real, 3 fake
    result = train_classifier(X[keep], y[keep], classifier="logreg", n_splits=5)
    assert result.n_splits == 3
    assert np.isfinite(result.oof_scores).all()
    assert result.cv_metrics["n_fake"] == 3


def test_train_classifier_single_image_class_skips_cross_validation():
    X, y = _separable(n_per_class=10)
    keep = np.r_[np.arange(10), 10]  # 10 real, 1 fake
    result = train_classifier(X[keep], y[keep], classifier="logreg", n_splits=5)
    assert result.n_splits == 1
    assert result.threshold == 0.5
    assert math.isnan(result.cv_metrics["auc"])
    assert np.isnan(result.oof_scores).all()
    assert result.pipeline.predict_proba(X[keep]).shape == (11, 2)  # still fitted


def test_unknown_classifier():
    with pytest.raises(UsageError, match="unknown classifier 'forest'"):
        build_pipeline("forest")


# --------------------------------------------------------------------------------------------------
# sample weights (forensics train --weights)
# --------------------------------------------------------------------------------------------------


def test_balanced_weights_give_every_source_and_class_equal_total_weight():
    from forensics.pipelines.train import balanced_weights

    y = np.array([0] * 90 + [1] * 10 + [0] * 5 + [1] * 15)
    src = np.array(["big"] * 100 + ["small"] * 20)
    w = balanced_weights(y, src)
    assert w.mean() == pytest.approx(1.0)
    totals = [w[(src == s) & (y == c)].sum() for s in ("big", "small") for c in (0, 1)]
    assert totals == pytest.approx([30.0] * 4)
    # one source: class balance only; already balanced data gets weight 1 everywhere
    assert balanced_weights(np.repeat([0, 1], 7)) == pytest.approx(np.ones(14))


def test_weights_reach_every_fit_sliced_per_fold():
    from forensics.pipelines.train import cross_validated_scores

    X, y = _separable(n_per_class=20)
    w = np.arange(1, len(y) + 1, dtype=float)
    seen = []

    def fit_fold(Xp, yp, gp, wp):
        rows = [int(np.flatnonzero((X == r).all(axis=1))[0]) for r in Xp]
        seen.append((rows, wp))
        return build_pipeline("logreg").fit(Xp, yp)

    cross_validated_scores(build_pipeline("logreg"), X, y, n_splits=4, fit_fold=fit_fold, sample_weight=w)
    assert len(seen) == 4
    for rows, wp in seen:
        assert wp == pytest.approx(w[rows])


def test_weights_change_the_model_and_unit_weights_do_not():
    X, y = _separable(seed=5)
    X[:, :3] /= 3.0
    plain = train_classifier(X, y, classifier="logreg", n_splits=3)
    ones = train_classifier(X, y, classifier="logreg", n_splits=3, sample_weight=np.ones(len(y)))
    assert ones.oof_scores == pytest.approx(plain.oof_scores)
    w = np.where(y == 1, 5.0, 0.2)  # fakes weigh 25 times more: scores move up
    heavy = train_classifier(X, y, classifier="logreg", n_splits=3, sample_weight=w, calibration="none")
    light = train_classifier(X, y, classifier="logreg", n_splits=3, calibration="none")
    assert heavy.raw_oof_scores.mean() > light.raw_oof_scores.mean() + 0.05
    with pytest.raises(ValueError, match="sample_weight"):
        train_classifier(X, y, classifier="logreg", n_splits=3, sample_weight=np.ones(3))
