"""Face detection and face crops, offline, with libfacedetection (the optional ``yuface`` package).

A face crop keeps the image's native resolution: the largest detected face plus a margin, cut out of
the original pixels, never resized (resampling erases the traces the detector looks for). The crop's
top-left corner is moved up and left onto a multiple of 16 pixels so that a previous JPEG or video
block grid stays aligned with the crop's own grid, as for the blocks' centre crops.

Detection itself runs on a copy shrunk to at most :data:`DETECT_MAX_SIDE` pixels (libfacedetection is
trained on faces of modest size and slows down on large frames); boxes are mapped back to the
original pixels. When no face is found the whole image is used and the box is ``None``.

References
----------
Wu, Peng, Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine Intelligence Research, 2023
(libfacedetection, https://github.com/ShiqiYu/libfacedetection, BSD-3-Clause).
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import logging
import os

import cv2
import numpy as np

from forensics.errors import UsageError

logger = logging.getLogger(__name__)

#: Margin added on each side of the face box, as a fraction of the box's width (left/right) and
#: height (top/bottom).
FACE_MARGIN = 0.3
#: Minimum detector confidence (0-1) for a face to count.
MIN_SCORE = 0.5
#: Detection runs on a copy whose longer side is at most this many pixels.
DETECT_MAX_SIDE = 480
#: The crop's origin is a multiple of this (JPEG / video block grid alignment).
CROP_ALIGN = 16
#: Part of cache keys: bump when detection or cropping changes.
FACE_VERSION = "face-yuface-v1"

INSTALL_HINT = "pip install 'forensics[faces]' (or pip install yuface)"

Box = tuple[int, int, int, int]


def faces_available() -> bool:
    """True when the optional face detector (``yuface``) is installed."""
    return importlib.util.find_spec("yuface") is not None


def check_available() -> None:
    """Raise :class:`UsageError` with a one-line install hint when ``yuface`` is missing."""
    if not faces_available():
        raise UsageError(f"face crops need the optional package yuface, which is not installed: {INSTALL_HINT}")


_OMP = []


def _detector():
    """The ``yuface`` module, with its OpenMP pool limited to one thread.

    libfacedetection parallelises with the OpenMP runtime bundled in its wheel; on a small or busy
    machine its spinning threads make one detection 10-50x slower (650 ms instead of 15 ms for a
    480-px frame on 2 cores). One thread per process is also what the batch runner wants.
    """
    import yuface

    if not _OMP:
        lib = None
        libs = sorted(glob.glob(os.path.join(os.path.dirname(os.path.dirname(yuface.__file__)), "yuface.libs", "libgomp*")))
        try:
            lib = ctypes.CDLL(libs[0]) if libs else ctypes.CDLL("libgomp.so.1")
        except OSError:  # pragma: no cover - no OpenMP runtime to limit
            lib = None
        _OMP.append(lib)
    if _OMP[0] is not None:
        _OMP[0].omp_set_num_threads(1)  # per calling thread: cheap, so done on every call
    return yuface


def detect_faces(rgb: np.ndarray, *, min_score: float = MIN_SCORE, max_side: int = DETECT_MAX_SIDE) -> list[tuple[int, int, int, int, float]]:
    """Faces in an RGB image as ``(x, y, w, h, score)``, in the image's pixels, largest first.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
        The image, RGB order.
    min_score : float, keyword-only
        Minimum detector confidence in [0, 1].
    max_side : int, keyword-only
        Detection runs on a copy shrunk (area interpolation) so that its longer side is at most this.

    Boxes are clipped to the image; faces clipped to nothing are dropped.
    """
    return [f[:5] for f in detect_faces_landmarks(rgb, min_score=min_score, max_side=max_side)]


def detect_faces_landmarks(rgb: np.ndarray, *, min_score: float = MIN_SCORE, max_side: int = DETECT_MAX_SIDE) -> list[tuple]:
    """As :func:`detect_faces`, each face with its five landmarks: ``(x, y, w, h, score, points)``.

    ``points`` is a (5, 2) float array of ``(x, y)`` in the image's pixels, in the detector's order:
    the subject's right eye (the one on the image's left in a frontal face), left eye, nose tip,
    right and left mouth corners.
    """
    check_available()
    if not 0.0 <= min_score <= 1.0:
        raise ValueError(f"min_score must be in [0, 1], got {min_score}")
    if max_side < 32:
        raise ValueError(f"max_side must be at least 32, got {max_side}")
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB array, got {arr.shape} {arr.dtype}")
    yuface = _detector()
    h, w = arr.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    small = arr if scale == 1.0 else cv2.resize(arr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    bgr = np.ascontiguousarray(small[:, :, ::-1])
    confs, boxes, marks = yuface.detect(bgr, min_score)
    marks = np.asarray(marks, dtype=np.float64).reshape(-1, 5, 2)
    out = []
    for conf, (bx, by, bw, bh), pts in zip(np.asarray(confs, dtype=np.float64), np.asarray(boxes, dtype=np.int64), marks):
        x0, y0 = max(0.0, bx / scale), max(0.0, by / scale)
        x1, y1 = min(float(w), (bx + bw) / scale), min(float(h), (by + bh) / scale)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        x0i, y0i = int(np.floor(x0)), int(np.floor(y0))
        # pixel centres map to pixel centres between the shrunk copy and the image
        points = (pts + 0.5) / scale - 0.5
        out.append((x0i, y0i, int(np.ceil(x1)) - x0i, int(np.ceil(y1)) - y0i, float(conf) / 100.0, points))
    out.sort(key=lambda f: f[2] * f[3], reverse=True)
    return out


def crop_box(face: Box, shape: tuple, *, margin: float = FACE_MARGIN, align: int = CROP_ALIGN) -> Box:
    """The crop rectangle ``(x, y, w, h)`` around ``face`` for an image of ``shape``: ``margin`` of the
    face's size added on every side, the origin moved onto a multiple of ``align``, clipped to the image."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    h, w = shape[:2]
    fx, fy, fw, fh = face[:4]
    x0 = max(0, int(np.floor(fx - margin * fw)))
    y0 = max(0, int(np.floor(fy - margin * fh)))
    x1 = min(w, int(np.ceil(fx + fw + margin * fw)))
    y1 = min(h, int(np.ceil(fy + fh + margin * fh)))
    x0 -= x0 % align
    y0 -= y0 % align
    return (x0, y0, x1 - x0, y1 - y0)


def largest_face_crop(rgb: np.ndarray, margin: float = FACE_MARGIN, *, min_score: float = MIN_SCORE) -> tuple[np.ndarray, Box | None]:
    """Crop of the largest face (plus ``margin``) at native resolution, and the face box.

    Returns ``(crop, (x, y, w, h))`` with the detected face's box in the image's pixels, or
    ``(rgb, None)`` (the whole image, unchanged) when no face is found. See :func:`crop_box` for the
    crop rectangle.
    """
    faces = detect_faces(rgb, min_score=min_score)
    if not faces:
        return rgb, None
    face = faces[0][:4]
    x, y, cw, ch = crop_box(face, rgb.shape, margin=margin)
    return np.ascontiguousarray(rgb[y : y + ch, x : x + cw]), tuple(int(v) for v in face)


def format_box(box: Box | None) -> str:
    """``"x,y,w,h"``, or ``""`` for no face (the whole image was used)."""
    return "" if box is None else ",".join(str(int(v)) for v in box)
