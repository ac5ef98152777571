"""Calibrated prob_fake: calibrators fitted on out-of-fold scores, stored in the model file, applied by
``predict_proba``; the threshold lives on the calibrated scale; ``score --uncertain``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from forensics import api
from forensics.cli import app
from forensics.demo import make_demo_dataset
from forensics.errors import UsageError
from forensics.model import TRUSTED_TYPES, ForensicModel
from forensics.pipelines import calibration as cal
from forensics.pipelines.metrics import brier_score, choose_threshold, tpr_at_fpr
from forensics.pipelines.train import train_classifier

runner = CliRunner()
BLOCKS = "color,spectrum"


def _miscalibrated(n, seed=0):
    """Labels drawn from true probabilities p, and over-confident scores (a monotone distortion)."""
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    y = (rng.random(n) < p).astype(int)
    scores = 1 / (1 + np.exp(-20 * (p - 0.5)))  # same ranking, pushed towards 0 and 1
    return scores, y


# --------------------------------------------------------------------------------------------------
# calibrators
# --------------------------------------------------------------------------------------------------


def test_auto_is_platt_for_small_sets_and_isotonic_for_large():
    assert cal.resolve_method("auto", 999) == "sigmoid"
    assert cal.resolve_method("auto", 1000) == "isotonic"
    s, y = _miscalibrated(200)
    assert isinstance(cal.fit_calibrator(s, y, "auto"), LogisticRegression)
    s, y = _miscalibrated(3000)
    assert isinstance(cal.fit_calibrator(s, y, "auto"), IsotonicRegression)
    assert cal.fit_calibrator(s, y, "none") is None
    with pytest.raises(UsageError, match="unknown calibration 'beta'"):
        cal.resolve_method("beta", 10)


@pytest.mark.parametrize("method", ["sigmoid", "isotonic"])
def test_calibration_lowers_the_brier_score_on_new_data_and_keeps_the_order(method):
    s, y = _miscalibrated(4000, seed=1)
    c = cal.fit_calibrator(s, y, method)
    s2, y2 = _miscalibrated(4000, seed=2)
    p2 = cal.apply_calibrator(c, s2)
    assert brier_score(y2, p2) < brier_score(y2, s2) - 0.01
    assert ((p2 >= 0) & (p2 <= 1)).all()
    order = np.argsort(s2)
    assert (np.diff(p2[order]) >= -1e-12).all()  # monotone: ranking (and AUC) preserved up to ties


def test_apply_calibrator_keeps_nan_and_identity_for_none():
    s, y = _miscalibrated(300)
    c = cal.fit_calibrator(s, y, "sigmoid")
    out = cal.apply_calibrator(c, np.array([0.2, np.nan, 0.9]))
    assert np.isnan(out[1]) and np.isfinite(out[[0, 2]]).all()
    np.testing.assert_array_equal(cal.apply_calibrator(None, np.array([0.1, 0.7])), [0.1, 0.7])


def test_platt_refuses_to_invert_the_ranking():
    s, y = _miscalibrated(300)
    assert cal.fit_calibrator(1 - s, y, "sigmoid") is None


def test_cross_fitted_scores_never_use_their_own_label():
    # labels unrelated to scores: a calibrator fitted on its own points would still fit noise; the
    # cross-fitted scores are out-of-sample, so their Brier score is no better than a constant's.
    rng = np.random.default_rng(3)
    s = rng.random(2000)
    y = rng.integers(0, 2, 2000)
    cf = cal.cross_fitted(s, y, "isotonic", n_splits=5)
    assert np.isfinite(cf).all()
    assert brier_score(y, cf) >= 0.25 - 0.005


def test_metric_helpers():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.65, 0.6, 0.7, 0.8, 0.9])
    assert tpr_at_fpr(y, s, 0.0) == pytest.approx(0.75)  # above 0.65: three of four fakes
    assert tpr_at_fpr(y, s, 0.25) == pytest.approx(1.0)
    assert brier_score([0, 1], [0.0, 1.0]) == 0.0
    assert brier_score([0, 1], [0.5, 0.5]) == pytest.approx(0.25)


# --------------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------------


def _separable(n_per_class=60, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2 * n_per_class, 6))
    y = np.repeat([0, 1], n_per_class)
    X[y == 1, :2] += 1.5
    return X, y


@pytest.mark.parametrize("classifier", ["xgb", "logreg"])
def test_train_classifier_calibrates_on_out_of_fold_scores(classifier):
    X, y = _separable()
    r = train_classifier(X, y, classifier=classifier, n_splits=3)
    assert isinstance(r.calibrator, LogisticRegression)  # 120 images: Platt
    assert r.raw_oof_scores is not None and r.raw_oof_scores.shape == y.shape
    # the threshold is chosen on the calibrated (cross-fitted) out-of-fold scores
    assert r.threshold == pytest.approx(choose_threshold(y, r.oof_scores))
    assert {"brier", "tpr_at_fpr_1", "tpr_at_fpr_5", "auc_uncalibrated"} <= set(r.cv_metrics)
    assert r.cv_metrics["auc"] == pytest.approx(r.cv_metrics["auc_uncalibrated"], abs=0.02)


def test_train_classifier_without_calibration():
    X, y = _separable()
    r = train_classifier(X, y, classifier="logreg", n_splits=3, calibration="none")
    assert r.calibrator is None
    np.testing.assert_array_equal(r.oof_scores, r.raw_oof_scores)


def test_train_classifier_isotonic_when_asked():
    X, y = _separable()
    r = train_classifier(X, y, classifier="logreg", n_splits=3, calibration="isotonic")
    assert isinstance(r.calibrator, IsotonicRegression)


# --------------------------------------------------------------------------------------------------
# model files and the card
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cal-data")
    make_demo_dataset(root, n_per_class=30, size=64, seed=21)
    return root


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_model_file_round_trip_with_calibrator(data, tmp_path, method):
    model, _ = api.train([data], blocks=BLOCKS, classifier="logreg", n_splits=3, cache_dir=None, calibration=method)
    assert model.card["calibration"]["method"] == method
    path = tmp_path / "m.skops"
    model.save(path)
    # skops needs no new trust for the calibrators
    assert set(sio.get_untrusted_types(file=path)) <= TRUSTED_TYPES
    loaded = ForensicModel.load(path)
    X = np.random.default_rng(0).normal(size=(5, model.card["n_features"]))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    raw = model.pipeline.predict_proba(X)[:, 1]
    np.testing.assert_allclose(model.predict_proba(X), cal.apply_calibrator(model.calibrator, raw))
    assert type(loaded.calibrator) is type(model.calibrator)


def test_card_stores_out_of_fold_scores_and_class_means(data):
    model, summary = api.train([data], blocks=BLOCKS, classifier="logreg", n_splits=3, cache_dir=None)
    card = model.card
    oof = card["oof"]
    assert len(oof["scores"]) == len(oof["labels"]) == 60
    assert sorted(set(oof["labels"])) == [0, 1]
    np.testing.assert_allclose(oof["scores"], summary.extra["oof_scores"], atol=1e-5)
    assert len(card["class_means"]["real"]) == len(card["class_means"]["fake"]) == card["n_features"]
    assert card["calibration"] == {"method": "sigmoid", "fitted_on": "out-of-fold scores", "n": 60}
    assert "brier" in card["cv_metrics"]


# --------------------------------------------------------------------------------------------------
# score --uncertain
# --------------------------------------------------------------------------------------------------


def test_score_uncertain_labels_scores_near_the_threshold(data, tmp_path):
    model, _ = api.train([data], blocks=BLOCKS, classifier="logreg", n_splits=3, cache_dir=None)
    path = tmp_path / "m.skops"
    model.save(path)
    probs = pd.read_csv(_score(path, data, tmp_path / "plain.csv"))["prob_fake"]
    w = float(np.median(np.abs(probs - model.threshold)))  # about half the images fall within w
    out = _score(path, data, tmp_path / "u.csv", "--uncertain", w)
    frame = pd.read_csv(out)
    near = (frame["prob_fake"] - model.threshold).abs() < w
    assert near.any() and (~near).any()
    assert (frame.loc[near, "label"] == "uncertain").all()
    expected = np.where(frame["prob_fake"] >= model.threshold, "fake", "real")
    assert (frame.loc[~near, "label"] == expected[~near]).all()


def test_score_uncertain_out_of_range_is_a_usage_error(data, tmp_path):
    model, _ = api.train([data], blocks=BLOCKS, classifier="logreg", n_splits=3, cache_dir=None)
    model.save(tmp_path / "m.skops")
    r = runner.invoke(app, ["score", str(tmp_path / "m.skops"), str(data), "--out", str(tmp_path / "s.csv"), "--uncertain", "1.5"])
    assert r.exit_code == 2
    assert "--uncertain" in r.stderr and "Traceback" not in r.stderr


def _score(model, data, out, *extra):
    r = runner.invoke(app, ["score", str(model), str(data), "--out", str(out), "--no-cache", *map(str, extra)])
    assert r.exit_code == 0, (r.stdout, r.stderr)
    return out
