"""``forensics report`` (one self-contained HTML file) and ``score --explain``."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forensics import api
from forensics.cli import app
from forensics.demo import make_demo_dataset
from forensics.model import ForensicModel
from forensics.pipelines.explain import ExplanationUnavailable, contributions, top_features
from forensics.reports import REPORT_SECTIONS
from forensics.reports.importance import block_ablation, block_index, block_permutation_importance
from cli_utils import run, runner
BLOCKS = "color,spectrum"


class _Page(HTMLParser):
    """Collects section ids, image sources, every src/href, and tags that would load something."""

    def __init__(self):
        super().__init__()
        self.sections, self.imgs, self.urls, self.tags = [], [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.sections.append(a.get("id"))
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for key in ("src", "href", "srcset", "data", "action"):
            if key in a:
                self.urls.append(a[key])


def parse(path: Path) -> tuple[_Page, str]:
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    return page, text


def section_html(text: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', text, re.S)
    assert m, sid
    return m.group(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report-data")
    make_demo_dataset(root, n_per_class=30, size=64, seed=41)
    return root


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report-heldout")
    make_demo_dataset(root, n_per_class=15, size=64, seed=42)
    return root


@pytest.fixture(scope="module")
def models(data, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("report-models")
    out = {}
    for classifier in ("xgb", "logreg", "svm", "blend"):
        model, _ = api.train([data], blocks=BLOCKS, classifier=classifier, n_splits=3, cache_dir=None)
        out[classifier] = folder / f"{classifier}.skops"
        model.save(out[classifier])
    return out


def assert_self_contained(page: _Page, text: str) -> None:
    assert page.imgs, "no figures"
    assert all(src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for src in page.imgs)
    assert all(u.startswith(("data:", "#")) for u in page.urls), [u[:40] for u in page.urls if not u.startswith(("data:", "#"))]
    assert "http://" not in text and "https://" not in text
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    assert "url(" not in text  # no CSS fetch either


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------


def test_report_with_data_has_every_section_and_embeds_everything(models, heldout, tmp_path):
    out = tmp_path / "report.html"
    r = run("report", models["xgb"], heldout, "--out", out, "--no-cache")
    assert "wrote report" in r.stdout and "30 of 30 images scored" in " ".join(r.stdout.split())
    page, text = parse(out)
    assert page.sections == list(REPORT_SECTIONS)
    assert_self_contained(page, text)
    # every figure-bearing section has its figure; the examples have JPEG thumbnails
    for sid in ("curves", "histograms", "calibration", "confusion", "importance", "ablation", "spectrum"):
        assert 'src="data:image/png;base64,' in section_html(text, sid), sid
    assert section_html(text, "examples").count('src="data:image/jpeg;base64,') >= 8
    # held-out metrics next to the cross-validated ones; Brier and calibration method shown
    metrics = section_html(text, "metrics")
    assert "cross-validation" in metrics and "data: " in metrics and "Brier" in metrics
    assert "sigmoid" in section_html(text, "card")
    importance = section_html(text, "importance")
    assert "mean |SHAP sum|" in importance and "AUC drop (permuted)" in importance and "gain share" in importance
    ablation = section_html(text, "ablation")
    assert "color" in ablation and "spectrum" in ablation and "3-fold" in ablation


def test_report_without_data_shows_what_the_card_allows(models, tmp_path):
    out = tmp_path / "card.html"
    r = run("report", models["xgb"], "--out", out)
    assert "model card only" in r.stdout
    page, text = parse(out)
    assert page.sections == list(REPORT_SECTIONS)
    assert_self_contained(page, text)
    for sid in ("curves", "histograms", "calibration", "confusion", "importance", "spectrum"):
        assert 'src="data:image/png;base64,' in section_html(text, sid), sid  # from the card's out-of-fold scores
    assert "give DATA" in section_html(text, "ablation")
    assert "data:image/jpeg" not in text
    assert "training data" in section_html(text, "audit")


@pytest.mark.parametrize("classifier", ["logreg", "svm", "blend"])
def test_report_for_other_classifiers(models, heldout, tmp_path, classifier):
    out = tmp_path / "r.html"
    run("report", models[classifier], heldout, "--out", out, "--no-cache", "--no-ablation", "--examples", "2")
    page, text = parse(out)
    assert page.sections == list(REPORT_SECTIONS)
    assert_self_contained(page, text)
    importance = section_html(text, "importance")
    assert "AUC drop (permuted)" in importance  # model-agnostic, for every classifier
    assert ("mean |SHAP sum|" in importance) == (classifier == "logreg")
    assert "Skipped" in section_html(text, "ablation")


def _row(html: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is ``first``."""
    m = re.search(rf"<tr><td>{re.escape(first)}</td>(.*?)</tr>", html)
    assert m, first
    return [first] + re.findall(r"<td[^>]*>(.*?)</td>", m.group(1))


def test_report_by_adds_each_groups_metrics(models, heldout, tmp_path):
    from sklearn.metrics import roc_auc_score

    out = tmp_path / "groups.html"
    run("report", models["xgb"], heldout, "--out", out, "--no-cache", "--no-ablation", "--examples", "0",
        "--by", "(real|fake)_000")
    metrics = section_html(out.read_text(encoding="utf-8"), "metrics")
    assert "Per group of images" in metrics
    # header: group, real, fake, failed, acc real, acc fake, mean prob_fake, AUC, AUC 95 % CI, AUC against
    assert _row(metrics, "real")[1:4] == ["10", "0", "0"] and _row(metrics, "real")[-1] == "all fake"
    assert _row(metrics, "(other)")[1:3] == ["5", "5"] and _row(metrics, "(other)")[-1] == "group"
    fake = _row(metrics, "fake")
    assert fake[1:4] == ["0", "10", "0"] and fake[-1] == "all real"
    # the AUC of fakes 0000-0009 against all 15 real images, from scores computed by `score`
    model = ForensicModel.load(models["xgb"])
    frame = api.score_frame(model, [heldout], cache_dir=None)
    names = frame["path"].map(lambda p: Path(p).name)
    mine = names.str.match(r"fake_000").to_numpy()
    real = names.str.startswith("real").to_numpy()
    s = frame["prob_fake"].to_numpy()
    assert float(fake[7]) == pytest.approx(roc_auc_score(mine[mine | real], s[mine | real]), abs=1e-4)
    assert float(fake[5]) == pytest.approx(np.mean(s[mine] >= model.threshold), abs=1e-4)
    # without --by, no such table
    plain = tmp_path / "plain.html"
    run("report", models["xgb"], heldout, "--out", plain, "--no-cache", "--no-ablation", "--examples", "0")
    assert "Per group of images" not in plain.read_text(encoding="utf-8")


@pytest.mark.parametrize("args, match", [(["--by", "folder"], "give labelled DATA"),
                                         (["HELDOUT", "--by", "(unclosed"], "valid regular expression"),
                                         (["HELDOUT", "--by", "/nothing_"], "matches none of the 30")])
def test_report_refuses_a_bad_by_before_any_work(models, heldout, tmp_path, args, match, monkeypatch):
    from forensics import extraction

    def boom(*a, **k):
        raise AssertionError("extracted before checking --by")

    monkeypatch.setattr(extraction, "iter_features", boom)
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", str(models["xgb"]), *[str(heldout) if a == "HELDOUT" else a for a in args],
                            "--out", str(out), "--no-cache"])
    assert r.exit_code == 2 and "Traceback" not in r.stderr, (r.stderr, r.exception)
    assert match in " ".join(r.stderr.split())
    assert not out.exists()


def test_report_of_a_missing_model_is_a_one_line_error(tmp_path):
    r = runner.invoke(app, ["report", str(tmp_path / "nope.skops"), "--out", str(tmp_path / "r.html")])
    assert r.exit_code == 1
    assert "model file not found" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r.html").exists()


def test_block_helpers():
    names = ["a__x", "a__y", "b__z"]
    assert {k: v.tolist() for k, v in block_index(names).items()} == {"a": [0, 1], "b": [2]}
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = np.repeat([0, 1], 60)
    X[y == 1, 0] += 2.0  # only block a is informative
    perm = block_permutation_importance(lambda Z: Z[:, 0], X, y, names)
    assert perm["a"][0] > 0.2 and perm["b"][0] == 0.0
    res = block_ablation(X, y, names, "logreg")
    assert res["alone"]["a"] > 0.8 and res["alone"]["b"] < 0.7
    assert res["without"]["b"] > 0.8 and res["without"]["a"] < 0.7
    assert res["folds"] == 3


def test_block_ablation_takes_the_number_of_trees():
    rng = np.random.default_rng(0)
    names = ["a__x", "b__z"]
    X = rng.normal(size=(90, 2))
    y = np.repeat([0, 1], 45)
    X[y == 1, 0] += 2.0
    one = block_ablation(X, y, names, "xgb", trees=1)
    many = block_ablation(X, y, names, "xgb", trees=60, n_jobs=2)
    assert one["trees"] == 1 and many["trees"] == 60
    # a single depth-4 tree ranks in a few coarse steps; 60 trees separate block a almost as a threshold would
    assert many["alone"]["a"] > one["alone"]["a"]
    assert many["alone"]["a"] > 0.85


def test_ablation_makes_the_blends_xgboost_member_as_light():
    from forensics.reports.importance import _light_pipeline

    member = _light_pipeline("blend", 0, trees=7).named_steps["clf"].xgb
    assert (member.n_estimators, member.learning_rate) == (7, 0.1)
    assert _light_pipeline("svm", 0, trees=7).named_steps["clf"].estimator.C == 3.0  # untouched


def test_ablation_fits_each_kind_of_block_with_the_hybrids_member_for_it():
    from forensics.reports.importance import _light_pipeline

    both = _light_pipeline("hybrid", 0, trees=7, names=["color__a", "cnn__0000", "cnn__0001"]).named_steps["clf"]
    assert list(both.linear_columns) == [1, 2] and (both.trees.n_estimators, both.trees.learning_rate) == (7, 0.1)
    hand = _light_pipeline("hybrid", 0, trees=7, names=["color__a", "spectrum__b"]).named_steps["clf"]
    assert type(hand).__name__ == "XGBClassifier" and hand.n_estimators == 7
    cnn = _light_pipeline("hybrid", 0, trees=7, names=["cnn__0000", "cnn__0001"]).named_steps["clf"]
    assert type(cnn).__name__ == "LogisticRegression" and cnn.C == 0.001


# --------------------------------------------------------------------------------------------------
# score --explain
# --------------------------------------------------------------------------------------------------

_EXPLAIN = re.compile(r"^(color|spectrum)__\S+:[+-]\d+\.\d\d$")


@pytest.mark.parametrize("classifier", ["xgb", "logreg"])
def test_score_explain_adds_the_top_features(models, heldout, tmp_path, classifier):
    out = tmp_path / "s.csv"
    run("score", models[classifier], heldout, "--out", out, "--explain", 3, "--no-cache")
    frame = pd.read_csv(out)
    assert list(frame.columns[-3:]) == ["explain_1", "explain_2", "explain_3"]
    for col in ("explain_1", "explain_2", "explain_3"):
        assert frame[col].map(lambda s: bool(_EXPLAIN.match(s))).all(), frame[col].head()
    # ordered by magnitude
    mags = frame[["explain_1", "explain_2", "explain_3"]].map(lambda s: abs(float(s.rsplit(":", 1)[1])))
    assert (mags["explain_1"] >= mags["explain_2"]).all() and (mags["explain_2"] >= mags["explain_3"]).all()


def test_contributions_add_up_to_the_raw_score(models, heldout):
    from forensics.extraction import extract_features

    for classifier in ("xgb", "logreg"):
        model = ForensicModel.load(models[classifier])
        X = extract_features(sorted(str(p) for p in heldout.rglob("*.jpg"))[:6], BLOCKS)[model.feature_names].to_numpy()
        contrib, bias = contributions(model.pipeline, X)
        logit = np.log(model.pipeline.predict_proba(X)[:, 1] / model.pipeline.predict_proba(X)[:, 0])
        np.testing.assert_allclose(contrib.sum(axis=1) + bias, logit, atol=1e-4)


@pytest.mark.parametrize("classifier", ["svm", "blend"])
def test_score_explain_on_svm_is_skipped_with_a_message(models, heldout, tmp_path, classifier):
    out = tmp_path / "s.csv"
    r = run("score", models[classifier], heldout, "--out", out, "--explain", 2, "--no-cache")
    assert "no explain columns" in " ".join(r.stderr.split())
    scores = pd.read_csv(out)
    assert not any(c.startswith("explain_") for c in scores.columns)
    assert scores["prob_fake"].notna().all()  # the scores themselves are there
    with pytest.raises(ExplanationUnavailable, match=f"\\({classifier}, whose"):
        contributions(ForensicModel.load(models[classifier]).pipeline, np.zeros((1, 3)))


def test_top_features_handles_rows_without_features():
    c = np.array([[0.1, -0.5, 0.2], [np.nan, np.nan, np.nan]])
    assert top_features(c, ["a__x", "a__y", "b__z"], 2) == [["a__y:-0.50", "b__z:+0.20"], ["", ""]]


def test_metrics_label_names_a_holdout_for_train_table_models():
    from forensics.reports.build import _evaluation_label, _metrics_section

    holdout = {"cv_folds": None, "evaluation": {"method": "holdout", "fraction": 0.2, "n_holdout": 412}}
    assert _evaluation_label(holdout) == "holdout (412 images, 20 %, not trained on)"
    assert _evaluation_label({"cv_folds": 5}) == "cross-validation (5-fold, out-of-fold)"
    html = _metrics_section({"training_data": holdout, "cv_metrics": {"auc": 0.9}}, None, None)
    assert "holdout (412 images" in html and "None-fold" not in html
    assert "AUC 95 % CI" in html  # the column; a card written before intervals were recorded shows "-"
    html = _metrics_section({"training_data": holdout, "cv_metrics": {"auc": 0.9, "auc_ci_low": 0.8712, "auc_ci_high": 0.9254}}, None, None)
    assert "0.871-0.925" in html
