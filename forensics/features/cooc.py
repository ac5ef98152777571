"""``cooc``: co-occurrences of colour residuals at coarser scales.

Generators synthesise colour and brightness together, and the result has neighbourhood statistics
(how the luma and chroma change from one pixel to the next, and how those changes follow each other)
that differ from those of a camera picture. Co-occurrences of quantised residuals, the basis of the
spatial rich models of steganalysis (Fridrich & Kodovsky 2012), expose them; computed on the chroma
channels they detect GAN images (Li et al. 2020, colour "disparities"; Nataraj et al. 2019).

A detector keyed on the finest pixel scale learns a camera's or a JPEG encoder's own traces, and those
change from one source of real photos to another. This block therefore looks at the image after area
down-sampling by 2 and by 4 (each output pixel the mean of a 2x2 or 4x4 block, which averages sensor
noise, demosaicing and most of the 8x8 JPEG grid away) and keeps the structure that survives.

Implementation
--------------
* Planes: luma Y and chroma Cr, Cb (OpenCV's full-range BT.601, 0-255) and HSV saturation (times 255),
  of the grid-aligned centre crop of at most ``max_size`` pixels, each area-down-sampled by every factor
  in ``scales`` (``cv2.INTER_AREA``; a side never below 8 pixels; tiny images are edge-padded first).
* Residuals: first-order differences ``x[j+1] - x[j]`` and second-order ``x[j-1] - 2 x[j] + x[j+1]``
  along rows (horizontal) and along columns (vertical), quantised as ``clip(floor(r / q + 1/2), -2, 2)``
  with ``q`` = 2 grey levels for Y and 1 for the others.
* Co-occurrences: the (2T+1)^3 = 125 triples of three consecutive quantised residuals along the
  residual's own direction (horizontal residuals along rows, vertical ones along columns), counts of
  both directions added, then merged over the symmetries of natural images: a triple, its sign flip,
  its reversal and the reversed sign flip form one class (39 classes), named by the largest of the
  four (``m1`` means -1). Shares sum to 1 per (scale, plane, order).

References
----------
.. [1] J. Fridrich and J. Kodovsky, "Rich models for steganalysis of digital images", IEEE TIFS 7(3),
       868-882, 2012.
.. [2] H. Li, B. Li, S. Tan and J. Huang, "Identification of deep network generated images using
       disparities in color components", Signal Processing 174, 107616, 2020.
.. [3] L. Nataraj et al., "Detecting GAN generated fake images using co-occurrence matrices",
       Electronic Imaging 2019.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import cv2
import numpy as np

from forensics.features.base import as_views, pad_to_min, register_block

#: Planes analysed, and their quantisation steps (grey levels).
_PLANES = (("y", 2.0), ("cr", 1.0), ("cb", 1.0), ("s", 1.0))
_T = 2  # truncation: quantised residuals in [-T, T]
_L = 2 * _T + 1
_MIN_SIDE = 8  # smallest down-sampled side


def _lvl(v: int) -> str:
    return f"m{-v}" if v < 0 else str(v)


@lru_cache(maxsize=None)
def _orbits() -> tuple[np.ndarray, tuple[str, ...]]:
    """(125, n_classes) 0/1 matrix merging triples into classes under sign flip and reversal, and the
    class names (largest member, ``a_b_c``), classes sorted by their largest member."""
    triples = list(itertools.product(range(-_T, _T + 1), repeat=3))
    rep = {t: max(t, tuple(-v for v in t), t[::-1], tuple(-v for v in t[::-1])) for t in triples}
    classes = sorted(set(rep.values()))
    index = {c: i for i, c in enumerate(classes)}
    merge = np.zeros((len(triples), len(classes)))
    for i, t in enumerate(triples):  # itertools.product order == row-major (a + T, b + T, c + T)
        merge[i, index[rep[t]]] = 1.0
    return merge, tuple("_".join(_lvl(v) for v in c) for c in classes)


def _check(scales, max_size) -> tuple[int, ...]:
    if not isinstance(scales, (list, tuple)) or not scales:
        raise ValueError(f"scales must be a non-empty sequence of integers >= 1, got {scales!r}")
    for s in scales:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
            raise ValueError(f"scales must contain integers >= 1, got {s!r}")
    if len(set(scales)) != len(scales):
        raise ValueError(f"scales must be distinct, got {scales!r}")
    if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size < _MIN_SIDE:
        raise ValueError(f"max_size must be an integer >= {_MIN_SIDE}, got {max_size!r}")
    return tuple(int(s) for s in scales)


def _names(*, scales=(2, 4), max_size=512):
    scales = _check(scales, max_size)
    _, classes = _orbits()
    return [f"x{s}_{plane}_d{order}__{c}" for s in scales for plane, _ in _PLANES for order in (1, 2) for c in classes]


#: Channel offsets of the joint index (channel c's triples are bins 125 c .. 125 c + 124).
_OFFSETS = tuple(float(k * _L**3) for k in range(len(_PLANES)))
_INV_STEPS = tuple(1.0 / q for _, q in _PLANES)


def _triples(q: np.ndarray, axis: int) -> np.ndarray:
    """Joint index of three consecutive values of ``q`` (h, w, planes; uint16 in 0..2T) along ``axis``,
    plus the plane's offset: one bincount then counts every plane at once."""
    if axis == 1:
        a, b, c = q[:, :-2], q[:, 1:-1], q[:, 2:]
    else:
        a, b, c = q[:-2], q[1:-1], q[2:]
    idx = a * np.uint16(_L * _L)
    idx += b * np.uint16(_L)
    idx += c
    return cv2.add(idx, _OFFSETS)


def _saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation times 255: ``255 (max - min) / max`` of the 8-bit channels (0 for black), float32."""
    r, g, b = cv2.split(rgb)
    hi = cv2.max(cv2.max(r, g), b)
    lo = cv2.min(cv2.min(r, g), b)
    spread = cv2.subtract(hi, lo, dtype=cv2.CV_32F)
    spread *= np.float32(255.0)
    return np.divide(spread, hi, out=np.zeros_like(spread), where=hi > 0)


def _count(idx: np.ndarray) -> np.ndarray:
    """Histogram of the joint indices over the planes' ``n_planes * 125`` bins (OpenCV, 16-bit input)."""
    n = len(_PLANES) * _L**3
    flat = idx.reshape(idx.shape[0], -1)
    return cv2.calcHist([flat], [0], None, [n], [0, n]).ravel().astype(np.float64)


def _quantise(r: np.ndarray) -> np.ndarray:
    """``clip(floor(r + 1/2), -T, T) + T`` as uint16 (``r`` already in quantisation steps)."""
    q = np.floor(r + np.float32(_T + 0.5))
    np.clip(q, 0, 2 * _T, out=q)
    return q.astype(np.uint16)


@register_block(
    "cooc",
    names=_names,
    presets=("default", "fast"),
    cost="medium",
    reference="Fridrich & Kodovsky, IEEE TIFS 2012; Li et al., Signal Processing 2020; Nataraj et al., EI 2019",
)
def cooc_features(image, *, scales: tuple = (2, 4), max_size: int = 512) -> np.ndarray:
    """Shares of the symmetrised co-occurrence classes of three consecutive quantised first- and
    second-order residuals of Y, Cr, Cb and saturation, after area down-sampling by each of ``scales``.

    Parameters
    ----------
    image : array, path, LoadedImage or ImageViews
        The image (converted to 8-bit RGB).
    scales : tuple of int, keyword-only
        Down-sampling factors (1 = full resolution, which also sees camera and JPEG traces).
    max_size : int, keyword-only
        Side of the largest centre crop analysed (grid-aligned, never resampled); bounds the cost.

    Returns
    -------
    ndarray of float64
        ``len(cooc_names(...))`` values: for each scale ``x<s>``, plane (``y``, ``cr``, ``cb``, ``s``)
        and residual order (``d1``, ``d2``), the 39 class shares, which sum to 1.
    """
    scales = _check(scales, max_size)
    v = as_views(image).crop(max_size)
    ycc = pad_to_min(v.ycrcb, _MIN_SIDE)
    planes = cv2.merge([ycc, _saturation(pad_to_min(v.rgb, _MIN_SIDE))])  # (h, w, 4): Y, Cr, Cb, S
    h, w = planes.shape[:2]
    merge, _ = _orbits()
    n_planes = len(_PLANES)
    out = []
    for s in scales:
        size = (max(w // s, _MIN_SIDE), max(h // s, _MIN_SIDE))
        p = planes if s == 1 else cv2.resize(planes, size, interpolation=cv2.INTER_AREA)
        p = cv2.multiply(p, _INV_STEPS)  # in quantisation steps (exact: powers of 2; resize and diff are linear)
        counts = []
        for order in (1, 2):
            dh = np.diff(p, n=order, axis=1)
            dv = np.diff(p, n=order, axis=0)
            hist = _count(_triples(_quantise(dh), 1)) + _count(_triples(_quantise(dv), 0))
            counts.append(hist.reshape(n_planes, _L**3) @ merge)  # (planes, classes)
        c = np.stack(counts, axis=1)  # (planes, orders, classes)
        c /= np.maximum(c.sum(axis=2, keepdims=True), 1.0)
        out.append(c.ravel())
    return np.concatenate(out)


cooc_names = _names
__all__ = ["cooc_features", "cooc_names"]
