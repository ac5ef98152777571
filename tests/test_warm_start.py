"""Incremental learning: ``forensics train --warm-start`` continues an XGBoost model with new data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from forensics import api
from forensics.demo import make_demo_dataset
from forensics.errors import UsageError
from forensics.model import ForensicModel
from forensics.pipelines.train import XGB_PARAMS, train_classifier, xgb_booster
from cli_utils import flat, run


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("warm")
    make_demo_dataset(root / "old", n_per_class=10, size=48, seed=1)
    make_demo_dataset(root / "new", n_per_class=10, size=48, seed=2)
    return root


@pytest.fixture(scope="module")
def old_model(sets, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("m") / "old.skops"
    run("train", sets / "old", "--model", path, "--blocks", "color", "--folds", "2", "--no-cache")
    return path


def test_warm_start_adds_trees_and_records_rounds(sets, old_model, tmp_path):
    new = tmp_path / "new.skops"
    res = run("train", sets / "new", "--warm-start", old_model, "--model", new, "--folds", "2", "--no-cache")
    old_m, new_m = ForensicModel.load(old_model), ForensicModel.load(new)
    assert new_m.spec.blocks == old_m.spec.blocks == ["color"] and new_m.spec.settings == old_m.spec.settings
    n = XGB_PARAMS["n_estimators"]  # each round adds the default number of trees
    assert xgb_booster(old_m.pipeline).num_boosted_rounds() == n
    assert xgb_booster(new_m.pipeline).num_boosted_rounds() == 2 * n
    rounds = new_m.card["rounds"]
    assert len(rounds) == 2
    assert set(rounds[0]) >= {"date", "data", "counts", "cv_metrics"}
    assert str(sets / "old") in rounds[0]["data"] and str(sets / "new") in rounds[1]["data"]
    assert rounds[1]["counts"]["real"] == 10 and rounds[1]["warm_start_from"] == str(old_model)
    assert [r["n_trees"] for r in rounds] == [n, 2 * n]
    assert "warm start: continued" in flat(res.stdout) and f"{n} trees -> {2 * n}" in flat(res.stdout)
    # a third round keeps the history
    third = tmp_path / "third.skops"
    run("train", sets / "old", "--warm-start", new, "--model", third, "--folds", "2", "--no-cache")
    assert len(ForensicModel.load(third).card["rounds"]) == 3
    run("score", third, sets / "new", "--out", tmp_path / "s.csv", "--no-cache")
    assert pd.read_csv(tmp_path / "s.csv")["prob_fake"].notna().all()


def test_warm_start_accepts_the_same_blocks(sets, old_model, tmp_path):
    run("train", sets / "new", "--warm-start", old_model, "--model", tmp_path / "n.skops", "--blocks", "color",
        "--folds", "2", "--no-cache")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--blocks", "texture"], "keeps the old model's blocks and settings"),
        (["--set", "color.hue_bins=4"], "block settings differ"),
        (["--classifier", "logreg"], "continues an xgb model"),
        (["--face-crop"], "--face-crop on (model: off)"),
    ],
)
def test_warm_start_refuses_different_features_or_classifier(sets, old_model, tmp_path, extra, message):
    res = run("train", sets / "new", "--warm-start", old_model, "--model", tmp_path / "n.skops", *extra, "--no-cache", ok=False)
    assert res.exit_code == 2, res.stderr
    assert message in flat(res.stderr) and "Traceback" not in res.stderr


def test_warm_start_needs_an_xgb_model(sets, tmp_path):
    logreg = tmp_path / "lr.skops"
    run("train", sets / "old", "--model", logreg, "--blocks", "color", "--classifier", "logreg", "--folds", "2", "--no-cache")
    res = run("train", sets / "new", "--warm-start", logreg, "--model", tmp_path / "n.skops", "--no-cache", ok=False)
    assert res.exit_code == 2 and "needs an xgb model" in flat(res.stderr)
    res = run("train", sets / "new", "--warm-start", tmp_path / "missing.skops", "--model", tmp_path / "n.skops", ok=False)
    assert res.exit_code == 1 and "model file not found" in flat(res.stderr)


def test_models_trained_from_scratch_have_one_round(old_model):
    card = ForensicModel.load(old_model).card
    assert len(card["rounds"]) == 1 and card["rounds"][0]["n_trees"] == XGB_PARAMS["n_estimators"]


def test_warm_start_on_a_card_without_rounds(sets):
    """Models saved before rounds were recorded get their first round rebuilt from the card."""
    old, _ = api.train([sets / "old"], blocks="color", n_splits=2, cache_dir=None)
    del old.card["rounds"]
    new, _ = api.train([sets / "new"], warm_start=old, n_splits=2, cache_dir=None)
    assert len(new.card["rounds"]) == 2 and new.card["rounds"][0]["counts"] == {"real": 10, "fake": 10}


def test_continuing_learns_a_new_kind_and_replay_keeps_the_old():
    """Synthetic check of the mechanism: the old kind of fake shows in feature 0, the new kind in
    feature 1. Continuing with new data (plus a replay sample of old data) learns the new kind while
    the old kind stays detected."""
    rng = np.random.default_rng(0)

    def kind(col, n):
        X = rng.normal(size=(n, 6))
        y = np.repeat([0, 1], n // 2)
        X[y == 1, col] += 2.5
        return X, y

    Xo, yo = kind(0, 400)
    Xn, yn = kind(1, 400)
    To, tyo = kind(0, 400)
    Tn, tyn = kind(1, 400)
    old = train_classifier(Xo, yo, n_splits=2, calibration="none")
    auc = lambda m, X, y: roc_auc_score(y, m.pipeline.predict_proba(X)[:, 1])  # noqa: E731
    assert auc(old, Tn, tyn) < 0.65  # the old model does not know the new kind
    replay = rng.choice(len(yo), 100, replace=False)
    warm = train_classifier(np.vstack([Xn, Xo[replay]]), np.concatenate([yn, yo[replay]]), n_splits=2,
                            calibration="none", init_model=old.pipeline)
    assert auc(warm, Tn, tyn) > 0.85
    assert auc(warm, To, tyo) > 0.85
    assert xgb_booster(warm.pipeline).num_boosted_rounds() == 2 * XGB_PARAMS["n_estimators"]


def test_api_warm_start_rejects_other_classifiers(sets):
    old, _ = api.train([sets / "old"], blocks="color", n_splits=2, cache_dir=None)
    with pytest.raises(UsageError, match="xgb"):
        api.train([sets / "new"], warm_start=old, classifier="svm", n_splits=2, cache_dir=None)
