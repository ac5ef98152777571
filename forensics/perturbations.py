"""Image perturbations for robustness evaluation: what happens to an image between its origin and a
detector (re-compression, resizing, blur, cropping, noise).

One plain function per operation on an (H, W, 3) uint8 RGB array; :func:`parse_perturbations` turns
``--perturb`` text (``jpeg:75,resize:0.5``) into :class:`Perturbation` objects that apply them.
Everything happens in memory; nothing is written to disk.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np
from PIL import Image

from forensics.errors import UsageError

#: Part of every perturbed copy's feature-cache key: raise it when an operation's output changes.
PERTURBATION_VERSION = 1

#: The perturbations ``forensics evaluate`` applies by default.
DEFAULT_PERTURBATIONS = "jpeg:95,jpeg:75,jpeg:50,resize:0.5,blur:1.0,crop:0.8"


def jpeg_recompress(rgb: np.ndarray, *, quality: int) -> bytes:
    """Encode as JPEG at ``quality`` (1-100, libjpeg scale, 4:2:0 chroma subsampling); returns the
    encoded bytes (decode them with the loader, so that the blocks see a real JPEG)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def resize(rgb: np.ndarray, *, factor: float) -> np.ndarray:
    """Resample both sides by ``factor`` with Pillow's bicubic filter (antialiased when shrinking)."""
    if not 0 < factor <= 4:
        raise ValueError(f"factor must be in (0, 4], got {factor}")
    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(size, Image.Resampling.BICUBIC))


def gaussian_blur(rgb: np.ndarray, *, sigma: float) -> np.ndarray:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel size from sigma, edges reflected)."""
    if not 0 < sigma <= 20:
        raise ValueError(f"sigma must be in (0, 20], got {sigma}")
    return cv2.GaussianBlur(np.ascontiguousarray(rgb), (0, 0), sigmaX=float(sigma), sigmaY=float(sigma))


def center_crop_fraction(rgb: np.ndarray, *, fraction: float) -> np.ndarray:
    """The centred crop keeping ``fraction`` of each side (so the JPEG grid usually shifts, as in
    real crops)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    h, w = rgb.shape[:2]
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(rgb[top : top + ch, left : left + cw])


def gaussian_noise(rgb: np.ndarray, *, sigma: float) -> np.ndarray:
    """Add Gaussian noise of standard deviation ``sigma`` grey levels, seeded by the pixels
    (the same image always gets the same noise)."""
    if not 0 < sigma <= 64:
        raise ValueError(f"sigma must be in (0, 64], got {sigma}")
    rng = np.random.default_rng(zlib.crc32(np.ascontiguousarray(rgb).tobytes()))
    noisy = rgb.astype(np.float32) + rng.normal(0.0, sigma, rgb.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class _Kind:
    func: Callable
    param: str
    convert: Callable
    example: str


KINDS: dict[str, _Kind] = {
    "jpeg": _Kind(jpeg_recompress, "quality", int, "jpeg:75"),
    "resize": _Kind(resize, "factor", float, "resize:0.5"),
    "blur": _Kind(gaussian_blur, "sigma", float, "blur:1.0"),
    "crop": _Kind(center_crop_fraction, "fraction", float, "crop:0.8"),
    "noise": _Kind(gaussian_noise, "sigma", float, "noise:2"),
}


def _usage() -> str:
    return ", ".join(f"{k}:{v.param.upper()}" for k, v in KINDS.items())


@dataclass(frozen=True)
class Perturbation:
    """One perturbation: ``kind`` (a key of :data:`KINDS`), its parameter, and the text it was given as
    (the name of the condition in results)."""

    kind: str
    value: float
    name: str

    def __call__(self, rgb: np.ndarray):
        """Perturbed image: an RGB array, or encoded bytes for ``jpeg``."""
        k = KINDS[self.kind]
        return k.func(rgb, **{k.param: k.convert(self.value)})

    @property
    def cache_tag(self) -> str:
        """The operation and its value in one canonical form (``jpeg=75``, ``resize=0.5``, whatever
        text it was given as) with :data:`PERTURBATION_VERSION`: what a perturbed copy's cached
        features are keyed by, next to the file's hash. No ``:`` (cache keys split on it)."""
        return f"{self.kind}={KINDS[self.kind].convert(self.value)!r}~p{PERTURBATION_VERSION}"


def parse_perturbations(text: str | None) -> list[Perturbation]:
    """``"jpeg:95,resize:0.5"`` -> perturbations; ``""``/``"none"`` -> none. Unknown kinds, missing or
    out-of-range values raise :class:`UsageError` with the accepted forms."""
    if text is None or text.strip().lower() in ("", "none"):
        return []
    out: list[Perturbation] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        kind, sep, value = item.partition(":")
        kind = kind.strip().lower()
        if kind not in KINDS or not sep:
            raise UsageError(f"unknown perturbation '{item}'; use {_usage()} (e.g. {DEFAULT_PERTURBATIONS})")
        k = KINDS[kind]
        try:
            v = float(value)
        except ValueError:
            v = float("nan")
        if not np.isfinite(v) or (k.convert is int and v != int(v)):
            kind_of = "an integer" if k.convert is int else "a number"
            raise UsageError(f"bad perturbation '{item}': {k.param} must be {kind_of} (e.g. {k.example})")
        try:
            k.func(np.zeros((8, 8, 3), np.uint8), **{k.param: k.convert(v)})  # validates the range
        except ValueError as exc:
            raise UsageError(f"bad perturbation '{item}': {exc} (e.g. {k.example})") from None
        p = Perturbation(kind, v, item)
        if any(q.name == p.name for q in out):
            continue
        out.append(p)
    return out
