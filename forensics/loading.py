"""Turning a path (or bytes, or an array) into the 8-bit RGB array every feature block sees.

The loader is deliberately conservative: it never resamples (resampling erases the high-frequency
traces the detector looks for), applies the EXIF orientation, converts every pixel format Pillow can
read to 8-bit RGB, and refuses images whose header declares more pixels than a limit *before* any
pixel is decoded.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from forensics.errors import DecompressionBombError, ImageLoadError

logger = logging.getLogger(__name__)

#: File extensions recognised as images (lower case, without the dot).
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif"})

#: Pillow decoders the loader uses: the containers of :data:`IMAGE_EXTENSIONS` (Pillow's JPEG opener
#: also reads MPO, the multi-picture JPEG many phones write). Whatever a file's name, no other parser
#: ever sees it: no EPS (which would run Ghostscript), PSD, ICO...
PIL_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")

#: Default limit on width * height, checked from the header before decoding (about 89 megapixels,
#: the same order as Pillow's own warning threshold).
DEFAULT_MAX_PIXELS = 89_478_485

# Pillow's own bomb check would fire first for huge images with a less precise message; we do our
# own check against ``max_pixels`` and let Pillow's stay as a second line of defence.
Image.MAX_IMAGE_PIXELS = None

# Standard JPEG luminance quantisation table (ITU-T T.81, Annex K), in natural order.
_STD_LUMA_QT = np.array(
    [
        16, 11, 10, 16, 24, 40, 51, 61,
        12, 12, 14, 19, 26, 58, 60, 55,
        14, 13, 16, 24, 40, 57, 69, 56,
        14, 17, 22, 29, 51, 87, 80, 62,
        18, 22, 37, 56, 68, 109, 103, 77,
        24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101,
        72, 92, 95, 98, 112, 100, 103, 99,
    ],
    dtype=np.float64,
)  # fmt: skip


def is_image_path(path: str | os.PathLike) -> bool:
    """True when the file name has one of :data:`IMAGE_EXTENSIONS` (case-insensitive)."""
    return Path(path).suffix.lower().lstrip(".") in IMAGE_EXTENSIONS


@dataclass
class LoadedImage:
    """An image as every block sees it, with the provenance recorded by the ``diag`` block.

    Attributes
    ----------
    rgb : ndarray of shape (height, width, 3), uint8
        Pixels after EXIF orientation and conversion to 8-bit RGB.
    format : str
        Container format as reported by Pillow (``"JPEG"``, ``"PNG"``...), ``"ARRAY"`` for arrays.
    mode : str
        Pillow mode before conversion (``"RGB"``, ``"I;16"``, ``"CMYK"``...).
    jpeg_quality : float
        Quality estimated from the luminance quantisation table (libjpeg scale), NaN if not JPEG.
    file_size : int
        Size of the encoded file in bytes (0 for arrays).
    sha256 : str
        Hex digest of the encoded bytes (of the raw pixels for arrays).
    n_frames : int
        Number of frames (animated GIF/WebP/TIFF); only the first is used.
    """

    rgb: np.ndarray
    format: str = "ARRAY"
    mode: str = "RGB"
    jpeg_quality: float = float("nan")
    file_size: int = 0
    sha256: str = ""
    n_frames: int = 1
    path: str | None = None
    _views: dict = field(default_factory=dict, repr=False)

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def estimate_jpeg_quality(quantization: dict | None) -> float:
    """Estimate the libjpeg quality factor (1-100) from a JPEG's quantisation tables.

    Uses the luminance table (table 0) and inverts libjpeg's scaling of the standard table
    (``scale = 5000 / q`` for q < 50, ``200 - 2 q`` otherwise). Returns NaN when there is no table.
    Non-standard tables (e.g. some cameras, Photoshop) give the nearest libjpeg-equivalent quality.
    """
    if not quantization or 0 not in quantization:
        return float("nan")
    table = np.asarray(quantization[0], dtype=np.float64)
    if table.size != 64:
        return float("nan")
    # Pillow returns tables in zig-zag order in old versions and natural order in new ones; the
    # mean ratio is order-independent, which is all we use.
    scale = float(np.mean(table / _STD_LUMA_QT) * 100.0)
    if scale <= 0:
        return float("nan")
    quality = (200.0 - scale) / 2.0 if scale <= 100.0 else 5000.0 / scale
    return float(np.clip(round(quality, 1), 1.0, 100.0))


def _to_rgb8(img: Image.Image) -> np.ndarray:
    """Convert any Pillow image to an (H, W, 3) uint8 array without resampling."""
    mode = img.mode
    if mode in ("RGB",):
        arr = np.asarray(img, dtype=np.uint8)
    elif mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img)
        arr = _scale_to_uint8(arr.astype(np.float64), is_float=(mode == "F"), is_16bit=mode.startswith("I;16"))
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        # Composite on white: transparent pixels have no defined colour, and whatever RGB values
        # hide under alpha=0 are an artefact of the encoder, not of the picture.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        arr = np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8)
    else:
        # L, 1, P, CMYK, YCbCr, LAB, HSV...: Pillow's own conversion.
        arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImageLoadError(f"unsupported pixel layout {arr.shape} (mode {mode})")
    return np.ascontiguousarray(arr)


def _scale_to_uint8(arr: np.ndarray, *, is_float: bool, is_16bit: bool = False) -> np.ndarray:
    """Map a high-bit-depth or float single-channel array to 0-255.

    16-bit modes are always scaled from 0-65535 (a dark 16-bit image stays dark); for 32-bit integer
    mode ``I``, whose range the file does not state, values above 255 are taken to be 16-bit.
    """
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    if is_float:
        lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
        if lo >= 0.0 and hi <= 1.0:
            scaled = arr * 255.0
        elif hi > lo:
            scaled = (arr - lo) / (hi - lo) * 255.0
        else:
            scaled = np.zeros_like(arr)
    else:
        hi = float(arr.max(initial=0.0))
        scaled = arr / 257.0 if (is_16bit or hi > 255.0) else arr
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def array_to_rgb8(array: np.ndarray) -> np.ndarray:
    """Convert a user-supplied array (gray, RGB, RGBA; uint8, uint16 or float) to (H, W, 3) uint8.

    Float arrays are taken to be in [0, 1] (scikit-image's convention); integer arrays wider than
    8 bits are scaled from their dtype's range. Alpha is composited on white, as for image files.
    """
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(f"expected an image array of shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype == np.bool_:
        out = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        out = np.rint(np.clip(np.nan_to_num(arr.astype(np.float64)), 0.0, 1.0) * 255.0).astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.integer):
        info = np.iinfo(arr.dtype)
        if info.max > 255:
            scale = 255.0 / float(info.max)
            out = np.clip(np.rint(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)
        else:
            out = np.clip(arr, 0, 255).astype(np.uint8)
    else:
        raise ImageLoadError(f"unsupported array dtype {arr.dtype}")
    if out.shape[2] == 4:
        # Composite on white, like _to_rgb8 does for files: the colour under alpha=0 is meaningless.
        alpha = out[:, :, 3:].astype(np.float64) / 255.0
        out = np.rint(out[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(out)


def over_pixel_limit(width: int, height: int, max_pixels: int | None) -> str | None:
    """The decompression-bomb message for an image of ``width x height`` over ``max_pixels``, else
    ``None`` (``max_pixels`` ``None``: no limit). The loader raises it before decoding; the feature
    cache gives it for a cached file's recorded size."""
    if max_pixels is None or width * height <= max_pixels:
        return None
    return (f"image declares {width}x{height} = {width * height} pixels, over the limit of {max_pixels} "
            "(possible decompression bomb); not decoded")


def load_image_bytes(
    data: bytes, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, name: str | None = None
) -> LoadedImage:
    """Decode encoded image bytes; see :func:`load_image`."""
    if not data:
        raise ImageLoadError("empty file")
    digest = hashlib.sha256(data).hexdigest()
    try:
        img = Image.open(io.BytesIO(data), formats=PIL_FORMATS)
    except UnidentifiedImageError:
        raise ImageLoadError("not a recognised image format") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds on corrupt headers
        raise ImageLoadError(f"cannot read image header: {exc}") from None
    with img:
        width, height = img.size
        if width <= 0 or height <= 0:
            raise ImageLoadError(f"invalid image size {width}x{height}")
        refusal = over_pixel_limit(width, height, max_pixels)
        if refusal is not None:
            raise DecompressionBombError(refusal)
        fmt = img.format or "UNKNOWN"
        mode = img.mode
        try:
            # Counting frames walks the whole file: a corrupt later frame must not sink the first one.
            n_frames = int(getattr(img, "n_frames", 1) or 1)
            frames_ok = True
        except Exception:  # noqa: BLE001 - IndexError, struct.error, EOFError... on corrupt frames
            n_frames, frames_ok = 1, False
        try:
            quality = estimate_jpeg_quality(getattr(img, "quantization", None)) if fmt == "JPEG" else float("nan")
            if n_frames > 1 or not frames_ok:
                img.seek(0)
            img.load()
            oriented = ImageOps.exif_transpose(img)
            rgb = _to_rgb8(oriented if oriented is not None else img)
        except ImageLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - truncated/corrupt data raise OSError, SyntaxError...
            raise ImageLoadError(f"cannot decode image data: {exc}") from None
    return LoadedImage(
        rgb=rgb,
        format=fmt,
        mode=mode,
        jpeg_quality=quality,
        file_size=len(data),
        sha256=digest,
        n_frames=n_frames,
        path=name,
    )


def load_image(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Load an image file as 8-bit RGB, with its provenance.

    Parameters
    ----------
    path : str or path-like
        Image file. The format is detected from the content, not the extension.
    max_pixels : int or None, keyword-only
        Refuse images whose header declares more than this many pixels, before decoding
        (:class:`~forensics.errors.DecompressionBombError`). ``None`` disables the check.

    Returns
    -------
    LoadedImage
        ``rgb`` is (H, W, 3) uint8 after EXIF orientation. Grayscale, 16-bit, float, CMYK and palette
        images are converted; alpha is composited on white; animated images give their first frame.
        Pixels are never resampled.

    Raises
    ------
    ImageLoadError
        Missing, empty, unreadable, truncated or unsupported files, with the reason.
    DecompressionBombError
        Header declares more than ``max_pixels`` pixels.
    """
    p = Path(path)
    try:
        if p.is_dir():
            raise ImageLoadError("is a directory, not an image file")
        data = p.read_bytes()
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError("file not found (or a dangling link)") from None
    except PermissionError:
        raise ImageLoadError("permission denied") from None
    except OSError as exc:
        raise ImageLoadError(f"cannot read file: {exc.strerror or exc}") from None
    return load_image_bytes(data, max_pixels=max_pixels, name=str(path))


def as_loaded(image, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Accept a path, a :class:`LoadedImage` or an array and return a :class:`LoadedImage`."""
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, (str, os.PathLike)):
        return load_image(image, max_pixels=max_pixels)
    if isinstance(image, (bytes, bytearray)):
        return load_image_bytes(bytes(image), max_pixels=max_pixels)
    rgb = array_to_rgb8(image)
    return LoadedImage(rgb=rgb, sha256=hashlib.sha256(rgb.tobytes()).hexdigest())
