"""The optional ``cnn`` block without its extra: registry entry, names, preprocessing, and the
one-line error when torch is missing. These run whether or not ``forensics[cnn]`` is installed
(the block's own tests, which need torch, are in test_block_cnn.py).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from forensics.cli import app
from forensics.errors import UsageError
from forensics.features import feature_names, get_block, resolve_blocks
from forensics.features.cnn import INSTALL_HINT, preprocess

HINT = "pip install 'forensics[cnn]'"


def test_registered_outside_every_preset():
    block = get_block("cnn")
    assert block.presets == ()
    assert "cnn" not in resolve_blocks("default") and "cnn" not in resolve_blocks("fast")
    assert block.requires[0] == "torch"
    assert block.install_hint == INSTALL_HINT == HINT
    assert block.card_info is not None
    assert block.cost == "high"


def test_names_come_from_settings_alone():
    names = get_block("cnn").feature_names()
    assert len(names) == 1280 and names[0] == "cnn__0000" and names[-1] == "cnn__1279"
    assert get_block("cnn").feature_names({"dim": 8, "onnx_path": "/nowhere/mine.onnx"}) == [f"cnn__000{i}" for i in range(8)]
    wide = get_block("cnn").feature_names({"dim": 10001})
    assert wide[0] == "cnn__00000" and wide[-1] == "cnn__10000" and len(set(wide)) == 10001
    for bad in (0, -3, 1.5, "8", True):
        with pytest.raises(ValueError, match="dim"):
            get_block("cnn").feature_names({"dim": bad})


def test_stage_names_and_their_settings_come_from_settings_alone():
    names = get_block("cnn").feature_names({"layers": "stages"})
    assert len(names) == len(set(names)) == 3 * (24 + 40 + 80 + 112 + 320) == 1728
    assert names[:2] == ["cnn__b02_mean_000", "cnn__b02_mean_001"]
    assert names[24] == "cnn__b02_std_000" and names[48] == "cnn__b02_max_000" and names[-1] == "cnn__b15_max_319"
    assert get_block("cnn").feature_names({"layers": "stages", "dim": 1280}) == names  # the default dim is no setting
    assert get_block("cnn").settings_key({"layers": "stages"}) != get_block("cnn").settings_key()
    with pytest.raises(ValueError, match="layers must be one of last, stages, grid"):
        get_block("cnn").feature_names({"layers": "mid"})
    with pytest.raises(ValueError, match="cannot be used with onnx_path"):
        get_block("cnn").feature_names({"layers": "stages", "onnx_path": "/nowhere/mine.onnx", "dim": 8})
    with pytest.raises(ValueError, match="1728 fixed features, leave dim unset"):
        get_block("cnn").feature_names({"layers": "stages", "dim": 8})


def test_grid_names_and_their_settings_come_from_settings_alone():
    names = get_block("cnn").feature_names({"layers": "grid"})
    assert len(names) == len(set(names)) == 9 * 112 == 1008
    assert names[:2] == ["cnn__g00_std_000", "cnn__g00_std_001"]
    assert names[112] == "cnn__g01_std_000" and names[-1] == "cnn__g22_std_111"
    assert get_block("cnn").settings_key({"layers": "grid"}) not in (get_block("cnn").settings_key(), get_block("cnn").settings_key({"layers": "stages"}))
    with pytest.raises(ValueError, match="layers=grid summarises .* cannot be used with onnx_path"):
        get_block("cnn").feature_names({"layers": "grid", "onnx_path": "/nowhere/mine.onnx", "dim": 8})
    with pytest.raises(ValueError, match="1008 fixed features, leave dim unset"):
        get_block("cnn").feature_names({"layers": "grid", "dim": 8})


def test_preprocess_crops_the_centre_and_scales_like_the_weights():
    x = preprocess(np.full((300, 500, 3), 255, np.uint8))
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    assert np.allclose(x, (255 - 127) / 128)
    # A wide image whose outer columns are black: the centred square (0.875 of the height) never sees them.
    img = np.full((200, 400, 3), 200, np.uint8)
    img[:, :100] = 0
    img[:, 300:] = 0
    assert np.allclose(preprocess(img), (200 - 127) / 128)
    # crop_fraction=1 keeps the whole shorter side; a 1x1 image is enlarged, not refused.
    assert preprocess(np.zeros((1, 1, 3), np.uint8), crop_fraction=1.0).shape == (3, 224, 224)
    for bad in (0, 1.5, -0.1):
        with pytest.raises(ValueError, match="crop_fraction"):
            preprocess(img, crop_fraction=bad)


@pytest.fixture
def no_torch(monkeypatch):
    """Pretend that torch is not installed."""
    real = importlib.util.find_spec

    def fake(name, *args, **kwargs):
        if name == "torch" or name.startswith("torch."):
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake)


@pytest.mark.parametrize("spec", ["cnn", "default,cnn"])
def test_missing_torch_is_a_one_line_usage_error(no_torch, spec):
    with pytest.raises(UsageError) as info:
        resolve_blocks(spec)
    msg = str(info.value)
    assert "\n" not in msg
    assert "block 'cnn' needs torch" in msg and HINT in msg
    assert resolve_blocks("default")  # the rest keeps working


@pytest.mark.parametrize("command", ["extract", "train"])
def test_cli_without_torch_says_how_to_install(no_torch, tmp_path, command):
    for label in ("real", "fake"):
        for i in range(2):
            (tmp_path / label).mkdir(exist_ok=True)
            Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(tmp_path / label / f"{i}.png")
    out = ["--out", tmp_path / "f.parquet"] if command == "extract" else ["--model", tmp_path / "m.skops"]
    result = CliRunner().invoke(app, [command, str(tmp_path), *map(str, out), "--blocks", "default,cnn", "--no-cache"])
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    assert HINT in " ".join(result.stderr.split())
    assert not (tmp_path / "f.parquet").exists() and not (tmp_path / "m.skops").exists()


def test_nothing_imported_by_default_pulls_in_torch():
    code = (
        "import sys\n"
        "import forensics, forensics.api, forensics.cli, forensics.model, forensics.extraction\n"
        "from forensics.features import get_block, all_blocks\n"
        "assert 'cnn' in all_blocks() and len(get_block('cnn').feature_names()) == 1280\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'onnx', 'efficientnet_lite_pytorch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
