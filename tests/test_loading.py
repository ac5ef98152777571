"""forensics.loading over a folder of awkward files (see tests/awkward.py)."""

from __future__ import annotations

import hashlib
import io
import math
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from forensics.errors import DecompressionBombError, ImageLoadError
from forensics.loading import (
    LoadedImage,
    array_to_rgb8,
    as_loaded,
    estimate_jpeg_quality,
    is_image_path,
    load_image,
    load_image_bytes,
)

sys.path.insert(0, str(Path(__file__).parent))
import awkward  # noqa: E402  (a helper module next to the tests, not a package)

#: Message each "error" file must give (regular expression), and the exception it must raise.
ERRORS = {
    "broken/empty.jpg": (ImageLoadError, r"empty file"),
    "broken/truncated.jpg": (ImageLoadError, r"truncated"),
    "broken/notes.png": (ImageLoadError, r"not a recognised image format"),
    "broken/bomb.png": (DecompressionBombError, r"40000x40000 .*over the limit.*not decoded"),
    "broken/links/dangling.jpg": (ImageLoadError, r"not found \(or a dangling link\)"),
    "broken/folder.jpg": (ImageLoadError, r"is a directory"),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("awkward")
    return root, awkward.make_awkward_folder(root)


def test_fixture_lists_every_file(folder):
    root, files = folder
    assert {rel for rel, e in files.items() if e == "error"} == set(ERRORS)
    assert {rel for rel, e in files.items() if e == "ok"} == set(awkward.EXPECTED_SHAPES)
    assert (root / "broken/links/dangling.jpg").is_symlink()
    assert not (root / "broken/links/dangling.jpg").exists()
    assert (root / "broken/folder.jpg").is_dir()
    assert (root / "broken/bomb.png").stat().st_size < 1000


@pytest.mark.parametrize("rel", sorted(awkward.EXPECTED_SHAPES))
def test_ok_files_load_as_rgb8(folder, rel):
    root, _ = folder
    img = load_image(root / rel)
    h, w = awkward.EXPECTED_SHAPES[rel]
    assert img.rgb.shape == (h, w, 3)
    assert img.rgb.dtype == np.uint8
    assert img.rgb.flags.c_contiguous
    assert (img.height, img.width) == (h, w)
    data = (root / rel).read_bytes()
    assert img.file_size == len(data)
    assert img.sha256 == hashlib.sha256(data).hexdigest()
    assert img.path == str(root / rel)
    # Same pixels and provenance from the bytes.
    from_bytes = load_image_bytes(data)
    np.testing.assert_array_equal(from_bytes.rgb, img.rgb)
    assert (from_bytes.format, from_bytes.mode, from_bytes.sha256) == (img.format, img.mode, img.sha256)


@pytest.mark.parametrize("rel", sorted(ERRORS))
def test_error_files_raise_a_clear_error(folder, rel):
    root, _ = folder
    exc_type, message = ERRORS[rel]
    with pytest.raises(exc_type, match=message):
        load_image(root / rel)


def test_missing_file(tmp_path):
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "nope.jpg")


@pytest.mark.parametrize("data", [b"", b"\x00" * 10, b"GIF89a", b"\xff\xd8\xff"])
def test_bad_bytes(data):
    with pytest.raises(ImageLoadError):
        load_image_bytes(data)


def test_bomb_refused_fast_without_allocating(folder):
    root, _ = folder
    data = (root / "broken/bomb.png").read_bytes()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    tracemalloc.start()
    try:
        start = time.perf_counter()
        with pytest.raises(DecompressionBombError):
            load_image(root / "broken/bomb.png")
        with pytest.raises(DecompressionBombError):
            load_image_bytes(data)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert elapsed < 0.5, f"bomb refusal took {elapsed:.3f} s"
    assert peak < 50e6, f"peak Python allocation {peak / 1e6:.1f} MB"
    assert rss_growth_mb < 200, f"peak RSS grew by {rss_growth_mb:.0f} MB"  # 40000^2 RGB would be 4.8 GB


def test_bomb_is_an_image_load_error():
    # A batch that catches ImageLoadError also catches bombs.
    with pytest.raises(ImageLoadError):
        load_image_bytes(awkward.bomb_png_bytes())


def test_max_pixels_limit_and_opt_out(folder):
    root, _ = folder
    path = root / "photos/astronaut.jpg"
    with pytest.raises(DecompressionBombError, match=r"48x48 = 2304 pixels, over the limit of 2303"):
        load_image(path, max_pixels=48 * 48 - 1)
    assert load_image(path, max_pixels=48 * 48).rgb.shape == (48, 48, 3)
    assert load_image(path, max_pixels=None).rgb.shape == (48, 48, 3)


def test_exif_orientation_applied(folder):
    root, _ = folder
    path = root / "photos/phone/exif_rotated.jpg"
    with Image.open(path) as raw:
        assert raw.getexif().get(0x0112) == 6
        stored = np.asarray(raw.convert("RGB"))
    assert stored.shape[:2] == awkward.EXIF_STORED_HW
    img = load_image(path)
    # Orientation 6: the stored picture is displayed rotated 90 degrees clockwise.
    np.testing.assert_array_equal(img.rgb, np.rot90(stored, k=-1))


def test_16bit_scaled_by_bit_depth(folder):
    root, _ = folder
    img = load_image(root / "formats/deep/gray16.png")
    assert img.mode.startswith("I;16")
    assert img.rgb[0, :4, 0].tolist() == [255, 100, 0, 1]  # 65535, 257*100, 0, 200
    assert (img.rgb[..., 0] == img.rgb[..., 1]).all() and (img.rgb[..., 0] == img.rgb[..., 2]).all()


def test_dark_16bit_image_stays_dark():
    # The scale comes from the bit depth, not from the content: 16-bit values <= 255 are near black.
    arr = np.arange(256, dtype=np.uint16).reshape(16, 16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    rgb = load_image_bytes(buf.getvalue()).rgb
    assert rgb.max() == 1
    np.testing.assert_array_equal(rgb[..., 0], np.rint(arr / 257.0).astype(np.uint8))


def test_float_tiff_in_unit_range_scaled_by_255(folder):
    root, _ = folder
    img = load_image(root / "formats/deep/float.tif")
    assert (img.format, img.mode) == ("TIFF", "F")
    with Image.open(root / "formats/deep/float.tif") as raw:
        values = np.asarray(raw, dtype=np.float64)
    assert values.min() >= 0.0 and values.max() <= 1.0
    np.testing.assert_array_equal(img.rgb[..., 0], np.rint(values * 255.0).astype(np.uint8))
    assert img.rgb[0, 1, 0] == 128  # 0.5


def test_alpha_composited_on_white(folder):
    root, _ = folder
    rgb = awkward.photo()
    img = load_image(root / "formats/alpha/rgba.png")
    assert img.mode == "RGBA"
    assert (img.rgb[:8, :8] == 255).all()  # fully transparent -> white, whatever colour was underneath
    expected_half = rgb[8:16, :8] * (128 / 255) + 255 * (127 / 255)
    assert np.abs(img.rgb[8:16, :8].astype(float) - expected_half).max() <= 1
    np.testing.assert_array_equal(img.rgb[16:], rgb[16:])  # opaque part untouched

    pal = load_image(root / "formats/alpha/palette_transparent.png")
    assert pal.mode == "P"
    assert (pal.rgb[:8, :8] == 255).all()


def test_rgba_array_matches_rgba_file(folder):
    root, _ = folder
    with Image.open(root / "formats/alpha/rgba.png") as raw:
        rgba = np.asarray(raw)
    from_file = load_image(root / "formats/alpha/rgba.png").rgb
    assert np.abs(array_to_rgb8(rgba).astype(int) - from_file).max() <= 1


def test_animated_gif_first_frame(folder):
    root, _ = folder
    img = load_image(root / "formats/animated.gif")
    assert img.format == "GIF"
    assert img.n_frames == 3
    assert np.abs(img.rgb.astype(int) - (200, 30, 30)).max() <= 8


@pytest.mark.parametrize(
    ("rel", "fmt", "max_mean_abs_diff"),
    [
        ("formats/image.bmp", "BMP", 0.0),
        ("photos/2024 trip/café ünïcode.png", "PNG", 0.0),
        ("formats/image.webp", "WEBP", 6.0),
        ("photos/astronaut.jpg", "JPEG", 6.0),
        ("formats/cmyk.jpg", "JPEG", 8.0),
    ],
)
def test_pixels_match_the_source(folder, rel, fmt, max_mean_abs_diff):
    root, _ = folder
    img = load_image(root / rel)
    assert img.format == fmt
    diff = np.abs(img.rgb.astype(float) - awkward.photo()).mean()
    assert diff <= max_mean_abs_diff


def test_cmyk_mode_recorded(folder):
    root, _ = folder
    assert load_image(root / "formats/cmyk.jpg").mode == "CMYK"


@pytest.mark.parametrize("quality", [50, 75, 90, 95])
def test_jpeg_quality_estimate(quality):
    data = awkward.jpeg_bytes(awkward.photo(64, 64), quality=quality)
    img = load_image_bytes(data)
    assert abs(img.jpeg_quality - quality) <= 2, img.jpeg_quality
    with Image.open(io.BytesIO(data)) as raw:
        assert abs(estimate_jpeg_quality(raw.quantization) - quality) <= 2


def test_jpeg_quality_nan_when_not_jpeg(folder):
    root, _ = folder
    assert math.isnan(load_image(root / "photos/2024 trip/café ünïcode.png").jpeg_quality)
    assert math.isnan(load_image(root / "formats/image.webp").jpeg_quality)
    assert math.isnan(estimate_jpeg_quality(None))
    assert math.isnan(estimate_jpeg_quality({}))
    assert math.isnan(estimate_jpeg_quality({0: [1] * 10}))


@pytest.mark.parametrize("name", ["a.jpg", "X.JPG", "y.TiFf", "z.jpeg", "w.PNG", "v.webp", "u.bmp", "t.gif", "dir/s.tif"])
def test_is_image_path_accepts(name):
    assert is_image_path(name)
    assert is_image_path(Path(name))


@pytest.mark.parametrize("name", ["notes.txt", "clip.mp4", "CLIP.MP4", "archive.jpg.zip", "jpg", "noext", ".png.bak"])
def test_is_image_path_rejects(name):
    assert not is_image_path(name)


# --- arrays ------------------------------------------------------------------------------------


def test_array_gray_uint8_repeated():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = array_to_rgb8(gray)
    assert out.shape == (3, 4, 3) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)
    np.testing.assert_array_equal(array_to_rgb8(gray[:, :, None]), out)


def test_array_rgb_uint8_unchanged():
    rgb = awkward.photo()
    np.testing.assert_array_equal(array_to_rgb8(rgb), rgb)
    assert array_to_rgb8(rgb[:, ::-1]).flags.c_contiguous


def test_array_uint16_and_float_and_bool():
    u16 = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    assert array_to_rgb8(u16)[0, :, 0].tolist() == [0, 100, 255]
    f = np.array([[0.0, 0.5, 1.0, 2.0, -1.0, np.nan]])
    assert array_to_rgb8(f)[0, :, 0].tolist() == [0, 128, 255, 255, 0, 0]
    b = np.array([[True, False]])
    assert array_to_rgb8(b)[0, :, 0].tolist() == [255, 0]


def test_array_rgba_composited_on_white():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[1, :, 3] = 255
    out = array_to_rgb8(rgba)
    assert out[0].tolist() == [[255, 255, 255]] * 2  # transparent
    assert out[1].tolist() == [[200, 0, 0]] * 2  # opaque


@pytest.mark.parametrize("shape", [(4,), (0, 4), (4, 0, 3), (4, 4, 2), (4, 4, 5), (2, 4, 4, 3)])
def test_array_bad_shapes(shape):
    with pytest.raises(ImageLoadError, match="expected an image array"):
        array_to_rgb8(np.zeros(shape, dtype=np.uint8))


def test_array_bad_dtype():
    with pytest.raises(ImageLoadError, match="unsupported array dtype"):
        array_to_rgb8(np.zeros((4, 4), dtype=np.complex64))


def test_as_loaded_accepts_paths_bytes_arrays(folder):
    root, _ = folder
    path = root / "photos/astronaut.jpg"
    from_path = as_loaded(path)
    assert as_loaded(from_path) is from_path
    np.testing.assert_array_equal(as_loaded(str(path)).rgb, from_path.rgb)
    np.testing.assert_array_equal(as_loaded(path.read_bytes()).rgb, from_path.rgb)
    from_array = as_loaded(from_path.rgb)
    assert isinstance(from_array, LoadedImage) and from_array.format == "ARRAY"
    assert from_array.sha256 == hashlib.sha256(from_path.rgb.tobytes()).hexdigest()
