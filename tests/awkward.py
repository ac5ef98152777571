"""A folder of awkward image files, generated on the fly, that every loader test runs over.

In the spirit of imagededup's fixture folder (corrupt JPEG, alpha PNG, GIF, WebP, TIFF...), but written
by the test itself from scikit-image's bundled ``astronaut`` photo, so no data is shared or downloaded.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

#: Side of the square photo crop most files are made from, and the (H, W) stored in the EXIF file.
SIDE = 48
EXIF_STORED_HW = (40, 64)

#: (H, W) each "ok" file must load to, after EXIF orientation.
EXPECTED_SHAPES: dict[str, tuple[int, int]] = {
    "photos/astronaut.jpg": (SIDE, SIDE),
    "photos/2024 trip/café ünïcode.png": (SIDE, SIDE),
    'photos/2024 trip/a, "quoted" name.png': (SIDE, SIDE),
    "photos/2024 trip/with spaces in name.jpg": (SIDE, SIDE),
    "photos/phone/exif_rotated.jpg": (EXIF_STORED_HW[1], EXIF_STORED_HW[0]),  # transposed
    "formats/cmyk.jpg": (SIDE, SIDE),
    "formats/alpha/rgba.png": (SIDE, SIDE),
    "formats/alpha/palette_transparent.png": (SIDE, SIDE),
    "formats/deep/gray16.png": (SIDE, SIDE),
    "formats/deep/float.tif": (SIDE, SIDE),
    "formats/animated.gif": (SIDE, SIDE),
    "formats/image.webp": (SIDE, SIDE),
    "formats/image.bmp": (SIDE, SIDE),
    "formats/tiny_1x1.png": (1, 1),
}

#: Width and height declared by the decompression-bomb PNG.
BOMB_SIDE = 40_000


def photo(h: int = SIDE, w: int = SIDE) -> np.ndarray:
    """An (h, w, 3) uint8 crop of scikit-image's astronaut photo."""
    return np.ascontiguousarray(data.astronaut()[60 : 60 + h, 180 : 180 + w])


def jpeg_bytes(rgb: np.ndarray, quality: int = 90, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def bomb_png_bytes(width: int = BOMB_SIDE, height: int = BOMB_SIDE) -> bytes:
    """A few hundred bytes of PNG whose IHDR declares width x height 8-bit RGB pixels.

    The IDAT holds one compressed row of zeros only: decoding would need gigabytes and then fail,
    which is exactly what the loader must never attempt.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit truecolour, no interlace
    idat = zlib.compress(bytes(1 + 3 * width), 9)  # filter byte + one row
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def make_awkward_folder(root: Path) -> dict[str, str]:
    """Write the awkward files under ``root``; return ``{posix relative path: "ok" | "error"}``.

    The (H, W) each "ok" file must load to is in :data:`EXPECTED_SHAPES`.
    """
    root = Path(root)
    files: dict[str, str] = {}
    rgb = photo()

    def target(rel: str) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def ok(rel: str) -> Path:
        assert rel in EXPECTED_SHAPES, rel
        files[rel] = "ok"
        return target(rel)

    def error(rel: str) -> Path:
        files[rel] = "error"
        return target(rel)

    # --- ordinary photos, some at depth 2 and with awkward names --------------------------------
    ok("photos/astronaut.jpg").write_bytes(jpeg_bytes(rgb))
    Image.fromarray(rgb).save(ok("photos/2024 trip/café ünïcode.png"))
    Image.fromarray(rgb).save(ok('photos/2024 trip/a, "quoted" name.png'))
    ok("photos/2024 trip/with spaces in name.jpg").write_bytes(jpeg_bytes(rgb, quality=80))

    # EXIF orientation 6 ("rotate 90 CW to display"): stored H x W, displayed W x H.
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = photo(*EXIF_STORED_HW)
    ok("photos/phone/exif_rotated.jpg").write_bytes(jpeg_bytes(stored, exif=exif.tobytes()))

    # --- pixel formats and containers ------------------------------------------------------------
    Image.fromarray(rgb).convert("CMYK").save(ok("formats/cmyk.jpg"), format="JPEG", quality=90)

    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:8, :8, 3] = 0  # fully transparent corner (with non-white colour underneath)
    rgba[8:16, :8, 3] = 128
    Image.fromarray(rgba).save(ok("formats/alpha/rgba.png"))

    pal = Image.fromarray(rgb).quantize(colors=16)
    pal_arr = np.asarray(pal).copy()
    pal_arr[:8, :8] = 15  # palette index 15 is declared transparent
    pal2 = Image.fromarray(pal_arr, mode="P")  # same indices, palette of the quantised image
    pal2.putpalette(pal.getpalette())
    pal2.save(ok("formats/alpha/palette_transparent.png"), transparency=15)

    gray16 = np.zeros((SIDE, SIDE), dtype=np.uint16)
    gray16[0, 0], gray16[0, 1], gray16[0, 2], gray16[0, 3] = 65535, 257 * 100, 0, 200
    gray16[1:] = (np.linspace(0, 65535, SIDE * (SIDE - 1)).reshape(SIDE - 1, SIDE)).astype(np.uint16)
    img16 = Image.fromarray(gray16)
    assert img16.mode.startswith("I;16"), img16.mode
    img16.save(ok("formats/deep/gray16.png"))

    gray_f = np.linspace(0.0, 1.0, SIDE * SIDE, dtype=np.float32).reshape(SIDE, SIDE)
    gray_f[0, 0], gray_f[0, 1] = 0.0, 0.5
    Image.fromarray(gray_f).save(ok("formats/deep/float.tif"))

    frames = [Image.fromarray(np.full((SIDE, SIDE, 3), c, np.uint8)) for c in ((200, 30, 30), (30, 200, 30), (30, 30, 200))]
    frames[0].save(ok("formats/animated.gif"), save_all=True, append_images=frames[1:], duration=100, loop=0)

    Image.fromarray(rgb).save(ok("formats/image.webp"), format="WEBP", quality=90)
    Image.fromarray(rgb).save(ok("formats/image.bmp"), format="BMP")
    Image.fromarray(rgb[:1, :1]).save(ok("formats/tiny_1x1.png"))

    # --- files that must be refused, each with a clear reason ------------------------------------
    error("broken/empty.jpg").write_bytes(b"")
    valid = jpeg_bytes(rgb)
    error("broken/truncated.jpg").write_bytes(valid[: len(valid) // 2])
    error("broken/notes.png").write_text("these are my notes, not a picture\n", encoding="utf-8")
    error("broken/bomb.png").write_bytes(bomb_png_bytes())
    os.symlink(root / "broken" / "no such file.jpg", error("broken/links/dangling.jpg"))
    error("broken/folder.jpg").mkdir()

    assert {rel for rel, expect in files.items() if expect == "ok"} == set(EXPECTED_SHAPES)
    return files
