"""Model files: save/load round trip, the model card, and refusal of anything that is not ours."""

from __future__ import annotations

import copy
import datetime as dt
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

import forensics
import forensics.model as model_mod
from forensics import api
from forensics.demo import make_demo_dataset
from forensics.errors import ModelFileError
from forensics.extraction import FeatureSpec, extract_features
from forensics.features.base import feature_names
from forensics.model import MODEL_FORMAT_VERSION, ForensicModel


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("demo")
    make_demo_dataset(root, n_per_class=12, size=64, seed=5)
    return root


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> ForensicModel:
    cache = tmp_path_factory.mktemp("cache")
    model, summary = api.train([dataset], blocks="color", n_splits=3, cache_dir=cache)
    assert summary.n_rows == 24 and summary.n_failed == 0
    return model


@pytest.fixture(scope="module")
def features(dataset) -> np.ndarray:
    paths = sorted(str(p) for p in dataset.rglob("*.jpg"))
    frame = extract_features(paths, "color")
    return frame[feature_names("color")].to_numpy()


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.skops"
    trained.save(path)
    return path


def _refused(path: Path, pattern: str) -> str:
    with pytest.raises(ModelFileError, match=pattern) as info:
        ForensicModel.load(path)
    msg = str(info.value)
    assert "\n" not in msg, msg
    assert "Traceback" not in msg
    return msg


def _save_altered(model: ForensicModel, path: Path, **changes) -> Path:
    """Save a deep copy of ``model`` after altering its spec or card."""
    m = copy.deepcopy(model)
    for key, value in changes.items():
        target, attr = key.split("__", 1)
        obj = m.spec if target == "spec" else m.card
        if isinstance(obj, dict):
            obj[attr] = value
        else:
            setattr(obj, attr, value)
    m.save(path)
    return path


# --------------------------------------------------------------------------------------------------
# round trip
# --------------------------------------------------------------------------------------------------


def test_save_load_gives_identical_probabilities(trained, saved, features):
    loaded = ForensicModel.load(saved)
    before = trained.predict_proba(features)
    after = loaded.predict_proba(features)
    np.testing.assert_array_equal(before, after)
    assert ((after >= 0) & (after <= 1)).all()
    assert loaded.threshold == trained.threshold
    assert loaded.spec == trained.spec
    assert loaded.label(after) == trained.label(before)
    assert loaded.card == trained.card


def test_saved_file_is_a_skops_zip_and_no_temporary_is_left(saved):
    assert zipfile.is_zipfile(saved)
    assert sorted(p.name for p in saved.parent.iterdir()) == ["m.skops"]


def test_predict_proba_gives_nan_for_rows_without_features(trained, features):
    X = features[:3].copy()
    X[1] = np.nan
    p = trained.predict_proba(X)
    assert np.isfinite(p[[0, 2]]).all() and np.isnan(p[1])
    assert trained.label(p)[1] is None
    assert trained.predict_proba(np.empty((0, features.shape[1]))).shape == (0,)


def test_model_card(trained, saved):
    card = ForensicModel.load(saved).card
    assert card["forensics_version"] == forensics.__version__
    assert card["classifier"] == "xgb"
    assert card["blocks"] == ["color"]
    assert card["block_settings"] == {"color": {"hue_bins": 12, "sat_bins": 8, "max_size": 512}}
    assert card["feature_names"] == feature_names("color")
    assert card["n_features"] == len(feature_names("color"))
    t = card["training_data"]
    assert (t["n_real"], t["n_fake"], t["n_failed"], t["cv_folds"]) == (12, 12, 0, 3)
    assert list(t["data"].values()) == [{"real": 12, "fake": 12, "failed": 0}]
    m = card["cv_metrics"]
    assert {"auc", "ap", "balanced_accuracy", "eer", "acc_real", "acc_fake"} <= set(m)
    assert 0.0 <= m["auc"] <= 1.0
    assert m["n"] == 24
    assert card["threshold"] == trained.threshold
    assert 0.0 <= card["threshold"] <= 1.0
    assert card["threshold_rule"]
    created = dt.datetime.fromisoformat(card["created"])
    assert created.tzinfo is not None
    assert abs(dt.datetime.now(dt.timezone.utc) - created) < dt.timedelta(hours=1)
    assert {"scikit-learn", "xgboost", "numpy"} <= set(card["versions"])


def test_card_records_failed_images_and_settings(dataset, tmp_path):
    # a broken file among the training images: left out of training, counted in the card
    data = tmp_path / "data"
    for sub in ("real", "fake"):
        (data / sub).mkdir(parents=True)
        for p in sorted((dataset / sub).glob("*.jpg"))[:6]:
            (data / sub / p.name).write_bytes(p.read_bytes())
    (data / "fake" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    model, summary = api.train([data], blocks="color", settings={"color": {"hue_bins": 6}}, classifier="logreg",
                               n_splits=3, cache_dir=None)
    assert summary.n_rows == 13 and summary.n_failed == 1
    assert sum(summary.errors.values()) == 1
    t = model.card["training_data"]
    assert (t["n_real"], t["n_fake"], t["n_failed"]) == (6, 6, 1)
    assert model.card["block_settings"]["color"]["hue_bins"] == 6
    assert model.card["feature_names"] == FeatureSpec.create("color", {"color": {"hue_bins": 6}}).feature_names()
    path = tmp_path / "m.skops"
    model.save(path)
    assert ForensicModel.load(path).spec.settings == {"color": {"hue_bins": 6, "sat_bins": 8, "max_size": 512}}


@pytest.mark.parametrize("classifier", ["svm", "logreg", "blend"])
def test_other_classifiers_round_trip(dataset, features, tmp_path, classifier):
    model, _ = api.train([dataset], blocks="color", classifier=classifier, n_splits=3, cache_dir=None)
    path = tmp_path / f"{classifier}.skops"
    model.save(path)
    loaded = ForensicModel.load(path)
    np.testing.assert_array_equal(model.predict_proba(features), loaded.predict_proba(features))
    assert loaded.card["classifier"] == classifier


def test_hybrid_round_trips(trained, dataset, features, tmp_path):
    """``hybrid`` needs the cnn block to be trained by ``api.train``; its model file holds the fitted
    HybridClassifier, whatever the columns it splits, so a copy of the colour model with one does."""
    import dataclasses

    from sklearn.base import clone

    from forensics.pipelines import build_pipeline

    y = np.array([int(p.parent.name == "fake") for p in sorted(dataset.rglob("*.jpg"))])
    names = [n.replace("color__", "cnn__", 1) if i % 2 else n for i, n in enumerate(trained.feature_names)]
    pipe = clone(build_pipeline("hybrid", feature_names=names)).fit(features, y)
    model = dataclasses.replace(trained, pipeline=pipe, card={**trained.card, "classifier": "hybrid"})
    path = tmp_path / "hybrid.skops"
    model.save(path)
    loaded = ForensicModel.load(path)
    assert type(loaded.pipeline[-1]).__name__ == "HybridClassifier"
    np.testing.assert_array_equal(loaded.pipeline[-1].linear_columns_, np.arange(1, len(names), 2))
    np.testing.assert_array_equal(model.predict_proba(features), loaded.predict_proba(features))
    assert loaded.card["classifier"] == "hybrid"


# --------------------------------------------------------------------------------------------------
# refusals
# --------------------------------------------------------------------------------------------------


class _Payload:
    """Pickles to a call of os.system: what a malicious "model" would do."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch '{self.target}'",))


class NotTrusted:
    """A harmless class that skops must not be asked to build."""

    def __init__(self):
        self.value = 1


def test_pickle_renamed_skops_is_refused_without_running_it(tmp_path):
    flag = tmp_path / "SOMEFILE"
    path = tmp_path / "evil.skops"
    path.write_bytes(pickle.dumps(_Payload(flag)))
    _refused(path, "not a forensics model file")
    assert not flag.exists()


def test_pickle_inside_a_zip_is_refused_without_running_it(tmp_path):
    flag = tmp_path / "SOMEFILE"
    path = tmp_path / "evil.skops"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("schema.json", '{"__class__": "dict", "__module__": "builtins", "__loader__": "DictNode", "content": {}}')
        zf.writestr("payload.pkl", pickle.dumps(_Payload(flag)))
    with pytest.raises(ModelFileError) as info:
        ForensicModel.load(path)
    assert "\n" not in str(info.value)
    assert not flag.exists()


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "random.skops"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _refused(path, "not a forensics model file")


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.skops"
    path.write_bytes(b"")
    _refused(path, "not a forensics model file")


def test_missing_file_and_folder_are_refused(tmp_path):
    _refused(tmp_path / "nope.skops", "model file not found")
    _refused(tmp_path, "model file not found")


def test_plain_sklearn_skops_file_is_refused(tmp_path):
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression().fit(np.random.default_rng(0).normal(size=(10, 2)), [0, 1] * 5)
    path = tmp_path / "lr.skops"
    sio.dump(lr, path)
    _refused(path, "skops file but not a forensics model")


def test_skops_dict_that_is_not_ours_is_refused(tmp_path):
    path = tmp_path / "dict.skops"
    sio.dump({"format": "something-else", "format_version": 1}, path)
    _refused(path, "not a forensics model")


def test_untrusted_type_is_refused_before_anything_is_built(tmp_path, monkeypatch):
    path = tmp_path / "untrusted.skops"
    sio.dump({"format": "forensics-model", "payload": NotTrusted()}, path)

    def no_load(*a, **k):
        raise AssertionError("skops.io.load must not be called for a file with untrusted types")

    monkeypatch.setattr(sio, "load", no_load)
    msg = _refused(path, "does not trust")
    assert "NotTrusted" in msg


def test_unknown_block_is_refused(trained, tmp_path):
    spec = copy.deepcopy(trained.spec)
    path = _save_altered(trained, tmp_path / "m.skops", spec__blocks=spec.blocks + ["nonexistent"])
    msg = _refused(path, "nonexistent")
    assert "does not provide" in msg


def test_unknown_block_setting_is_refused(trained, tmp_path):
    settings = copy.deepcopy(trained.spec.settings)
    settings["color"]["knob_from_the_future"] = 3
    path = _save_altered(trained, tmp_path / "m.skops", spec__settings=settings)
    _refused(path, "cannot be used here.*knob_from_the_future")


def test_newer_format_version_is_refused(trained, tmp_path, monkeypatch):
    path = tmp_path / "future.skops"
    monkeypatch.setattr(model_mod, "MODEL_FORMAT_VERSION", MODEL_FORMAT_VERSION + 1)
    trained.save(path)
    monkeypatch.setattr(model_mod, "MODEL_FORMAT_VERSION", MODEL_FORMAT_VERSION)
    msg = _refused(path, "newer forensics")
    assert f"model format {MODEL_FORMAT_VERSION + 1}" in msg
    assert forensics.__version__ in msg


def test_different_feature_names_are_refused(trained, tmp_path):
    names = list(trained.card["feature_names"])
    names[0] = "color__renamed_feature"
    path = _save_altered(trained, tmp_path / "m.skops", card__feature_names=names)
    _refused(path, "feature names differ.*retrain")


def test_fewer_feature_names_are_refused(trained, tmp_path):
    path = _save_altered(trained, tmp_path / "m.skops", card__feature_names=trained.card["feature_names"][:-1])
    _refused(path, "feature names differ")


def test_altered_copies_do_not_touch_the_original(trained, saved, features):
    # guard for the helpers above: the module-scoped model is unchanged
    assert trained.spec.blocks == ["color"]
    assert trained.card["feature_names"] == feature_names("color")
    np.testing.assert_array_equal(ForensicModel.load(saved).predict_proba(features), trained.predict_proba(features))
