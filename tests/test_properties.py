"""Property-based tests (hypothesis): the loader never fails with anything but ImageLoadError, decodes
every valid image to uint8 RGB of the right shape, and every default block gives finite features of
the advertised length on any image array, however small, thin or oddly typed.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from forensics.errors import ImageLoadError
from forensics.features.base import ImageViews, get_block, resolve_blocks
from forensics.loading import array_to_rgb8, load_image_bytes

#: A fuzzed header may declare any size: keep what the loader is allowed to decode small.
FUZZ_MAX_PIXELS = 1 << 20

COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------------------------------
# Loader on garbage
# --------------------------------------------------------------------------------------------------


def _check_garbage(data: bytes) -> None:
    try:
        img = load_image_bytes(data, max_pixels=FUZZ_MAX_PIXELS)
    except ImageLoadError:
        return  # the only acceptable failure (DecompressionBombError is a subclass)
    # Some garbage happens to be a valid image (e.g. a truncated PNG Pillow pads): then it must be usable.
    assert img.rgb.dtype == np.uint8 and img.rgb.ndim == 3 and img.rgb.shape[2] == 3
    assert img.rgb.shape[0] * img.rgb.shape[1] <= FUZZ_MAX_PIXELS


@settings(max_examples=200, **COMMON)
@given(st.binary(max_size=2048))
def test_loader_on_random_bytes_raises_only_image_load_errors(data):
    _check_garbage(data)


# Valid files to corrupt: every container the loader claims to read, in a few modes.
_SEEDS = []
for _fmt, _mode in [("PNG", "RGB"), ("PNG", "P"), ("PNG", "I;16"), ("JPEG", "RGB"), ("JPEG", "CMYK"), ("GIF", "P"),
                    ("WEBP", "RGBA"), ("BMP", "RGB"), ("TIFF", "F"), ("TIFF", "RGB")]:
    _rgb = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    _img = Image.fromarray(_rgb)
    if _mode == "I;16":
        _img = Image.fromarray((_rgb[:, :, 0].astype(np.uint16) * 257))
    elif _mode == "F":
        _img = Image.fromarray(_rgb[:, :, 0].astype(np.float32) / 255.0)
    elif _mode != "RGB":
        _img = _img.convert(_mode)
    _buf = io.BytesIO()
    if _fmt == "GIF":
        _img.save(_buf, format="GIF", save_all=True, append_images=[_img.rotate(90)])  # two frames
    else:
        _img.save(_buf, format=_fmt)
    _SEEDS.append(_buf.getvalue())


@st.composite
def corrupted_images(draw):
    data = bytearray(draw(st.sampled_from(_SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "zero"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "zero":
            data[pos : pos + 4] = b"\xff\xff\xff\xff"  # large values in length and size fields
    return bytes(data)


@settings(max_examples=400, **COMMON)
@given(corrupted_images())
def test_loader_on_corrupted_images_raises_only_image_load_errors(data):
    _check_garbage(data)


# --------------------------------------------------------------------------------------------------
# Loader on valid images
# --------------------------------------------------------------------------------------------------

#: Pixel modes each container can write (as Pillow does it) and the mode the file reads back in.
_MODES = {
    "PNG": ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"],
    "JPEG": ["L", "RGB", "CMYK"],
    "WEBP": ["RGB", "RGBA"],
    "BMP": ["1", "L", "P", "RGB"],
    "TIFF": ["1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "F"],
    "GIF": ["L", "P"],
}


def _make(mode: str, h: int, w: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    if mode == "F":
        return Image.fromarray(rng.random((h, w), dtype=np.float32) * rng.choice([1.0, 300.0]))
    if mode in ("RGBA", "LA"):
        rgba = np.dstack([rgb, rng.integers(0, 256, (h, w), dtype=np.uint8)])
        return Image.fromarray(rgba).convert(mode)
    return Image.fromarray(rgb).convert(mode)


@st.composite
def encoded_images(draw):
    fmt = draw(st.sampled_from(sorted(_MODES)))
    mode = draw(st.sampled_from(_MODES[fmt]))
    h = draw(st.integers(1, 64))
    w = draw(st.integers(1, 64))
    img = _make(mode, h, w, draw(st.integers(0, 2**31)))
    kwargs = {}
    orientation = 1
    if fmt == "JPEG":
        kwargs["quality"] = draw(st.integers(30, 100))
        orientation = draw(st.integers(1, 8))
        if orientation != 1:
            exif = Image.Exif()
            exif[0x0112] = orientation
            kwargs["exif"] = exif.tobytes()
    elif fmt == "WEBP":
        kwargs["lossless"] = draw(st.booleans())
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    shape = (w, h) if orientation >= 5 else (h, w)  # orientations 5-8 transpose the picture
    return buf.getvalue(), shape, fmt, mode


@settings(max_examples=150, **COMMON)
@given(encoded_images())
def test_valid_images_decode_to_uint8_rgb_of_their_size(case):
    data, (h, w), fmt, mode = case
    img = load_image_bytes(data)
    assert img.rgb.shape == (h, w, 3), (fmt, mode)
    assert img.rgb.dtype == np.uint8
    assert img.rgb.flags.c_contiguous
    assert img.format == fmt
    assert img.file_size == len(data)


# --------------------------------------------------------------------------------------------------
# Blocks on any array
# --------------------------------------------------------------------------------------------------

DEFAULT_BLOCKS = resolve_blocks("default")
_DTYPES = [np.uint8, np.uint16, np.int32, np.float32, np.float64, np.bool_]


@st.composite
def image_arrays(draw):
    shape_kind = draw(st.sampled_from(["any", "thin_row", "thin_col", "tiny", "square"]))
    if shape_kind == "thin_row":
        h, w = draw(st.integers(1, 3)), draw(st.integers(1, 300))
    elif shape_kind == "thin_col":
        h, w = draw(st.integers(1, 300)), draw(st.integers(1, 3))
    elif shape_kind == "tiny":
        h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    elif shape_kind == "square":
        h = w = draw(st.integers(1, 300))
    else:
        h, w = draw(st.integers(1, 300)), draw(st.integers(1, 300))
    channels = draw(st.sampled_from([None, 1, 3, 4]))
    dtype = draw(st.sampled_from(_DTYPES))
    content = draw(st.sampled_from(["noise", "constant", "binary", "gradient", "extreme"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    shape = (h, w) if channels is None else (h, w, channels)
    if content == "noise":
        base = rng.random(shape)
    elif content == "constant":
        base = np.full(shape, draw(st.sampled_from([0.0, 0.5, 1.0])))
    elif content == "binary":
        base = (rng.random(shape) > 0.5).astype(np.float64)
    elif content == "gradient":
        base = np.broadcast_to(np.linspace(0, 1, w)[None, :] if channels is None else np.linspace(0, 1, w)[None, :, None], shape).copy()
    else:  # values outside the nominal range, and NaN/inf for floats
        base = rng.choice([-5.0, 0.0, 1.0, 7.0], size=shape)
    if dtype == np.bool_:
        arr = base > 0.5
    elif np.issubdtype(dtype, np.floating):
        arr = base.astype(dtype)
        if content == "extreme":
            arr.flat[0] = np.nan
            arr.flat[-1] = np.inf
    else:
        info = np.iinfo(dtype)
        arr = np.clip(np.rint(base * min(info.max, 65535)), 0, info.max).astype(dtype)
    return arr


@settings(max_examples=100, **COMMON)
@given(image_arrays())
def test_every_default_block_gives_finite_features_of_the_right_length(arr):
    rgb = array_to_rgb8(arr)
    assert rgb.shape == (*arr.shape[:2], 3) and rgb.dtype == np.uint8
    views = ImageViews(rgb)  # shared, as the batch runner does
    for name in DEFAULT_BLOCKS:
        block = get_block(name)
        vec = block.compute(views)
        assert vec.shape == (len(block.feature_names()),), name
        bad = np.flatnonzero(~np.isfinite(vec))
        assert bad.size == 0, f"{name} gives non-finite {[block.feature_names()[i] for i in bad[:5]]} on {arr.shape} {arr.dtype}"


@pytest.mark.parametrize("shape", [(1, 1), (1, 300), (300, 1), (2, 2), (1, 2, 3), (3, 1, 4)])
def test_blocks_on_the_thinnest_shapes(shape):
    # The corners hypothesis might not draw every time: always checked.
    rgb = array_to_rgb8(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8))
    views = ImageViews(rgb)
    for name in DEFAULT_BLOCKS:
        vec = get_block(name).compute(views)
        assert np.isfinite(vec).all(), name
