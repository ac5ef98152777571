"""Training on perturbed copies (``forensics train --augment``): the rows, their CV groups, the card."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from forensics import api
from forensics.demo import make_demo_dataset
from forensics.errors import UsageError
from forensics.extraction import FeatureSpec
from forensics.model import ForensicModel
from forensics.perturbations import parse_perturbations
from forensics.pipelines.evaluate import image_conditions
from cli_utils import flat, run

BLOCKS = "color,spectrum"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("augdata")
    make_demo_dataset(root, n_per_class=10, size=64, seed=2)
    return root


def _paths(data: Path) -> list[str]:
    return sorted(str(p) for p in data.rglob("*") if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def test_augmented_rows_are_the_features_of_the_perturbed_images(data, tmp_path):
    spec = FeatureSpec.create(BLOCKS)
    perts = parse_perturbations("jpeg:60,resize:0.5")
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    paths = _paths(data)[:3] + [str(bad)] + _paths(data)[3:4]
    X, of, info = api.augmented_rows(paths, spec, perts)
    assert list(of) == [0, 0, 1, 1, 2, 2, 4, 4]  # image-major; the unreadable image gives no copy
    for k, i in enumerate([0, 1, 2, 4]):
        feats, errs = image_conditions(paths[i], spec, perts)  # clean row first, then the copies
        np.testing.assert_array_equal(X[2 * k : 2 * k + 2], feats[1:])
        assert not np.allclose(feats[1], feats[0]) and not np.allclose(feats[2], feats[0])
    assert info["perturbations"] == ["jpeg:60", "resize:0.5"]
    assert info["per_perturbation"] == {"jpeg:60": 4, "resize:0.5": 4} and info["n_left_out"] == 2
    assert sum(info["errors"].values()) == 2 and all(k.startswith(("jpeg:60: ", "resize:0.5: ")) for k in info["errors"])
    X2, of2, info2 = api.augmented_rows(paths, spec, perts, jobs=2)  # worker processes: same rows
    np.testing.assert_array_equal(X, X2)
    assert list(of2) == list(of) and info2 == info


def test_train_keeps_an_image_and_its_copies_in_one_group(data, monkeypatch):
    seen = {}
    real_train = api.train_classifier

    def spy(X, y, **kw):
        seen.update(X=X, y=y, groups=kw["groups"], weights=kw["sample_weight"])
        return real_train(X, y, **kw)

    monkeypatch.setattr(api, "train_classifier", spy)
    model, _ = api.train([data], blocks=BLOCKS, n_splits=3, cache_dir=None, augment="jpeg:75,blur:1.0")
    n = len(_paths(data))
    assert len(seen["y"]) == 3 * n
    counts = Counter(seen["groups"])
    assert len(counts) == n and set(counts.values()) == {3}
    for g in counts:  # one label per group
        assert len(set(seen["y"][seen["groups"] == g])) == 1
    np.testing.assert_allclose(seen["weights"], seen["weights"][0])  # 10 real, 10 fake: a copy weighs as its image
    t = model.card["training_data"]
    assert t["n_real"] + t["n_fake"] == 3 * n
    assert t["augment"]["perturbations"] == ["jpeg:75", "blur:1.0"] and t["augment"]["n_rows"] == 2 * n
    assert "StratifiedGroupKFold" in t["augment"]["cv"]

    monkeypatch.setattr(api, "train_classifier", real_train)
    plain, _ = api.train([data], blocks=BLOCKS, n_splits=3, cache_dir=None)
    assert "augment" not in plain.card["training_data"]
    # class means and the shortcut audit describe the images, not their copies
    assert model.card["class_means"] == plain.card["class_means"]
    assert model.card["shortcut_audit"] == plain.card["shortcut_audit"]
    assert model.card["spectrum_means"] == plain.card["spectrum_means"]
    assert len(model.card["oof"]["scores"]) == 3 * n


def test_holdout_takes_an_image_with_its_copies(data):
    model, _ = api.train([data], blocks=BLOCKS, n_splits=3, cache_dir=None, augment="resize:0.5", holdout=0.2)
    t, held = model.card["training_data"], model.card["holdout_metrics"]
    assert held["n_real"] == held["n_fake"] == 2 * 2  # 2 of 10 images per class, each with its copy
    assert t["n_real"] == t["n_fake"] == 2 * 8 and t["augment"]["n_rows"] == 16
    assert "perturbed copies" in t["holdout"]["split"]


def test_augment_refusals():
    with pytest.raises(UsageError, match="unknown perturbation"):
        api._augmentations("jpeg75")
    with pytest.raises(UsageError, match="takes perturbations"):
        api._augmentations(["jpeg:75"])
    assert api._augmentations("none") == [] and api._augmentations(None) == []


def test_cli_train_augment(data, tmp_path):
    res = run("train", data, "--model", tmp_path / "m.skops", "--blocks", BLOCKS, "--folds", "3", "--no-cache",
              "--augment", "jpeg:75")
    n = len(_paths(data))
    assert f"augment: {n} perturbed copies (jpeg:75)" in flat(res.stdout)
    assert ForensicModel.load(tmp_path / "m.skops").card["training_data"]["augment"]["n_rows"] == n
    run("report", tmp_path / "m.skops", "--out", tmp_path / "r.html")
    assert f"{n} perturbed copies (jpeg:75)" in (tmp_path / "r.html").read_text()
    # a bad spec is a usage error before any feature is computed
    res = run("train", data, "--model", tmp_path / "x.skops", "--blocks", BLOCKS, "--no-cache", "--augment", "jpg:75", ok=False)
    assert res.exit_code == 2 and "unknown perturbation 'jpg:75'" in flat(res.stderr)
    assert not (tmp_path / "x.skops").exists()


def test_copies_are_cached_and_a_second_training_computes_none(data, tmp_path, monkeypatch):
    from forensics.cache import FeatureCache
    from forensics.pipelines import evaluate as ev

    seen = []
    real_train = api.train_classifier
    monkeypatch.setattr(api, "train_classifier", lambda X, y, **kw: (seen.append(X), real_train(X, y, **kw))[1])
    first, _ = api.train([data], blocks=BLOCKS, n_splits=3, cache_dir=tmp_path, augment="jpeg:70")
    n = len(_paths(data))
    assert len(FeatureCache(tmp_path)) == n * (2 * len(BLOCKS.split(",")) + 1)  # clean and copy per block, diag
    monkeypatch.setattr(ev, "features_for_array", lambda *a, **k: pytest.fail("a cached copy was computed again"))
    second, _ = api.train([data], blocks=BLOCKS, n_splits=3, cache_dir=tmp_path, augment="jpeg:70")
    np.testing.assert_array_equal(seen[0], seen[1])
    assert second.card["training_data"]["augment"] == first.card["training_data"]["augment"]
