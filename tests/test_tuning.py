"""``train --tune`` (nested cross-validation around a randomized search) and ``train --holdout``
(an untouched test split), at the level of :func:`train_classifier`.

The structural tests record the rows every fit sees: each Pipeline fit (inner candidates, refits and
final fits alike) and each call of the search (:func:`forensics.pipelines.tuning.tune`) map their X
back to row numbers of the data set.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from forensics.errors import UsageError
from forensics.pipelines import CLASSIFIERS, build_pipeline, train_classifier
from forensics.pipelines import tuning
from forensics.pipelines.calibration import apply_calibrator
from forensics.pipelines.metrics import detection_metrics
from forensics.pipelines.train import XGB_PARAMS, check_holdout, holdout_split


def _data(n_per_class=30, n_features=6, seed=0, shift=1.5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2 * n_per_class, n_features))
    y = np.repeat([0, 1], n_per_class)
    X[y == 1, :2] += shift
    return X, y


def _videos(n_per_class=8, frames=3, seed=0):
    """Frames of videos: rows of one video share a group and lie near its own centre."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2 * n_per_class, 5))
    labels = np.repeat([0, 1], n_per_class)
    centres[labels == 1, :2] += 1.5
    X = np.repeat(centres, frames, axis=0) + 0.1 * rng.normal(size=(2 * n_per_class * frames, 5))
    return X, np.repeat(labels, frames), np.repeat(np.array([f"v{i}" for i in range(2 * n_per_class)], dtype=object), frames)


class _Recorder:
    """Records, in call order, ("tune", rows) for each search and ("fit", rows) for each Pipeline fit."""

    def __init__(self, monkeypatch, X):
        self.index = {row.tobytes(): i for i, row in enumerate(np.asarray(X, dtype=np.float64))}
        assert len(self.index) == len(X)
        self.events: list[tuple[str, frozenset]] = []
        real_fit, real_tune = Pipeline.fit, tuning.tune
        recorder = self

        def fit(pipe, X, y=None, **kw):
            recorder.events.append(("fit", recorder.rows(X)))
            return real_fit(pipe, X, y, **kw)

        def tune(classifier, pipeline, X, y, **kw):
            recorder.events.append(("tune", recorder.rows(X)))
            return real_tune(classifier, pipeline, X, y, **kw)

        monkeypatch.setattr(Pipeline, "fit", fit)
        monkeypatch.setattr(tuning, "tune", tune)

    def rows(self, X) -> frozenset:
        return frozenset(self.index[np.asarray(row, dtype=np.float64).tobytes()] for row in np.asarray(X))

    def searches(self) -> list[tuple[frozenset, list[frozenset]]]:
        """Each search's rows with the rows of the Pipeline fits it made."""
        out: list = []
        for kind, rows in self.events:
            if kind == "tune":
                out.append((rows, []))
            else:
                assert out, "a Pipeline fit outside any search"
                out[-1][1].append(rows)
        return out

    @property
    def fitted_rows(self) -> frozenset:
        return frozenset().union(*(rows for kind, rows in self.events if kind == "fit"))


# --------------------------------------------------------------------------------------------------
# search spaces and the record
# --------------------------------------------------------------------------------------------------


def test_search_spaces_hold_the_default_parameters():
    xgb = tuning.search_space("xgb")
    assert set(xgb) == {"n_estimators", "learning_rate", "max_depth", "min_child_weight", "subsample",
                        "colsample_bytree", "reg_lambda"}
    for name, values in xgb.items():
        assert XGB_PARAMS[name] in values, name
    svc = build_pipeline("svm").named_steps["clf"].estimator
    assert svc.C in tuning.search_space("svm")["C"] and svc.gamma in tuning.search_space("svm")["gamma"]
    assert build_pipeline("logreg").named_steps["clf"].C in tuning.search_space("logreg")["C"]
    blend = build_pipeline("blend").named_steps["clf"].get_params()
    for name, values in tuning.search_space("blend").items():
        assert blend[name] in values, name
    hybrid = build_pipeline("hybrid", feature_names=["a__x", "cnn__0000"]).named_steps["clf"].get_params()
    for name, values in tuning.search_space("hybrid").items():
        assert hybrid[name] in values, name


@pytest.mark.parametrize("classifier", CLASSIFIERS)
def test_the_final_model_carries_the_chosen_parameters(classifier):
    X, y = _data(n_per_class=16)
    names = ["a__0"] + [f"cnn__{i}" for i in range(X.shape[1] - 1)]  # for hybrid: one handcrafted column, the rest cnn
    r = train_classifier(X, y, classifier=classifier, n_splits=2, tune=True, tune_iter=2, tune_folds=2, feature_names=names)
    space = tuning.search_space(classifier)
    chosen = r.tuning["best_params"]
    assert set(chosen) == set(space)
    for name, value in chosen.items():
        assert value in space[name], name
    clf = r.pipeline.named_steps["clf"]
    fitted = (clf.estimator if classifier == "svm" else clf).get_params()
    assert {k: fitted[k] for k in chosen} == chosen
    assert r.pipeline.predict_proba(X).shape == (len(y), 2)  # fitted


def test_tuning_records_every_search():
    X, y = _data()
    progress = []
    r = train_classifier(X, y, classifier="logreg", n_splits=3, tune=True, tune_iter=4, tune_folds=2,
                         progress=lambda d, t: progress.append((d, t)))
    t = r.tuning
    assert (t["search"], t["scoring"], t["n_iter"], t["inner_folds"], t["outer_folds"]) == ("RandomizedSearchCV", "roc_auc", 4, 2, 3)
    assert t["search_space"] == tuning.search_space("logreg")
    assert len(t["folds"]) == 3
    for fold in t["folds"]:
        assert fold["params"]["C"] in t["search_space"]["C"]
        assert 0.0 <= fold["inner_auc"] <= 1.0 and fold["inner_folds"] == 2
    assert t["n_fits"] == 4 * (4 * 2 + 1)  # 3 outer folds + the final search, each 4 candidates x 2 folds + refit
    assert progress == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]  # one step per outer fold, one for the final search
    assert "C=" in tuning.describe(t) and "3 outer folds" in tuning.describe(t)


def test_tuning_is_reproducible():
    X, y = _data(seed=3)
    a = train_classifier(X, y, classifier="logreg", n_splits=3, tune=True, tune_iter=3, random_state=5)
    b = train_classifier(X, y, classifier="logreg", n_splits=3, tune=True, tune_iter=3, random_state=5)
    np.testing.assert_array_equal(a.oof_scores, b.oof_scores)
    assert a.tuning == b.tuning and a.threshold == b.threshold


def test_small_spaces_are_searched_whole_not_more():
    assert tuning.n_candidates("logreg", 100) == len(tuning.SEARCH_SPACES["logreg"]["C"])
    assert tuning.n_candidates("xgb", 12) == 12


# --------------------------------------------------------------------------------------------------
# nested cross-validation: what each search sees
# --------------------------------------------------------------------------------------------------


def test_the_inner_search_never_sees_the_outer_test_rows(monkeypatch):
    X, y = _data(n_per_class=15)
    rec = _Recorder(monkeypatch, X)
    r = train_classifier(X, y, classifier="logreg", n_splits=3, tune=True, tune_iter=2, tune_folds=2)
    searches = rec.searches()
    everything = frozenset(range(len(y)))
    assert len(searches) == 4  # one per outer fold, then the final one
    assert searches[-1][0] == everything
    tests = [everything - rows for rows, _ in searches[:-1]]
    assert sorted(i for t in tests for i in t) == list(range(len(y)))  # the outer test parts partition the data
    for (rows, fits), test in zip(searches[:-1], tests):
        assert len(fits) == 2 * 2 + 1  # 2 candidates x 2 inner folds + the refit
        for seen in fits:
            assert seen <= rows and not seen & test
    assert np.isfinite(r.oof_scores).all()


def test_inner_folds_keep_the_frames_of_a_video_together(monkeypatch):
    X, y, groups = _videos()
    rec = _Recorder(monkeypatch, X)
    train_classifier(X, y, classifier="logreg", n_splits=2, tune=True, tune_iter=2, tune_folds=3, groups=groups)
    n_inner = 0
    for rows, fits in rec.searches():
        for seen in fits:
            held = rows - seen
            if held:  # an inner fit: its validation part is the rest of the search's rows
                n_inner += 1
                assert not set(groups[list(seen)]) & set(groups[list(held)])
    assert n_inner == 3 * 2 * 3  # 3 searches x 2 candidates x 3 inner folds
    for rows, _ in rec.searches()[:-1]:  # the outer folds are grouped too
        rest = frozenset(range(len(y))) - rows
        assert not set(groups[list(rows)]) & set(groups[list(rest)])


def test_too_few_images_to_tune_is_a_usage_error():
    X, y = _data(n_per_class=10)
    keep = np.r_[np.arange(10), 10, 11]  # 2 fakes: an outer training part holds 1, no inner folds possible
    with pytest.raises(UsageError, match="too few images of one class to tune"):
        train_classifier(X[keep], y[keep], classifier="logreg", n_splits=2, tune=True)


@pytest.mark.parametrize("kw, message", [({"tune_iter": 0}, "--tune-iter must be at least 1"),
                                         ({"tune_folds": 1}, "--tune-folds must be at least 2")])
def test_bad_tuning_options(kw, message):
    X, y = _data(n_per_class=10)
    with pytest.raises(UsageError, match=message):
        train_classifier(X, y, classifier="logreg", tune=True, **kw)


def test_tune_with_a_warm_start_is_refused():
    X, y = _data(n_per_class=10)
    with pytest.raises(UsageError, match="--tune cannot be combined with --warm-start"):
        train_classifier(X, y, classifier="xgb", tune=True, init_model=build_pipeline("xgb"))


# --------------------------------------------------------------------------------------------------
# held-out test split
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tune", [False, True])
def test_holdout_rows_are_never_fitted_on_and_scored_once(monkeypatch, tune):
    X, y = _data(n_per_class=20)
    rec = _Recorder(monkeypatch, X)
    r = train_classifier(X, y, classifier="logreg", n_splits=3, holdout=0.25, tune=tune, tune_iter=2, tune_folds=2)
    held = r.holdout_index
    assert len(held) == 10 and (y[held] == 0).sum() == 5  # 25 % of each class
    assert sorted(np.r_[r.train_index, held]) == list(range(len(y)))
    assert rec.fitted_rows == frozenset(r.train_index)  # every training row was fitted on, no held-out one
    assert len(r.oof_scores) == len(r.raw_oof_scores) == len(r.train_index) == r.cv_metrics["n"]
    # the final model, calibrated, at the chosen threshold, with the same metrics function as CV
    scores = apply_calibrator(r.calibrator, r.pipeline.predict_proba(X[held])[:, 1])
    assert r.holdout_metrics == detection_metrics(y[held], scores, r.threshold)


def test_no_holdout_by_default():
    X, y = _data(n_per_class=10)
    r = train_classifier(X, y, classifier="logreg", n_splits=2)
    assert r.holdout_metrics is None and len(r.holdout_index) == 0 and r.tuning is None
    assert len(r.train_index) == len(y)


def test_holdout_split_is_stratified_grouped_and_seeded():
    X, y, groups = _videos(n_per_class=10)
    tr, te = holdout_split(y, 0.2, groups=groups, random_state=1)
    assert not set(groups[tr]) & set(groups[te])
    assert len(set(groups[te][y[te] == 0])) == len(set(groups[te][y[te] == 1])) == 2  # 20 % of each class's videos
    again = holdout_split(y, 0.2, groups=groups, random_state=1)
    other = holdout_split(y, 0.2, groups=groups, random_state=2)
    np.testing.assert_array_equal(te, again[1])
    assert set(te) != set(other[1])


@pytest.mark.parametrize("counts, fraction, message", [
    ({0: 3, 1: 10}, 0.5, r"--holdout 0.5 leaves 1 of the 3 real images for training \(at least 2 needed\)"),
    ({0: 10, 1: 2}, 0.1, r"--holdout 0.1 leaves 1 of the 2 fake images"),
    ({0: 10, 1: 10}, 1.0, r"--holdout must be in \[0, 1\)"),
    ({0: 10, 1: 10}, -0.1, r"--holdout must be in \[0, 1\)"),
])
def test_holdout_that_leaves_too_little_is_a_usage_error(counts, fraction, message):
    with pytest.raises(UsageError, match=message):
        check_holdout(counts, fraction)


def test_holdout_check_passes_when_enough_is_left():
    check_holdout({0: 3, 1: 3}, 0.2)  # 1 of each held out, 2 left
    check_holdout({0: 1, 1: 1}, 0.0)  # off
