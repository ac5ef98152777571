"""The ``forensics`` command line, end to end on image files written to a temporary folder.

Typer's CliRunner (click >= 8.2) keeps stdout and stderr apart: ``result.stdout`` holds results,
``result.stderr`` progress bars, error summaries and error messages.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

import forensics
from forensics import api
from forensics.cli import app
from forensics.demo import make_demo_dataset
from forensics.features.base import all_blocks, feature_names
from forensics.features.diag import DIAG_COLUMNS
from forensics.loading import is_image_path
from forensics.model import ForensicModel
from cli_utils import flat, run, runner

sys.path.insert(0, str(Path(__file__).parent))
import awkward  # noqa: E402  (a helper module next to the tests, not a package)

COLOR = feature_names("color")
DIAG = [f"diag__{c}" for c in DIAG_COLUMNS]


def _png(path: Path, seed: int, size: int = 40) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path, format="PNG")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_demo_dataset(root, n_per_class=12, size=64, seed=11)
    return root


@pytest.fixture(scope="module")
def model_path(data, tmp_path_factory) -> Path:
    model, _ = api.train([data], blocks="color", classifier="logreg", n_splits=3, cache_dir=None)
    path = tmp_path_factory.mktemp("model") / "m.skops"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def awk(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("awkward")
    return root, awkward.make_awkward_folder(root)


# --------------------------------------------------------------------------------------------------
# small commands
# --------------------------------------------------------------------------------------------------


def test_version():
    result = run("--version")
    assert result.stdout.strip() == f"forensics {forensics.__version__}"


def test_blocks_lists_every_block_and_preset():
    result = run("blocks")
    first_column = {line.split("│")[1].strip() for line in result.stdout.splitlines() if line.count("│") > 2}
    assert set(all_blocks()) <= first_column
    assert "preset default:" in result.stdout and "preset fast:" in result.stdout
    assert "forensics[faces]" in flat(result.stdout)  # the faces preset's install hint survives Rich markup
    # the color row shows its real feature count
    color_row = next(line for line in result.stdout.splitlines() if line.startswith("│ color "))
    assert f"│ {len(COLOR)} " in color_row


def test_blocks_help_lists_block_names():
    result = run("extract", "--help")
    text = flat(result.stdout)
    for name, block in all_blocks().items():
        if block.classifier_input:
            assert name in text


# --------------------------------------------------------------------------------------------------
# extract
# --------------------------------------------------------------------------------------------------


def test_extract_labelled_folder(data, tmp_path):
    out = tmp_path / "f.parquet"
    result = run("extract", data, "--out", out, "--blocks", "color", "--cache-dir", tmp_path / "cache")
    assert "wrote 24 rows" in flat(result.stdout)
    assert "24 with features" in flat(result.stdout)

    table = pq.read_table(out)
    assert table.schema.metadata[b"forensics.blocks"] == b"color"
    frame = table.to_pandas()
    assert list(frame.columns) == ["path", "label", "error"] + DIAG + COLOR
    files = sorted(str(p) for p in data.rglob("*.jpg"))
    assert len(frame) == len(files) == 24
    assert sorted(frame["path"]) == files
    assert frame["path"].is_unique
    for path, label in zip(frame["path"], frame["label"]):
        assert label == Path(path).parent.name
    assert frame["label"].value_counts().to_dict() == {"real": 12, "fake": 12}
    assert frame["error"].isna().all()
    assert frame[COLOR].notna().all().all()
    assert (frame["diag__width"] == 64).all() and (frame["diag__format"] == "JPEG").all()
    assert frame["diag__file_size"].tolist() == [os.path.getsize(p) for p in frame["path"]]
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary left behind


def test_extract_unlabelled_with_broken_files(tmp_path):
    folder = tmp_path / "imgs"
    for i in range(3):
        _png(folder / f"img{i}.png", i)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    out = tmp_path / "f.parquet"
    result = run("extract", folder, "--out", out, "--blocks", "color", "--no-cache")
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["path", "error"] + DIAG + COLOR  # no label column
    assert [Path(p).name for p in frame["path"]] == ["broken.jpg", "img0.png", "img1.png", "img2.png"]
    assert frame["error"].notna().tolist() == [True, False, False, False]
    assert frame.loc[0, COLOR].isna().all()
    assert frame.loc[1:, COLOR].notna().all().all()
    assert "wrote 4 rows" in flat(result.stdout) and "3 with features" in flat(result.stdout)
    assert "1 of 4 files had problems" in flat(result.stderr)


def test_extract_set_changes_feature_count(data, tmp_path):
    out = tmp_path / "f.parquet"
    run("extract", data, "--out", out, "--blocks", "color", "--set", "color.hue_bins=6", "--no-cache")
    columns = list(pd.read_parquet(out).columns)
    color_cols = [c for c in columns if c.startswith("color__")]
    assert len(color_cols) == len(COLOR) - 6
    assert [c for c in color_cols if "hue_hist" in c] == [f"color__hue_hist__bins_6__{i:02d}" for i in range(6)]


def test_extract_fails_when_nothing_could_be_processed(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_text("not an image")
    out = tmp_path / "f.parquet"
    result = run("extract", folder, "--out", out, "--blocks", "color", "--no-cache", ok=False)
    assert result.exit_code == 1
    assert "no image could be processed" in result.stderr
    assert len(pd.read_parquet(out)) == 1  # the rows are still written


# --------------------------------------------------------------------------------------------------
# train
# --------------------------------------------------------------------------------------------------


def test_train_prints_cv_metrics_and_writes_the_model(data, tmp_path):
    model = tmp_path / "m.skops"
    result = run("train", data, "--model", model, "--blocks", "color", "--folds", "3", "--classifier", "logreg",
                 "--cache-dir", tmp_path / "cache")
    loaded = ForensicModel.load(model)
    card = loaded.card
    out = flat(result.stdout)
    assert "3-fold cross-validation (logreg" in out
    assert f"{len(COLOR)} features" in out and "12 real / 12 fake" in out
    assert "AUC" in out
    assert f"{card['cv_metrics']['auc']:.4f}" in out
    cv = card["cv_metrics"]
    assert f"AUC 95 % confidence interval (DeLong; the number of images, not retraining): CV {cv['auc_ci_low']:.3f}-{cv['auc_ci_high']:.3f}" in out
    assert cv["auc_ci_low"] <= cv["auc"] <= cv["auc_ci_high"]
    assert f"{loaded.threshold:.4f}" in out
    assert "wrote model to" in out
    assert card["blocks"] == ["color"] and card["classifier"] == "logreg"
    assert card["training_data"]["cv_folds"] == 3


def test_train_default_classifier_and_settings(data, tmp_path):
    model = tmp_path / "m.skops"
    run("-q", "train", data, "--model", model, "--blocks", "color", "--folds", "2", "--set", "color.sat_bins=4", "--no-cache")
    loaded = ForensicModel.load(model)
    assert loaded.card["classifier"] == "xgb"
    assert loaded.spec.settings["color"] == {"hue_bins": 12, "sat_bins": 4, "max_size": 512}
    assert len(loaded.feature_names) == len(COLOR) - 4


@pytest.fixture(scope="module")
def tuned(data, tmp_path_factory):
    """``train --tune --holdout``: the run's stdout and the model file."""
    model = tmp_path_factory.mktemp("tuned") / "t.skops"
    result = run("-q", "train", data, "--model", model, "--blocks", "color", "--folds", "3", "--classifier", "logreg",
                 "--tune", "--tune-iter", "2", "--tune-folds", "2", "--holdout", "0.25", "--no-cache")
    return result, model


def test_train_tune_and_holdout_print_both_rows_and_fill_the_card(tuned):
    result, model = tuned
    card = ForensicModel.load(model).card
    out = flat(result.stdout)
    assert "3-fold nested cross-validation (logreg" in out
    assert "9 real / 9 fake) and untouched held-out 25% (3 real / 3 fake)" in out  # 25 % of 12 per class set aside
    cv_row = next(line for line in result.stdout.splitlines() if line.startswith("│ CV "))
    held_row = next(line for line in result.stdout.splitlines() if line.startswith("│ held-out "))
    assert f"{card['cv_metrics']['auc']:.4f}" in cv_row and f"{card['holdout_metrics']['auc']:.4f}" in held_row
    assert card["holdout_metrics"]["n"] == 6 and card["cv_metrics"]["n"] == 18
    assert card["training_data"]["holdout"]["fraction"] == 0.25
    assert (card["training_data"]["n_real"], card["training_data"]["n_fake"]) == (9, 9)
    t = card["tuning"]
    assert (t["n_iter"], t["inner_folds"], t["outer_folds"], len(t["folds"])) == (2, 2, 3, 3)
    assert t["best_params"]["C"] in t["search_space"]["C"]
    assert f"tuning: RandomizedSearchCV (roc_auc), 2 candidates x 2 inner folds, in each of 3 outer folds" in out
    assert f"chosen: C={t['best_params']['C']:g}" in out
    assert len(card["oof"]["scores"]) == 18  # out-of-fold scores of the training part only
    assert card["training_data"]["weights"].startswith("balanced: every source")


def test_report_shows_the_held_out_row_and_the_tuning(tuned, tmp_path):
    _, model = tuned
    card = ForensicModel.load(model).card
    run("-q", "report", model, "--out", tmp_path / "r.html")
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    metrics = re.search(r'<section id="metrics">(.*?)</section>', text, re.S).group(1)
    row = re.search(r"<tr><td>held-out test split \(25%, untouched by training\)</td>(.*?)</tr>", metrics)
    assert row and f"{card['holdout_metrics']['auc']:.4f}" in row.group(1)
    assert "nested cross-validation (3-fold, out-of-fold)" in metrics
    section = re.search(r'<section id="card">(.*?)</section>', text, re.S).group(1)
    assert "Hyper-parameter tuning" in section and "outer fold 3" in section
    assert f"C={card['tuning']['best_params']['C']:g}" in section


def test_train_holdout_too_large_fails_before_feature_extraction(data, monkeypatch):
    def no_extraction(*a, **k):
        raise AssertionError("features were extracted")

    monkeypatch.setattr(api, "iter_features", no_extraction)
    with pytest.raises(api.UsageError, match="--holdout 0.9 leaves 1 of the 12 real images"):
        api.train([data], blocks="color", holdout=0.9)
    with pytest.raises(api.UsageError, match="--tune cannot be combined with --warm-start"):
        api.train([data], blocks="color", tune=True, warm_start="whatever.skops")


# --------------------------------------------------------------------------------------------------
# score
# --------------------------------------------------------------------------------------------------


def _expected_rows(awk_root: Path, extra: list[Path]) -> dict[str, str]:
    """Every image-named file (links included, folders excluded) below the awkward folder + extras."""
    expected = {}
    for dirpath, _, names in os.walk(awk_root):
        for n in names:
            if is_image_path(n):
                p = os.path.join(dirpath, n)
                rel = Path(p).relative_to(awk_root).as_posix()
                expected[p] = "error" if rel.startswith("broken/") else "ok"
    for p in extra:
        expected[str(p)] = "ok"
    return expected


@pytest.fixture(scope="module")
def scored(awk, model_path, tmp_path_factory):
    root, files = awk
    tmp = tmp_path_factory.mktemp("score")
    extra = [_png(tmp / "single, file.png", 1), _png(tmp / "named.dat", 2)]  # a named file is kept whatever its extension
    out = tmp / "s.csv"
    result = run("score", model_path, root, *extra, "--out", out, "--cache-dir", tmp / "cache")
    return result, out, _expected_rows(root, extra), root, files


def test_score_writes_one_row_per_image_file(scored):
    result, out, expected, root, files = scored
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["path", "prob_fake", "label", "error"] + DIAG
    # exactly one row per image file, paths (commas, quotes, unicode, spaces) round-trip exactly
    assert frame["path"].is_unique
    assert set(frame["path"]) == set(expected)
    assert len(frame) == len(expected) == len(files) - 1 + 2  # folder.jpg is a folder, not a file
    assert 'a, "quoted" name.png' in " ".join(frame["path"])
    assert any("café ünïcode.png" in p for p in frame["path"])
    # the awkward folder's rows come out sorted
    awk_rows = [p for p in frame["path"] if p.startswith(str(root))]
    assert awk_rows == sorted(awk_rows)


def test_score_values_for_good_and_bad_files(scored):
    result, out, expected, root, files = scored
    frame = pd.read_csv(out).set_index("path")
    for path, kind in expected.items():
        row = frame.loc[path]
        if kind == "ok":
            assert 0.0 <= row["prob_fake"] <= 1.0, path
            assert row["label"] in ("real", "fake"), path
            assert pd.isna(row["error"]), path
            assert row["diag__file_size"] == os.path.getsize(path)
        else:
            assert pd.isna(row["prob_fake"]), path
            assert pd.isna(row["label"]), path
            assert isinstance(row["error"], str) and row["error"], path
    assert "decompression bomb" in frame.loc[str(root / "broken/bomb.png"), "error"]
    assert "dangling" in frame.loc[str(root / "broken/links/dangling.jpg"), "error"]


def test_score_labels_follow_the_threshold(scored, model_path):
    _, out, *_ = scored
    frame = pd.read_csv(out).dropna(subset=["prob_fake"])
    t = ForensicModel.load(model_path).threshold
    clear = (frame["prob_fake"] - t).abs() > 1e-5  # the CSV keeps 6 significant digits
    assert clear.sum() >= len(frame) - 1
    expected = np.where(frame["prob_fake"] >= t, "fake", "real")
    assert (frame["label"][clear] == expected[clear.to_numpy()]).all()


def test_score_summary_messages(scored):
    result, out, expected, *_ = scored
    n = len(expected)
    n_bad = sum(v == "error" for v in expected.values())
    frame = pd.read_csv(out)
    n_fake = int((frame["label"] == "fake").sum())
    stdout = flat(result.stdout)
    assert f"scored {n - n_bad} of {n} files: {n_fake} fake, {n - n_bad - n_fake} real" in stdout
    stderr = flat(result.stderr)
    assert f"{n_bad} of {n} files had problems ({n_bad} could not be processed)" in stderr
    assert " x nan" not in stderr
    assert "1 x empty file" in stderr


def test_score_jobs_2_gives_the_same_csv(awk, model_path, tmp_path):
    root, _ = awk
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    run("-q", "score", model_path, root, "--out", one, "--no-cache")
    run("-q", "score", model_path, root, "--out", two, "--no-cache", "--jobs", "2")
    a, b = pd.read_csv(one), pd.read_csv(two)
    assert len(a) > 16  # more than one chunk: the worker pool was used
    pd.testing.assert_frame_equal(a, b)


def test_score_large_file_size_is_not_rounded(model_path, tmp_path):
    big = _png(tmp_path / "big.png", 3, size=700)  # noise does not compress: > 1 MB
    size = big.stat().st_size
    assert size > 1_000_000
    missing = tmp_path / "gone.png"
    os.symlink(tmp_path / "nowhere.png", missing)  # a row without a size makes the column nullable
    out = tmp_path / "s.csv"
    run("-q", "score", model_path, big, missing, "--out", out, "--no-cache")
    frame = pd.read_csv(out, dtype=str).set_index("path")
    assert frame.loc[str(big), "diag__file_size"] == str(size)
    assert frame.loc[str(big), "diag__width"] == "700"
    assert pd.isna(frame.loc[str(missing), "diag__file_size"])


def test_score_exit_code_1_when_nothing_could_be_scored(model_path, tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(b"")
    out = tmp_path / "s.csv"
    result = run("score", model_path, tmp_path / "imgs", "--out", out, ok=False)
    assert result.exit_code == 1
    assert "no image could be scored" in result.stderr
    frame = pd.read_csv(out)
    assert len(frame) == 1 and frame.loc[0, "error"] == "empty file"


def test_quiet_hides_progress(model_path, data, tmp_path):
    loud = run("score", model_path, data / "real", "--out", tmp_path / "a.csv", "--no-cache")
    quiet = run("-q", "score", model_path, data / "real", "--out", tmp_path / "b.csv", "--no-cache")
    assert "scoring" in loud.stderr
    assert quiet.stderr.strip() == ""


def test_progress_without_a_terminal_is_plain_lines(model_path, data, tmp_path):
    """stderr is not a terminal under the runner (as in a log file): each stage says when it starts
    and when it ends, in plain lines, with no bar-drawing control characters."""
    n = len(list((data / "real").iterdir()))
    result = run("score", model_path, data / "real", "--out", tmp_path / "a.csv", "--no-cache")
    lines = result.stderr.splitlines()
    assert f"scoring: 0/{n} (0 %)" in lines
    assert any(line.startswith(f"scoring: {n}/{n} (100 %), 0:00:") and line.endswith(" elapsed") for line in lines)
    assert "\x1b" not in result.stderr and "\r" not in result.stderr


def test_plain_progress_prints_at_most_every_interval():
    from forensics.cli.app import plain_progress

    now = [0.0]
    lines: list[str] = []
    update = plain_progress(lines.append, every=30, clock=lambda: now[0])
    for done in range(0, 101):
        now[0] = done * 1.0  # one item a second
        update("extract", done, 100)
    assert lines == [
        "features: 0/100 (0 %)",
        "features: 30/100 (30 %), 0:00:30 elapsed, about 0:01:10 left",
        "features: 60/100 (60 %), 0:01:00 elapsed, about 0:00:40 left",
        "features: 90/100 (90 %), 0:01:30 elapsed, about 0:00:10 left",
        "features: 100/100 (100 %), 0:01:40 elapsed",
    ]
    update("train", 0, 6)  # a new stage starts its own clock and prints at once
    assert lines[-1] == "cross-validation + fit: 0/6 (0 %)"


# --------------------------------------------------------------------------------------------------
# usage errors: one line on stderr, no traceback, non-zero exit
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def places(data, model_path, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("places")
    (root / "empty").mkdir()
    (root / "not_a_model.skops").write_text("hello")
    make_demo_dataset(root / "onlyreal", n_per_class=3, size=32, seed=1)
    for p in (root / "onlyreal" / "fake").iterdir():
        p.unlink()
    (root / "flat").mkdir()
    _png(root / "flat" / "a.png", 0)
    (root / "outdir").mkdir()
    return {"data": data, "model": model_path, "root": root}


def _usage_cases():
    m, d, r = "{model}", "{data}", "{root}"
    return {
        "score missing model": (["score", f"{r}/nope.skops", d, "--out", f"{r}/s.csv"], 1, r"model file not found"),
        "score not a model": (["score", f"{r}/not_a_model.skops", d, "--out", f"{r}/s.csv"], 1, r"not a forensics model file"),
        "score no images": (["score", m, f"{r}/empty", "--out", f"{r}/s.csv"], 2, r"no image files found"),
        "score missing input": (["score", m, f"{r}/ghost", "--out", f"{r}/s.csv"], 2, r"input not found: .*ghost"),
        "score missing out folder": (["score", m, d, "--out", f"{r}/no/such/s.csv"], 2, r"output folder does not exist"),
        "score out is a folder": (["score", m, d, "--out", f"{r}/outdir"], 2, r"output path is a folder"),
        "extract unknown block": (["extract", d, "--out", f"{r}/f.parquet", "--blocks", "nosuch"], 2,
                                  r"unknown feature block 'nosuch'; known blocks: .*color"),
        "extract missing data": (["extract", f"{r}/ghost", "--out", f"{r}/f.parquet", "--blocks", "color"], 2, r"not found: .*ghost"),
        "extract missing out folder": (["extract", d, "--out", f"{r}/no/f.parquet", "--blocks", "color"], 2, r"output folder does not exist"),
        "extract no images": (["extract", f"{r}/empty", "--out", f"{r}/f.parquet", "--blocks", "color"], 2, r"no image files found"),
        "extract bad --set": (["extract", d, "--out", f"{r}/f.parquet", "--blocks", "color", "--set", "hue_bins=3"], 2,
                              r"--set expects BLOCK.KEY=VALUE"),
        "extract unknown setting": (["extract", d, "--out", f"{r}/f.parquet", "--blocks", "color", "--set", "color.nosuch=1"], 2,
                                    r"unknown setting.*nosuch.*color"),
        "train unknown block": (["train", d, "--model", f"{r}/t.skops", "--blocks", "nosuch"], 2, r"unknown feature block 'nosuch'"),
        "train missing data": (["train", f"{r}/ghost", "--model", f"{r}/t.skops", "--blocks", "color"], 2, r"data not found: .*ghost"),
        "train no class folders": (["train", f"{r}/flat", "--model", f"{r}/t.skops", "--blocks", "color"], 2, r"no real/ or fake/ sub-folder"),
        "train one class": (["train", f"{r}/onlyreal", "--model", f"{r}/t.skops", "--blocks", "color"], 2,
                            r"needs both real and fake images; found only real \(3 (images|files)\)"),
        "train missing model folder": (["train", d, "--model", f"{r}/no/t.skops", "--blocks", "color"], 2, r"folder of --model does not exist"),
        "train model is a folder": (["train", d, "--model", f"{r}/outdir", "--blocks", "color"], 2, r"--model is a folder"),
        "train one fold": (["train", d, "--model", f"{r}/t.skops", "--blocks", "color", "--folds", "1"], 2, r"--folds must be at least 2"),
        "train unknown classifier": (["train", d, "--model", f"{r}/t.skops", "--blocks", "color", "-c", "forest"], 2,
                                     r"unknown classifier 'forest'"),
        "train hybrid without cnn": (["train", d, "--model", f"{r}/t.skops", "--blocks", "color", "-c", "hybrid"], 2,
                                     r"--classifier hybrid fits XGBoost on the handcrafted blocks and a logistic regression on "
                                     r"the cnn block's features; these features have no cnn block: use e.g. --blocks faces,cnn"),
        "train bad max-fpr": (["train", d, "--model", f"{r}/t.skops", "--blocks", "color", "--max-fpr", "1.5"], 2, r"--max-fpr"),
        "train holdout too large": (["train", d, "--model", f"{r}/t.skops", "--blocks", "color", "--holdout", "0.9"], 2,
                                    r"--holdout 0.9 leaves 1 of the 12 (real|fake) images for training"),
        "train holdout out of range": (["train", d, "--model", f"{r}/t.skops", "--blocks", "color", "--holdout", "1"], 2,
                                       r"--holdout must be in \[0, 1\)"),
        "train tune-iter zero": (["train", d, "--model", f"{r}/t.skops", "--blocks", "color", "--tune", "--tune-iter", "0"], 2,
                                 r"--tune-iter must be at least 1"),
        "train tune-folds one": (["train", d, "--model", f"{r}/t.skops", "--blocks", "color", "--tune", "--tune-folds", "1"], 2,
                                 r"--tune-folds must be at least 2"),
        "train tune-iter without tune": (["train", d, "--model", f"{r}/t.skops", "--blocks", "color", "--tune-iter", "5"], 2,
                                         r"--tune-iter and --tune-folds need --tune"),
        "train unknown weights": (["train", d, "--model", f"{r}/t.skops", "--blocks", "color", "--weights", "inverse"], 2,
                                  r"unknown weights 'inverse'; choose one of balanced, none"),
        "train tune with warm start": (["train", d, "--model", f"{r}/t.skops", "--tune", "--warm-start", m], 2,
                                       r"--tune cannot be combined with --warm-start"),
    }


@pytest.mark.parametrize("case", list(_usage_cases()))
def test_usage_errors_are_one_line_messages(case, places):
    args, code, pattern = _usage_cases()[case]
    fmt = {"model": places["model"], "data": places["data"], "root": places["root"]}
    args = [a.format(**fmt) for a in args]
    before = sorted(p.name for p in places["root"].iterdir())
    result = runner.invoke(app, args)
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)  # handled, not a crash
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert re.search(pattern, lines[0]), lines[0]
    assert sorted(p.name for p in places["root"].iterdir()) == before  # nothing written


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_folder(model_path, data, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = runner.invoke(app, ["score", str(model_path), str(data), "--out", str(locked / "s.csv")])
    finally:
        locked.chmod(0o700)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith("error: cannot write to")


def test_debug_lets_the_exception_through(tmp_path, data):
    args = ["score", str(tmp_path / "nope.skops"), str(data), "--out", str(tmp_path / "s.csv")]
    plain = runner.invoke(app, args)
    assert isinstance(plain.exception, SystemExit) and plain.exit_code == 1
    debug = runner.invoke(app, ["--debug", *args])
    assert type(debug.exception).__name__ == "ModelFileError"
    assert debug.exit_code == 1
    # the flag does not stick to later invocations
    again = runner.invoke(app, args)
    assert isinstance(again.exception, SystemExit)


def test_debug_shows_the_traceback_in_a_real_process(tmp_path, data):
    cmd = [sys.executable, "-c", "from forensics.cli import main; main()"]
    args = ["score", str(tmp_path / "nope.skops"), str(data), "--out", str(tmp_path / "s.csv")]
    env = {**os.environ, "COLUMNS": "200"}
    plain = subprocess.run(cmd + args, capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == 1
    assert "Traceback" not in plain.stderr
    assert plain.stderr.strip().splitlines() == [f"error: model file not found: {tmp_path / 'nope.skops'}"]
    debug = subprocess.run(cmd + ["--debug"] + args, capture_output=True, text=True, env=env, timeout=120)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "forensics.errors.ModelFileError: model file not found" in debug.stderr


def test_no_option_help_loses_text_to_rich_markup():
    """Typer renders help with rich: an unescaped "[...]" is taken for markup and vanishes."""
    import typer.main

    group = typer.main.get_command(app)
    bad = []
    for name, command in group.commands.items():
        for param in command.params:
            text = getattr(param, "help", None) or ""
            bad += [f"{name} {param.name}" for m in re.finditer(r"\[", text) if m.start() == 0 or text[m.start() - 1] != "\\"]
    assert not bad
    r = runner.invoke(app, ["extract", "--help"], env={"COLUMNS": "200"})
    assert "default: the user cache folder" in r.stdout


def test_command_help_is_not_cut_mid_sentence():
    """Typer's rich mode keeps every source line break of a docstring: help paragraphs must be one line."""
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        for paragraph in (command.help or "").split("\n\n"):
            assert paragraph.startswith("\b") or "\n" not in paragraph, (name, paragraph)
    r = runner.invoke(app, ["--help"], env={"COLUMNS": "250"})
    assert r.exit_code == 0
    assert "optionally crop the face, score each frame with the image model, and aggregate" in r.stdout
    r = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "250"})
    assert "scores the final model once on an untouched test split" in r.stdout
