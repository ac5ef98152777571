"""Tests of the ``layout`` block (each grid cell's noise, detail, recompression error and colour
against the picture's median cell).

Golden baseline: ``FORENSICS_REGEN_GOLDEN=1 pytest tests/test_block_layout.py`` rewrites
``tests/golden/layout.csv``; the ``ela`` map depends on the libjpeg(-turbo) bundled with OpenCV.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.ndimage import median_filter
from skimage import data

from forensics.features import ImageViews, get_block, resolve_blocks
from forensics.features.layout import MAPS, layout_features, layout_names
from block_utils import assert_input_kinds_agree
from golden_utils import check_golden

BLOCK = "layout"
N_DEFAULT = len(MAPS) * 32  # 8 rows of 4 pairs of mirror cells


def _feats(image, **settings) -> dict[str, float]:
    return dict(zip(layout_names(**settings), layout_features(image, **settings)))


def _map(image, name, **settings) -> np.ndarray:
    """One map's cells as a (cells, cells) array, each cell on its own (``mirror=False``)."""
    cells = settings.get("cells", 8)
    f = _feats(image, mirror=False, **settings)
    return np.array([[f[f"{name}__r{i}c{j}"] for j in range(cells)] for i in range(cells)])


def noise(shape=(64, 64), seed=0, sigma=None, base=128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if sigma is None:
        return rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    return np.clip(base + rng.normal(0, sigma, (*shape, 3)), 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


# --------------------------------------------------------------------------------------------------
# Contract
# --------------------------------------------------------------------------------------------------


def test_in_the_default_preset_after_cooc():
    default = resolve_blocks("default")
    assert default.index(BLOCK) == default.index("cooc") + 1
    assert BLOCK in resolve_blocks("faces") and BLOCK not in resolve_blocks("fast")


@pytest.mark.parametrize(
    "settings, n",
    [({}, N_DEFAULT), ({"mirror": False}, len(MAPS) * 64), ({"cells": 4}, len(MAPS) * 8), ({"cells": 5}, len(MAPS) * 15),
     ({"cells": 2, "max_size": 64, "mirror": False}, len(MAPS) * 4)],
)
def test_length_matches_names(settings, n, astronaut):
    names = layout_names(**settings)
    assert len(names) == n == len(set(names))
    assert layout_features(astronaut[:80, :90], **settings).shape == (n,)


def test_registry_names_prefixed_and_encode_position():
    names = get_block(BLOCK).feature_names()
    assert len(names) == N_DEFAULT and all(n.startswith("layout__") for n in names)
    assert names[:5] == ["layout__res__r0c0c7", "layout__res__r0c1c6", "layout__res__r0c2c5", "layout__res__r0c3c4", "layout__res__r1c0c7"]
    assert names[31] == "layout__res__r7c3c4" and names[-1] == "layout__b__r7c3c4"
    assert get_block(BLOCK).feature_names({"cells": 3})[-2:] == ["layout__b__r2c0c2", "layout__b__r2c1"]  # odd grid: the middle column alone
    own = get_block(BLOCK).feature_names({"mirror": False})
    assert own[0] == "layout__res__r0c0" and own[63] == "layout__res__r7c7" and own[-1] == "layout__b__r7c7"


@pytest.mark.parametrize(
    "settings",
    [{"cells": 1}, {"cells": 17}, {"cells": 4.0}, {"cells": True}, {"max_size": 8}, {"max_size": "512"}, {"mirror": "yes"}, {"mirror": 1}],
)
def test_bad_settings_raise_naming_the_parameter(settings):
    key = next(iter(settings))
    with pytest.raises(ValueError, match=key):
        layout_features(noise((16, 16)), **settings)
    with pytest.raises(ValueError, match=key):
        layout_names(**settings)


@pytest.mark.parametrize(
    "image",
    [np.full((40, 50, 3), 93, np.uint8), np.zeros((1, 1, 3), np.uint8), noise((2, 3)), noise((7, 300)),
     noise((32, 32)), noise((2000, 1500), seed=2)],
    ids=["constant", "1x1", "2x3", "7x300", "32x32", "2000x1500"],
)
def test_finite_on_awkward_images(image):
    out = layout_features(image)
    assert out.shape == (N_DEFAULT,) and np.isfinite(out).all()


def test_constant_image_is_all_zero():
    np.testing.assert_array_equal(layout_features(np.full((64, 48, 3), (200, 30, 90), np.uint8)), 0.0)


def test_path_array_loaded_and_views_agree(tmp_path, astronaut):
    assert_input_kinds_agree(layout_features, BLOCK, astronaut[100:200, 150:270], tmp_path)


# --------------------------------------------------------------------------------------------------
# Behaviour
# --------------------------------------------------------------------------------------------------


def test_every_map_is_relative_to_the_median_cell(astronaut):
    f = layout_features(astronaut, mirror=False).reshape(len(MAPS), 64)
    np.testing.assert_allclose(np.median(f, axis=1), 0.0, atol=1e-12)
    assert (f.std(axis=1) > 0.01).all()  # a real photo's cells differ on every map


def test_invariant_to_the_overall_noise_and_colour_level():
    """Tinting the whole picture, or doubling its noise everywhere, barely moves a cell: the values
    are relative to the picture's own median cell. (CIELAB is not linear in RGB, so a tint moves
    the colour cells a little.)"""
    rng = np.random.default_rng(3)
    ramp = rng.normal(0, 1, (96, 96, 3)) * np.linspace(2, 12, 96)[None, :, None]  # noise grows to the right
    u8 = lambda x: np.clip(x, 0, 255).round().astype(np.uint8)
    names = layout_names(mirror=False)
    idx = lambda maps: [names.index(f"{m}__r{i}c{j}") for m in maps for i in range(8) for j in range(8)]
    base = layout_features(u8(100 + ramp), mirror=False)
    a = dict(zip(names, base))
    assert all(a[f"res__r{i}c7"] - a[f"res__r{i}c0"] > 1.0 for i in range(8))
    tinted = layout_features(u8(100 + ramp + (20, 5, -10)), mirror=False)
    np.testing.assert_allclose(tinted[idx(("res", "kb", "res_cr", "res_cb"))], base[idx(("res", "kb", "res_cr", "res_cb"))], atol=0.06)
    np.testing.assert_allclose(tinted[idx(("a", "b"))], base[idx(("a", "b"))], atol=0.2)
    louder = layout_features(u8(100 + 2 * ramp), mirror=False)
    np.testing.assert_allclose(louder[idx(("res", "kb"))], base[idx(("res", "kb"))], atol=0.1)


def test_a_pasted_smooth_patch_shows_at_its_cells():
    """A 16 x 16 blurred square pasted into a noisy picture lowers the noise maps at its own cells
    (rows 2-3, columns 4-5 of 8 on a 64 px picture) against the untouched picture, and barely moves
    the others."""
    img = noise((64, 64), seed=4, sigma=8)
    pasted = img.copy()
    pasted[16:32, 32:48] = cv2.GaussianBlur(img[16:32, 32:48], (0, 0), 2.0)
    at = [2 * 8 + 4, 2 * 8 + 5, 3 * 8 + 4, 3 * 8 + 5]
    for m in ("res", "kb", "sharp"):
        d = (_map(pasted, m) - _map(img, m)).ravel()
        assert d[at].max() < -1.5, (m, d[at])
        assert np.abs(np.delete(d, at)).max() < 0.15, (m, np.abs(np.delete(d, at)).max())


def test_a_recompressed_patch_shows_in_the_ela_map():
    """A square saved at JPEG quality 60 inside an uncompressed noisy picture changes less on
    recompression at 90 than the rest of it."""
    img = noise((64, 64), seed=5, sigma=20)
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 60])
    jpeg = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    img[32:64, 0:32] = jpeg[32:64, 0:32]  # on the 8x8 grid: bottom-left quarter
    g = _map(img, "ela")
    assert g[4:, :4].max() < g[:4, 4:].min()


def test_a_colour_shift_shows_in_a_and_b(astronaut):
    img = astronaut[:256, :256].copy()
    patch = img[0:32, 224:256].astype(np.int16) + (40, -20, 0)  # redder, less green: top-right cell
    img[0:32, 224:256] = np.clip(patch, 0, 255).astype(np.uint8)
    ref, shifted = _map(astronaut[:256, :256], "a"), _map(img, "a")
    d = shifted - ref
    assert d[0, 7] > 10 and np.abs(np.delete(d.ravel(), 7)).max() < 1.5


def test_cells_match_a_direct_computation(astronaut):
    """The ``res`` map against scipy's median filter and plain block means (64 px cells)."""
    img = astronaut[:256, :256]
    y = cv2.cvtColor(img.astype(np.float32), cv2.COLOR_RGB2YCrCb)[:, :, 0]
    res = np.abs(y - median_filter(y, 3, mode="reflect"))
    cells = np.log(res.reshape(4, 64, 4, 64).mean(axis=(1, 3)) + 0.05)
    np.testing.assert_allclose(_map(img, "res", cells=4), cells - np.median(cells), atol=2e-3)


def test_large_pictures_are_shrunk_whole_not_cropped(astronaut):
    """A 1024 px picture gives what its 512 px area-shrunk copy gives: the whole frame is kept."""
    big = cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    small = cv2.resize(big, (512, 512), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(layout_features(big), layout_features(small), atol=1e-9)
    wide = layout_features(np.ascontiguousarray(big[:, :]), max_size=256)
    assert wide.shape == (N_DEFAULT,) and np.isfinite(wide).all()


def test_mirror_averages_each_cell_with_its_mirror_cell(astronaut):
    """``mirror=True`` (the default) is the mean of each cell and the cell across the vertical midline,
    from the sides in; the middle column of an odd grid is kept as it is."""
    img = astronaut[:200, :200]
    for cells in (8, 5):
        own = layout_features(img, cells=cells, mirror=False).reshape(len(MAPS), cells, cells)
        half = (cells + 1) // 2
        expected = ((own + own[:, :, ::-1]) / 2)[:, :, :half]
        np.testing.assert_allclose(layout_features(img, cells=cells).reshape(len(MAPS), cells, half), expected, atol=1e-12)
    f = _feats(img, cells=5)
    assert f["res__r1c2"] == pytest.approx(_map(img, "res", cells=5)[1, 2], abs=1e-12)


def test_mirror_image_gives_the_same_features(astronaut):
    """The picture and its mirror image give the same values (the JPEG round trip of the ``ela`` map
    is not exactly mirror-symmetric: chroma subsampling and rounding)."""
    img = astronaut[:256, :256]
    a, b = layout_features(img), layout_features(np.ascontiguousarray(img[:, ::-1]))
    ela = np.array([n.startswith("ela__") for n in layout_names()])
    np.testing.assert_allclose(a[~ela], b[~ela], atol=1e-4)
    np.testing.assert_allclose(a[ela], b[ela], atol=0.05)
    own, own_flipped = layout_features(img, mirror=False), layout_features(np.ascontiguousarray(img[:, ::-1]), mirror=False)
    assert np.abs(own - own_flipped).max() > 0.5  # without the mirror, position left or right counts


def test_a_patch_on_the_left_or_on_the_right_looks_alike():
    """The same blurred square pasted at the left or at the mirror position on the right moves the
    same pair of cells by the same amount: a classifier learns one rule for both eyes."""
    half = noise((64, 32), seed=4, sigma=8)
    img = np.ascontiguousarray(np.concatenate([half, half[:, ::-1]], axis=1))  # a mirror-symmetric picture
    left, right = img.copy(), img.copy()
    left[16:32, 8:24] = cv2.GaussianBlur(img[16:32, 8:24], (0, 0), 2.0)  # rows 2-3, columns 1-2
    right[16:32, 40:56] = cv2.GaussianBlur(img[16:32, 40:56], (0, 0), 2.0)  # columns 5-6, their mirror cells
    f0, fl, fr = _feats(img), _feats(left), _feats(right)
    for cell in ("r2c1c6", "r2c2c5", "r3c1c6", "r3c2c5"):
        dl, dr = fl[f"res__{cell}"] - f0[f"res__{cell}"], fr[f"res__{cell}"] - f0[f"res__{cell}"]
        assert dl < -0.7 and dl == pytest.approx(dr, abs=1e-6), (cell, dl, dr)
    assert abs(fl["res__r5c0c7"] - f0["res__r5c0c7"]) < 0.15
    own_l, own_r = _map(left, "res"), _map(right, "res")
    assert own_l[2, 1] - own_r[2, 1] < -0.7  # each cell on its own tells the sides apart


def golden_inputs() -> dict[str, np.ndarray]:
    return {
        "noise64_seed12345": np.random.default_rng(12345).integers(0, 256, (64, 64, 3), dtype=np.uint8),
        "astronaut128": np.ascontiguousarray(data.astronaut()[60:188, 170:298]),
        "coffee_100x150": np.ascontiguousarray(data.coffee()[100:200, 200:350]),
    }


def test_golden_values():
    check_golden(BLOCK, golden_inputs(), layout_features, layout_names())


def test_shares_the_ela_blocks_recompression(monkeypatch, astronaut):
    """On shared views, ``ela`` (qualities 95, 90, 75) and ``layout`` (90) encode three JPEGs, not four;
    the cached error image is read-only, so no block can change what another one reads."""
    img = astronaut[:128, :128]
    calls = []
    real = cv2.imencode
    monkeypatch.setattr(cv2, "imencode", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    views = ImageViews(img)
    ela, lay = get_block("ela").compute(views), get_block(BLOCK).compute(views)
    assert len(calls) == 3
    np.testing.assert_array_equal(lay, layout_features(img))
    np.testing.assert_array_equal(ela, get_block("ela").compute(img))
    with pytest.raises(ValueError):
        views.jpeg_error(90)[0, 0, 0] = 1
