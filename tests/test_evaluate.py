"""``forensics evaluate``: metrics on clean images and on perturbed copies made in memory."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from forensics import api
from forensics.cli import app
from forensics.demo import make_demo_dataset
from forensics.errors import UsageError
from forensics.loading import load_image_bytes
from forensics.perturbations import (
    DEFAULT_PERTURBATIONS,
    center_crop_fraction,
    gaussian_blur,
    gaussian_noise,
    jpeg_recompress,
    parse_perturbations,
    resize,
)
from forensics.pipelines.evaluate import CLEAN, evaluate
from forensics.pipelines.metrics import detection_metrics
from io_utils import counting_reads, forbid_decoding

runner = CliRunner()
METRIC_KEYS = {"auc", "auc_ci_low", "auc_ci_high", "ap", "balanced_accuracy", "acc_real", "acc_fake", "eer", "tpr_at_fpr_1", "tpr_at_fpr_5", "brier", "n", "n_failed"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval-data")
    make_demo_dataset(root, n_per_class=12, size=64, seed=31)
    return root


@pytest.fixture(scope="module")
def model_path(data, tmp_path_factory) -> Path:
    model, _ = api.train([data], blocks="color,spectrum", classifier="logreg", n_splits=3, cache_dir=None)
    path = tmp_path_factory.mktemp("eval-model") / "m.skops"
    model.save(path)
    return path


def _rgb(seed=0, h=48, w=40):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------------------------------
# perturbations
# --------------------------------------------------------------------------------------------------


def test_parse_default_perturbations():
    ps = parse_perturbations(DEFAULT_PERTURBATIONS)
    assert [p.name for p in ps] == ["jpeg:95", "jpeg:75", "jpeg:50", "resize:0.5", "blur:1.0", "crop:0.8"]
    assert [p.kind for p in ps] == ["jpeg", "jpeg", "jpeg", "resize", "blur", "crop"]
    assert parse_perturbations("none") == [] and parse_perturbations("") == []
    assert [p.name for p in parse_perturbations(" jpeg:75 , jpeg:75,noise:2")] == ["jpeg:75", "noise:2"]


@pytest.mark.parametrize(
    "text, match",
    [
        ("sharpen:2", "unknown perturbation 'sharpen:2'"),
        ("jpeg", "unknown perturbation 'jpeg'"),
        ("jpeg:101", "quality must be in 1..100"),
        ("jpeg:7.5", "quality must be an integer"),
        ("resize:abc", "factor must be a number"),
        ("crop:0", "fraction must be in"),
        ("blur:-1", "sigma must be in"),
    ],
)
def test_bad_perturbations_are_usage_errors(text, match):
    with pytest.raises(UsageError, match=match):
        parse_perturbations(text)


def test_perturbation_functions():
    rgb = _rgb()
    decoded = load_image_bytes(jpeg_recompress(rgb, quality=50))
    assert decoded.format == "JPEG" and decoded.rgb.shape == rgb.shape
    assert abs(decoded.jpeg_quality - 50) <= 2
    assert resize(rgb, factor=0.5).shape == (24, 20, 3)
    assert center_crop_fraction(rgb, fraction=0.5).shape == (24, 20, 3)
    np.testing.assert_array_equal(center_crop_fraction(rgb, fraction=0.5), rgb[12:36, 10:30])
    assert gaussian_blur(rgb, sigma=1.0).astype(float).std() < rgb.astype(float).std()
    np.testing.assert_array_equal(gaussian_noise(rgb, sigma=3), gaussian_noise(rgb, sigma=3))  # seeded by content
    assert not np.array_equal(gaussian_noise(rgb, sigma=3), rgb)


# --------------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------------


def test_evaluate_cli_writes_every_condition_and_prints_the_grid(data, model_path, tmp_path):
    out = tmp_path / "metrics.json"
    r = runner.invoke(app, ["evaluate", str(model_path), str(data), "--perturb", "jpeg:75,resize:0.5,crop:0.8", "--out", str(out)])
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    result = json.loads(out.read_text())
    assert list(result) == ["clean", "jpeg:75", "resize:0.5", "crop:0.8"]
    for name, m in result.items():
        assert METRIC_KEYS <= set(m), name
        assert m["n"] == 24 and m["n_failed"] == 0
        assert 0.0 <= m["auc"] <= 1.0 and 0.0 <= m["brier"] <= 1.0
    # the grid: one column per condition, one row per metric
    lines = r.stdout.splitlines()
    header = next(line for line in lines if line.startswith("metric"))
    assert header.split() == ["metric", *result]
    auc_row = next(line for line in lines if line.startswith("AUC "))
    assert auc_row.split()[1:] == [f"{m['auc']:.3f}" for m in result.values()]
    for label, key in (("AUC 95% low", "auc_ci_low"), ("AUC 95% high", "auc_ci_high")):
        row = next(line for line in lines if line.startswith(label))
        assert row.split()[3:] == [f"{m[key]:.3f}" for m in result.values()]
        assert all(m["auc_ci_low"] <= m["auc"] <= m["auc_ci_high"] for m in result.values())
    for label in ("images", "AP", "bal. acc", "acc real", "acc fake", "EER", "TPR@1%FPR", "TPR@5%FPR", "Brier"):
        assert any(line.startswith(label + " ") for line in lines), label


def test_clean_condition_matches_score(data, model_path):
    from forensics.model import ForensicModel

    model = ForensicModel.load(model_path)
    result, errors = evaluate(model, [data], parse_perturbations("jpeg:90"))
    frame = api.score_frame(model, [data], cache_dir=None)
    y = [1 if Path(p).parent.name == "fake" else 0 for p in frame["path"]]
    expected = detection_metrics(y, frame["prob_fake"], model.threshold)
    for k in ("auc", "ap", "balanced_accuracy", "brier"):
        assert result[CLEAN][k] == pytest.approx(expected[k], abs=1e-9), k
    assert not errors
    assert result["jpeg:90"]["brier"] != result[CLEAN]["brier"]  # the perturbation changed the features


def test_evaluate_in_parallel_gives_the_same_numbers(data, model_path):
    from forensics.model import ForensicModel

    model = ForensicModel.load(model_path)
    ps = parse_perturbations("blur:1.0")
    one, _ = evaluate(model, [data], ps, jobs=1)
    two, _ = evaluate(model, [data], ps, jobs=2)
    assert one == two


def test_unreadable_images_are_counted_not_fatal(data, model_path, tmp_path):
    from forensics.model import ForensicModel

    d = tmp_path / "d"
    for sub in ("real", "fake"):
        (d / sub).mkdir(parents=True)
        for p in sorted((data / sub).glob("*.jpg"))[:5]:
            (d / sub / p.name).write_bytes(p.read_bytes())
    (d / "real" / "broken.jpg").write_bytes(b"not an image")
    model, ps = ForensicModel.load(model_path), parse_perturbations("jpeg:75")
    result, errors = evaluate(model, [d], ps)
    assert result["clean"]["n"] == 10 and result["clean"]["n_failed"] == 1
    assert result["jpeg:75"]["n_failed"] == 1
    assert sum(errors.values()) == 1  # one message for the file, not one per condition
    for _ in range(2):  # with the feature cache, filled then read: the same
        assert evaluate(model, [d], ps, cache_dir=tmp_path / "c") == (result, errors)


def test_unknown_perturbation_is_a_one_line_usage_error(data, model_path):
    r = runner.invoke(app, ["evaluate", str(model_path), str(data), "--perturb", "jpeg:75,sharpen:1"])
    assert r.exit_code == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(" ".join(lines).split("error:")) == 2
    assert "unknown perturbation 'sharpen:1'" in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr


def test_nan_metrics_become_json_null(data, model_path, tmp_path):
    # one class only: AUC is undefined, written as null (strict JSON), not NaN
    d = tmp_path / "d"
    (d / "real").mkdir(parents=True)
    (d / "fake").mkdir(parents=True)
    for p in sorted((data / "real").glob("*.jpg"))[:4]:
        (d / "real" / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["evaluate", str(model_path), str(d), "--perturb", "none", "--out", str(out)])
    assert r.exit_code == 0, r.stderr
    text = out.read_text()
    assert "NaN" not in text
    result = json.loads(text)
    assert list(result) == ["clean"] and result["clean"]["auc"] is None
    assert not math.isnan(result["clean"]["acc_real"])


# --------------------------------------------------------------------------------------------------
# the feature cache: clean images and perturbed copies
# --------------------------------------------------------------------------------------------------


def _count_computations(monkeypatch) -> list:
    """Record every block computation in this process (image name per call)."""
    from forensics.pipelines import evaluate as ev

    calls: list = []
    real = ev.features_for_array

    def counting(image, spec, *, name="<array>", **kw):
        row = real(image, spec, name=name, **kw)
        calls.extend([name] * row.n_computed)
        return row

    monkeypatch.setattr(ev, "features_for_array", counting)
    return calls


def test_perturbation_cache_tags_are_canonical():
    a, b, c = parse_perturbations("jpeg:75,resize:0.50,blur:1")
    assert a.cache_tag == parse_perturbations("JPEG:75.0")[0].cache_tag
    assert b.cache_tag == parse_perturbations("resize:.5")[0].cache_tag
    assert len({a.cache_tag, b.cache_tag, c.cache_tag, parse_perturbations("jpeg:76")[0].cache_tag}) == 4
    assert all(":" not in p.cache_tag for p in (a, b, c))


def test_evaluate_reads_and_writes_the_cache(data, model_path, tmp_path, monkeypatch):
    from forensics.cache import FeatureCache
    from forensics.model import ForensicModel

    model = ForensicModel.load(model_path)
    n_blocks, n_images = len(model.spec.blocks), 24
    ps = parse_perturbations("jpeg:75,crop:0.8")
    plain, _ = evaluate(model, [data], ps)  # no cache
    calls = _count_computations(monkeypatch)
    first, _ = evaluate(model, [data], ps, cache_dir=tmp_path)
    assert len(calls) == n_images * 3 * n_blocks and first == plain
    assert len(FeatureCache(tmp_path)) == n_images * (3 * n_blocks + 1)  # + each file's diag record
    calls.clear()
    second, errors = evaluate(model, [data], ps, cache_dir=tmp_path)
    assert calls == [] and second == plain and not errors  # nothing computed twice
    # a new perturbation computes only its own copies; the same one written differently computes nothing
    more, _ = evaluate(model, [data], parse_perturbations("JPEG:75.0,blur:1.0"), cache_dir=tmp_path)
    assert len(calls) == n_images * n_blocks and all("[blur:1.0]" in c for c in calls)
    assert more["JPEG:75.0"] == first["jpeg:75"]


def test_evaluate_shares_the_clean_features_with_extract_and_workers_write(data, model_path, tmp_path, monkeypatch):
    from forensics.extraction import iter_features
    from forensics.model import ForensicModel

    model = ForensicModel.load(model_path)
    paths = sorted(str(p) for p in data.rglob("*.jpg"))
    list(iter_features(paths, model.spec, cache_dir=tmp_path))  # what extract, train and score cache
    calls = _count_computations(monkeypatch)
    ps = parse_perturbations("resize:0.5")
    one, _ = evaluate(model, [data], ps, cache_dir=tmp_path)
    assert len(calls) == len(paths) * len(model.spec.blocks) and all("[resize:0.5]" in c for c in calls)
    ps = parse_perturbations("resize:0.5,blur:1.0")
    two, _ = evaluate(model, [data], ps, jobs=2, cache_dir=tmp_path)  # workers read, this process writes
    calls.clear()
    again, _ = evaluate(model, [data], ps, jobs=1, cache_dir=tmp_path)
    assert calls == [] and again == two and two["resize:0.5"] == one["resize:0.5"]
    assert evaluate(model, [data], ps)[0] == two


def test_evaluate_starts_workers_only_for_chunks_with_something_to_compute(data, model_path, tmp_path, monkeypatch):
    import forensics.runtime
    from forensics.model import ForensicModel
    from forensics.pipelines.evaluate import iter_conditions

    model = ForensicModel.load(model_path)
    paths = sorted(str(p) for p in data.rglob("*.jpg"))
    ps = parse_perturbations("jpeg:75")
    pools = []
    real_pool = forensics.runtime.worker_pool

    def counting_pool(*args, **kwargs):
        pools.append(args[0])
        return real_pool(*args, **kwargs)

    monkeypatch.setattr(forensics.runtime, "worker_pool", counting_pool)
    cold, _ = evaluate(model, [data], ps, jobs=2, cache_dir=tmp_path)
    assert pools == [2]
    warm, errors = evaluate(model, [data], ps, jobs=2, cache_dir=tmp_path)
    assert pools == [2] and warm == cold and not errors  # all cached: read here, no worker started
    # a cached head is read here, the workers take over at the first chunk with something new
    later = [*paths[:8], str(tmp_path / "new.jpg")]
    Image.open(paths[0]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(later[-1], quality=90)
    rows = [r for chunk in iter_conditions(later, model.spec, ps, jobs=2, chunk_size=4, cache_dir=tmp_path) for r in chunk]
    assert pools == [2, 2] and len(rows) == 9
    alone = [r for chunk in iter_conditions(later, model.spec, ps, chunk_size=4) for r in chunk]
    assert all(np.array_equal(a[0], b[0], equal_nan=True) and a[1] == b[1] for a, b in zip(rows, alone))


def _no_decoding(monkeypatch) -> None:
    from forensics.pipelines import evaluate as ev

    forbid_decoding(monkeypatch, ev)


def test_a_warm_cache_evaluate_decodes_nothing(data, model_path, tmp_path, monkeypatch):
    from forensics.model import ForensicModel
    from forensics.pipelines.evaluate import condition_scores

    model = ForensicModel.load(model_path)
    paths = sorted(str(p) for p in data.rglob("*.jpg"))  # 24: three chunks of 8
    ps = parse_perturbations("jpeg:75,resize:0.5")
    cold, cold_errors = condition_scores(model, paths, ps, jobs=2, cache_dir=tmp_path)
    assert np.isfinite(cold).all() and not any(e for errs in cold_errors for e in errs)
    _no_decoding(monkeypatch)
    for jobs in (1, 2):
        warm, errors = condition_scores(model, paths, ps, jobs=jobs, cache_dir=tmp_path)
        np.testing.assert_array_equal(warm, cold)
        assert errors == cold_errors


def test_a_warm_cache_evaluate_reads_each_file_once(data, model_path, tmp_path, monkeypatch):
    from forensics.model import ForensicModel
    from forensics.pipelines.evaluate import condition_scores

    model = ForensicModel.load(model_path)
    paths = sorted(str(p) for p in data.rglob("*.jpg"))
    ps = parse_perturbations("jpeg:75")
    cold, _ = condition_scores(model, paths, ps, jobs=2, cache_dir=tmp_path)
    with counting_reads(monkeypatch) as reads:
        warm, _ = condition_scores(model, paths, ps, jobs=2, cache_dir=tmp_path)
    assert sorted(reads) == sorted(paths)  # each file read (and hashed) once, in this process
    np.testing.assert_array_equal(warm, cold)


def test_the_pixel_limit_applies_to_cached_images(data, model_path, tmp_path, monkeypatch):
    import dataclasses

    from forensics.model import ForensicModel

    model = ForensicModel.load(model_path)
    ps = parse_perturbations("jpeg:75,crop:0.8")
    evaluate(model, [data], ps, cache_dir=tmp_path)  # the default limit: every image in the cache
    strict = dataclasses.replace(model, spec=dataclasses.replace(model.spec, max_pixels=64 * 64 - 1))
    uncached, loader_errors = evaluate(strict, [data], ps)  # the loader refuses every 64 x 64 image
    assert len(loader_errors) == 1 and "possible decompression bomb" in next(iter(loader_errors))
    _no_decoding(monkeypatch)
    for jobs in (1, 2):
        result, errors = evaluate(strict, [data], ps, jobs=jobs, cache_dir=tmp_path)
        assert errors == loader_errors  # the same message, one per file (every condition has it)
        assert all(m["n_failed"] == 24 for m in result.values())
        assert result == uncached


def test_cached_conditions_only_cached_returns_none_when_anything_is_missing(data, model_path, tmp_path, monkeypatch):
    from forensics.cache import FeatureCache
    from forensics.model import ForensicModel
    from forensics.pipelines.evaluate import cached_conditions

    spec = ForensicModel.load(model_path).spec
    path = sorted(str(p) for p in data.rglob("*.jpg"))[0]
    cache = FeatureCache(tmp_path / "cache")
    ps = parse_perturbations("jpeg:75")
    feats, errors, new = cached_conditions(path, spec, ps, cache=cache)
    diag_key = [k for k in new if k.endswith(":diag:v1")]
    assert len(diag_key) == 1 and len(new) == 2 * len(spec.blocks) + 1  # both conditions' blocks and the diag
    cache.put_many({k: v for k, v in new.items() if k not in diag_key})
    _no_decoding(monkeypatch)
    assert cached_conditions(path, spec, ps, cache=cache, only_cached=True) is None  # the diag record is missing
    cache.put_many({diag_key[0]: new[diag_key[0]]})
    again, again_errors, none_new = cached_conditions(path, spec, ps, cache=cache, only_cached=True)
    np.testing.assert_array_equal(again, feats)
    assert again_errors == errors == [None, None] and none_new == {}
    # a perturbation whose features are not cached: None, although the clean ones and the diag are
    assert cached_conditions(path, spec, parse_perturbations("jpeg:75,jpeg:50"), cache=cache, only_cached=True) is None
    # a file that cannot be read has nothing to compute: its error comes back in every condition
    gone, gone_errors, _ = cached_conditions(str(tmp_path / "gone.jpg"), spec, ps, cache=cache, only_cached=True)
    assert np.isnan(gone).all() and len(gone_errors) == 2 and all("cannot read file" in e for e in gone_errors)


def test_evaluate_cli_uses_the_cache_folder_given(data, model_path, tmp_path):
    from forensics.cache import FeatureCache

    args = ["evaluate", str(model_path), str(data), "--perturb", "jpeg:75"]
    r = runner.invoke(app, [*args, "--cache-dir", str(tmp_path / "c")])
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    assert len(FeatureCache(tmp_path / "c")) == 24 * (2 * 2 + 1)  # images x (conditions x blocks + diag)
    r = runner.invoke(app, [*args, "--cache-dir", str(tmp_path / "n"), "--no-cache"])
    assert r.exit_code == 0 and not (tmp_path / "n").exists()


# --------------------------------------------------------------------------------------------------
# per-group metrics (--by)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grouped(data, tmp_path_factory) -> Path:
    """The demo images with the fakes in two sub-folders, as one folder per generator would be."""
    root = tmp_path_factory.mktemp("grouped")
    (root / "real").mkdir()
    for p in sorted((data / "real").glob("*.jpg")):
        (root / "real" / p.name).write_bytes(p.read_bytes())
    for k, p in enumerate(sorted((data / "fake").glob("*.jpg"))):
        sub = root / "fake" / ("gen_a" if k % 3 == 0 else "gen_b")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{sub.name}_{p.name}").write_bytes(p.read_bytes())
    return root


def _independent(model, root):
    """Each image's score and its folder, from ``score`` rather than ``evaluate``."""
    frame = api.score_frame(model, [root], cache_dir=None)
    folders = np.array([Path(p).parent.name for p in frame["path"]])
    return frame["prob_fake"].to_numpy(), folders


def test_evaluate_by_folder_measures_each_kind_of_fake_against_all_real(grouped, model_path):
    from sklearn.metrics import roc_auc_score

    from forensics.model import ForensicModel

    model = ForensicModel.load(model_path)
    result, _ = evaluate(model, [grouped], parse_perturbations("jpeg:75"), by="folder")
    groups = result[CLEAN]["groups"]
    assert list(groups) == ["real", "gen_a", "gen_b"]
    assert [(g["n_real"], g["n_fake"], g["n_failed"]) for g in groups.values()] == [(12, 0, 0), (0, 4, 0), (0, 8, 0)]
    assert [g["auc_against"] for g in groups.values()] == ["all fake", "all real", "all real"]
    s, folders = _independent(model, grouped)
    real = folders == "real"
    for name in ("gen_a", "gen_b"):
        mine = folders == name
        keep = real | mine
        assert groups[name]["auc"] == pytest.approx(roc_auc_score(mine[keep], s[keep]), abs=1e-9)
        assert groups[name]["acc_fake"] == pytest.approx(np.mean(s[mine] >= model.threshold))
        assert groups[name]["mean_prob_fake"] == pytest.approx(s[mine].mean())
        assert groups[name]["auc_ci_low"] <= groups[name]["auc"] <= groups[name]["auc_ci_high"]
    assert groups["real"]["acc_real"] == pytest.approx(np.mean(s[real] < model.threshold))
    assert groups["real"]["auc"] == pytest.approx(result[CLEAN]["auc"], abs=1e-9)  # all real against all fake
    assert math.isnan(groups["real"]["acc_fake"]) and math.isnan(groups["gen_a"]["acc_real"])
    # every condition gets its groups, from its own scores
    assert list(result["jpeg:75"]["groups"]) == list(groups)
    assert result["jpeg:75"]["groups"]["gen_b"]["mean_prob_fake"] != groups["gen_b"]["mean_prob_fake"]
    # and the whole-set figures do not change
    plain, _ = evaluate(model, [grouped], parse_perturbations("jpeg:75"))
    assert {k: v for k, v in result[CLEAN].items() if k != "groups"} == plain[CLEAN]


def test_evaluate_by_regex_groups_by_its_first_group_and_keeps_the_rest(grouped, model_path):
    from forensics.model import ForensicModel

    model = ForensicModel.load(model_path)
    result, _ = evaluate(model, [grouped], [], by=r"/(gen_a)_")
    groups = result[CLEAN]["groups"]
    assert list(groups) == ["(other)", "gen_a"]
    assert (groups["(other)"]["n_real"], groups["(other)"]["n_fake"]) == (12, 8)
    assert groups["(other)"]["auc_against"] == "group"  # both classes: measured within the group
    assert (groups["gen_a"]["n_real"], groups["gen_a"]["n_fake"]) == (0, 4)
    # without a capture group, the whole match names the group
    whole, _ = evaluate(model, [grouped], [], by="gen_[ab]")
    assert set(whole[CLEAN]["groups"]) == {"(other)", "gen_a", "gen_b"}


@pytest.mark.parametrize("by, match", [("(unclosed", "neither 'folder' nor a valid regular expression"),
                                       ("/no_such_kind_", "matches none of the 24 image paths")])
def test_a_bad_or_empty_by_is_refused_before_scoring(grouped, model_path, by, match, monkeypatch):
    from forensics.model import ForensicModel
    from forensics.pipelines import evaluate as ev

    def boom(*a, **k):
        raise AssertionError("scored before checking --by")

    monkeypatch.setattr(ev, "condition_scores", boom)
    with pytest.raises(UsageError, match=match):
        evaluate(ForensicModel.load(model_path), [grouped], [], by=by)
    r = runner.invoke(app, ["evaluate", str(model_path), str(grouped), "--perturb", "none", "--by", by])
    assert r.exit_code == 2 and "Traceback" not in r.stderr
    assert match.split()[0] in " ".join(r.stderr.split())


def test_evaluate_cli_by_prints_the_groups_and_writes_them(grouped, model_path, tmp_path):
    out = tmp_path / "metrics.json"
    r = runner.invoke(app, ["evaluate", str(model_path), str(grouped), "--perturb", "jpeg:75", "--by", "folder", "--out", str(out)])
    assert r.exit_code == 0, (r.stdout, r.stderr, r.exception)
    result = json.loads(out.read_text())
    groups = result["clean"]["groups"]
    assert list(groups) == ["real", "gen_a", "gen_b"] and list(result["jpeg:75"]["groups"]) == list(groups)
    assert groups["real"]["acc_fake"] is None  # NaN as strict JSON
    lines = r.stdout.splitlines()
    header = next(line for line in lines if line.startswith("group"))
    assert header.split()[:3] == ["group", "real", "fake"]
    row = next(line for line in lines if line.startswith("gen_a "))
    assert row.split()[1:3] == ["0", "4"] and f"{groups['gen_a']['auc']:.3f}" in row.split()
    assert row.rstrip().endswith("all real")


def test_group_metrics_counts_unscored_images_and_measures_nothing_for_them():
    from forensics.pipelines.evaluate import group_metrics

    y = [0, 0, 1, 1, 1, 0]
    s = [0.1, 0.2, 0.9, 0.15, float("nan"), float("nan")]
    out = group_metrics(y, s, ["r", "r", "a", "a", "a", "broken"], 0.5)
    assert (out["a"]["n_fake"], out["a"]["n_failed"], out["a"]["acc_fake"]) == (2, 1, 0.5)
    # 0.9 and 0.15 against 0.1 and 0.2: three of the four pairs in order
    assert out["a"]["auc"] == pytest.approx(0.75) and out["a"]["auc_against"] == "all real"
    assert out["r"]["auc"] == pytest.approx(0.75) and out["r"]["auc_against"] == "all fake" and out["r"]["acc_real"] == 1.0
    b = out["broken"]
    assert (b["n_real"], b["n_fake"], b["n_failed"], b["auc_against"]) == (0, 0, 1, None)
    assert math.isnan(b["auc"]) and math.isnan(b["mean_prob_fake"])


def test_by_folder_tells_apart_folders_of_the_same_name():
    from forensics.pipelines.evaluate import image_groups

    paths = ["set1/real/a.jpg", "set2/real/b.jpg", "set1/fake/sg2/c.jpg", "set2/fake/sg2/d.png",
             "set2/fake/sd15/e.png", "/x/real/f.jpg", "/w/x/real/g.jpg", "h.jpg"]
    assert image_groups(paths, "folder") == ["set1/real", "set2/real", "set1/fake/sg2", "set2/fake/sg2", "sd15",
                                             "x/real", "w/x/real", Path.cwd().name]
    # one folder named by one spelling or another is one group
    assert image_groups(["data/real/a.jpg", "./data/real/b.jpg", "data/fake/c.jpg"], "folder") == ["real", "real", "fake"]
    assert image_groups(["/a.jpg"], "folder") == ["(other)"]


def test_evaluate_by_folder_keeps_two_sources_folders_apart(grouped, model_path, tmp_path):
    from forensics.model import ForensicModel

    second = tmp_path / "second"
    for sub, n in (("real", 3), ("fake/gen_a", 2)):
        (second / sub).mkdir(parents=True)
        for p in sorted((grouped / sub).glob("*.jpg"))[:n]:
            (second / sub / p.name).write_bytes(p.read_bytes())
    result, _ = evaluate(ForensicModel.load(model_path), [grouped, second], [], by="folder")
    groups = result[CLEAN]["groups"]
    g = grouped.name
    assert {k: (v["n_real"], v["n_fake"]) for k, v in groups.items()} == {
        f"{g}/real": (12, 0), f"{g}/fake/gen_a": (0, 4), "gen_b": (0, 8), "second/real": (3, 0), "second/fake/gen_a": (0, 2)}
