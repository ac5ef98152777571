"""``faceparts``: do the eyes, nose and mouth belong to the same face as the skin around them?

A hand-made face splice pastes an eye, a nose, a mouth or a whole inner face from another picture. The
pasted part brings its own camera noise, sharpness, JPEG history and skin tone, and is placed by eye;
after the whole picture is resized and recompressed, global statistics barely move, but the part still
differs from the rest of the face. This block finds the face and its five landmarks, measures the same
local statistics in small squares on each part and on the skin around them, and reports how far each
part is from the skin and how far the left and right halves are from each other, together with the
geometry of the landmarks. Inconsistency between regions of one image, not a learned template of a
source's processing chain, is the cue (Farid 2009, ch. 4; Kee & Farid 2010 for geometry and lighting).

Needs the optional face detector (``pip install 'forensics[faces]'``, which installs ``yuface``,
libfacedetection's YuNet; the weights are compiled into the wheel, nothing is downloaded). Images with
no face found (or one too small, inter-ocular distance under 8 pixels) get ``face_found = 0`` and NaN
for every other feature; XGBoost handles NaN natively, the other classifiers impute.

Implementation
--------------
* Detection: on a copy of the image shrunk (area interpolation) so that its longer side is at most
  ``detect_side`` pixels (default 128: one detection costs about 1 ms there, against 5-7 ms at 256 px);
  the largest face with score >= ``min_score``. Images under 32 pixels are not searched. Faces smaller
  than about a tenth of the image's longer side are missed at the default ``detect_side``.
* Geometry, in the frame where the eyes sit at (-0.5, 0) and (0.5, 0) (scale and roll removed): the
  nose tip and the two mouth corners, the mouth's width and its tilt against the eyes' tilt, the
  mouth centre against the nose, the detector's score, and the face box's shape against the eyes.
* Maps, on the part of the image around the face (its origin on the 8-pixel JPEG grid; shrunk with
  area interpolation when its longer side exceeds ``max_size``): CIELAB ``L``, ``a``, ``b``; HSV
  saturation ``sat`` and the saturation-weighted hue vector ``hue_cos``, ``hue_sin``; noise: ``res``,
  log(1 + mean absolute RGB residual of a 3x3 median filter), ``res_a``, ``res_b``, log(1 + |residual
  of a 3x3 box filter|) of the chroma planes, ``var``, log(1 + squared residual of L against a 5x5
  box filter); detail: ``lap``, log(1 + |Laplacian of L|), ``grad``, log(1 + Sobel gradient magnitude
  of L), ``sharp`` = ``lap - grad``; ``ela``, log(1 + mean absolute RGB error after one JPEG round trip
  at quality 90). Region means come from one integral image of all maps.
* Regions: squares of half-side ``r`` times the inter-ocular distance, for each ``r`` in ``radii``,
  centred on the right eye (``eye_r``), left eye (``eye_l``), nose tip, mouth centre, the two cheeks
  (below each eye, level with the middle of nose and mouth), the forehead (0.6 inter-ocular distances
  above the eyes) and the chin (0.45 below the mouth). The skin reference is the mean of cheeks,
  forehead and chin (regions falling outside the image are left out).
* Per radius and map: ``abs`` distance of each part (and each cheek) from the skin reference, of the
  right eye from the left (``eyes``) and of one cheek from the other (``cheeks``); the signed
  difference (``diff``) for eyes, nose and mouth. Once: the maps' means over the face centre
  (``centre``, a square of half-side one inter-ocular distance between eyes and mouth) and the skin
  tone (CIELAB mean and standard deviation) of the inner face against the neck and the forehead.

References
----------
.. [1] H. Farid, "A survey of image forgery detection", IEEE Signal Processing Magazine 26(2), 2009.
.. [2] E. Kee and H. Farid, "Exposing digital forgeries from 3-D lighting environments", WIFS 2010.
.. [3] Y. Wu, H. Peng, S. Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine Intelligence
       Research, 2023.
"""

from __future__ import annotations

import cv2
import numpy as np

from forensics.features.base import as_views, fmt_param, register_block

#: Maps measured in every region, in feature-name order.
MAPS = ("L", "a", "b", "sat", "hue_cos", "hue_sin", "res", "res_a", "res_b", "var", "lap", "grad", "ela", "sharp")
#: Parts compared with the skin reference (``abs``), then the two left/right pairs.
_ABS = ("eye_r", "eye_l", "nose", "mouth", "cheek_r", "cheek_l", "eyes", "cheeks")
#: Parts whose signed difference from the skin is kept too.
_DIFF = ("eye_r", "eye_l", "nose", "mouth")
_GEO = (
    "nose_x", "nose_y", "mouth_r_x", "mouth_r_y", "mouth_l_x", "mouth_l_y",
    "mouth_width", "mouth_tilt", "mouth_nose_dx", "mouth_nose_dy", "score", "eyes_over_box_w", "box_aspect",
)  # fmt: skip
_TONE = tuple(f"tone__{ref}__{stat}_{c}" for ref in ("neck", "forehead") for stat in ("mean", "std") for c in ("L", "a", "b"))
_MIN_IOD = 8.0  # pixels: smaller faces are "not found"
_MIN_DETECT_SIDE = 32
_ELA_QUALITY = 90
_GRID = 8  # the crop's origin stays on the JPEG grid
_MEAN3 = np.full((1, 3), 1.0 / 3.0, dtype=np.float32)  # cv2.transform: mean of three channels


def _check(radii, detect_side, min_score, max_size) -> tuple:
    radii = tuple(float(r) for r in radii) if isinstance(radii, (tuple, list)) else ()
    if not radii or any(not 0.05 <= r <= 1.0 for r in radii) or len(set(radii)) != len(radii):
        raise ValueError("radii must be distinct values in [0.05, 1] (fractions of the inter-ocular distance)")
    if not isinstance(detect_side, int) or detect_side < _MIN_DETECT_SIDE:
        raise ValueError(f"detect_side must be an integer >= {_MIN_DETECT_SIDE}, got {detect_side!r}")
    if not 0.0 <= float(min_score) <= 1.0:
        raise ValueError(f"min_score must be in [0, 1], got {min_score!r}")
    if not isinstance(max_size, int) or max_size < 64:
        raise ValueError(f"max_size must be an integer >= 64, got {max_size!r}")
    return radii


def _names(*, radii=(0.2, 0.3, 0.4), detect_side=128, min_score=0.5, max_size=512):
    radii = _check(radii, detect_side, min_score, max_size)
    out = ["face_found"] + [f"geo__{g}" for g in _GEO] + list(_TONE) + [f"centre__{m}" for m in MAPS]
    for r in radii:
        tag = f"r{fmt_param(r)}"
        out += [f"{tag}__abs__{p}__{m}" for p in _ABS for m in MAPS]
        out += [f"{tag}__diff__{p}__{m}" for p in _DIFF for m in MAPS]
    return out


def _find_face(rgb: np.ndarray, detect_side: int, min_score: float):
    """``(box, score, points)`` of the largest face, or None."""
    from forensics.faces import detect_faces_landmarks

    if min(rgb.shape[:2]) < _MIN_DETECT_SIDE:
        return None
    found = detect_faces_landmarks(rgb, min_score=min_score, max_side=detect_side)
    if not found:
        return None
    x, y, w, h, score, points = found[0]
    return np.array([x, y, w, h], dtype=np.float64), score, points


def _geometry(box, score, points) -> np.ndarray:
    eye_r, eye_l, nose, m_r, m_l = points
    v = eye_l - eye_r
    iod = float(np.hypot(*v))
    ang = np.arctan2(v[1], v[0])
    c, s = np.cos(-ang), np.sin(-ang)
    rot = np.array([[c, -s], [s, c]])
    p = (points - (eye_r + eye_l) / 2) @ rot.T / iod  # eyes at (-0.5, 0) and (0.5, 0)
    mv = m_l - m_r
    tilt = np.arctan2(mv[1], mv[0]) - ang
    tilt = (tilt + np.pi) % (2 * np.pi) - np.pi
    mouth = (p[3] + p[4]) / 2
    return np.array([
        p[2, 0], p[2, 1], p[3, 0], p[3, 1], p[4, 0], p[4, 1],
        float(np.hypot(*mv)) / iod, tilt, mouth[0] - p[2, 0], mouth[1] - p[2, 1],
        score, iod / max(box[2], 1.0), box[3] / max(box[2], 1.0),
    ])  # fmt: skip


def _maps(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The per-pixel maps, stacked (H, W, len(MAPS)) float32 in :data:`MAPS` order, and the CIELAB image."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    light, ca, cb = cv2.split(lab)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
    sat = hsv[..., 1]
    hue = hsv[..., 0] * np.float32(2 * np.pi / 256)
    hue_cos = np.cos(hue) * sat / 255
    hue_sin = np.sin(hue) * sat / 255
    f = rgb.astype(np.float32)
    res = np.log1p(cv2.transform(cv2.absdiff(f, cv2.medianBlur(rgb, 3).astype(np.float32)), _MEAN3))
    res_a = np.log1p(cv2.absdiff(ca, cv2.blur(ca, (3, 3))))
    res_b = np.log1p(cv2.absdiff(cb, cv2.blur(cb, (3, 3))))
    var = np.log1p(cv2.pow(light - cv2.blur(light, (5, 5)), 2))
    lap = np.log1p(np.abs(cv2.Laplacian(light, cv2.CV_32F)))
    gx = cv2.Sobel(light, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(light, cv2.CV_32F, 0, 1)
    grad = np.log1p(cv2.magnitude(gx, gy))
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, _ELA_QUALITY])
    if not ok:  # pragma: no cover - OpenCV's encoder does not fail on a valid 8-bit image
        raise RuntimeError("JPEG encoding failed")
    back = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32)
    ela = np.log1p(cv2.transform(cv2.absdiff(f, back), _MEAN3))
    maps = (light, ca, cb, sat, hue_cos, hue_sin, res, res_a, res_b, var, lap, grad, ela, lap - grad)
    return np.stack(maps, axis=2), lab


def _region(shape, centre, half) -> tuple[slice, slice] | None:
    """The square of half-side ``half`` around ``centre`` clipped to ``shape``; None below 3x3 pixels."""
    h, w = shape[:2]
    x0, x1 = int(max(0, round(centre[0] - half))), int(min(w, round(centre[0] + half)))
    y0, y1 = int(max(0, round(centre[1] - half))), int(min(h, round(centre[1] + half)))
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    return slice(y0, y1), slice(x0, x1)


def _means(integral, shape, centre, half) -> np.ndarray:
    """Means of every map over a region, from the maps' integral image (H + 1, W + 1, len(MAPS))."""
    reg = _region(shape, centre, half)
    if reg is None:
        return np.full(integral.shape[2], np.nan)
    (y0, y1), (x0, x1) = (reg[0].start, reg[0].stop), (reg[1].start, reg[1].stop)
    total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return total / ((y1 - y0) * (x1 - x0))


def _tone(lab, shape, centre, half) -> np.ndarray:
    reg = _region(shape, centre, half)
    if reg is None:
        return np.full(6, np.nan)
    px = lab[reg].reshape(-1, 3)
    return np.concatenate([px.mean(axis=0), px.std(axis=0)])


def _anchors(points: np.ndarray, iod: float) -> dict[str, np.ndarray]:
    eye_r, eye_l, nose, m_r, m_l = points
    mouth = (m_r + m_l) / 2
    cheek_y = (nose[1] + mouth[1]) / 2
    return {
        "eye_r": eye_r,
        "eye_l": eye_l,
        "nose": nose,
        "mouth": mouth,
        "cheek_r": np.array([eye_r[0], cheek_y]),
        "cheek_l": np.array([eye_l[0], cheek_y]),
        "forehead": (eye_r + eye_l) / 2 - np.array([0.0, 0.6 * iod]),
        "chin": mouth + np.array([0.0, 0.45 * iod]),
        "centre": ((eye_r + eye_l) / 2 + mouth) / 2,
        "neck": mouth + np.array([0.0, 1.2 * iod]),
    }


def _card_info(**settings) -> dict:
    """What a model card records about the detector (see :func:`register_block`'s ``card_info``)."""
    import importlib.metadata

    try:
        version = importlib.metadata.version("yuface")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - the block requires it
        version = None
    return {"detector": "libfacedetection YuNet (package yuface), 5 landmarks", "versions": {"yuface": version}}


@register_block(
    "faceparts",
    names=_names,
    presets=("faces",),
    cost="medium",
    requires=("yuface",),
    install_hint="pip install 'forensics[faces]' (or pip install yuface)",
    reference="Farid, IEEE SPM 2009; Kee & Farid, WIFS 2010; Wu et al. (YuNet), MIR 2023",
    card_info=_card_info,
)
def faceparts_features(image, *, radii: tuple = (0.2, 0.3, 0.4), detect_side: int = 128, min_score: float = 0.5, max_size: int = 512) -> np.ndarray:
    """Consistency of the eyes, nose and mouth with the skin around them, and landmark geometry, of
    the largest face (NaN when there is none).

    Parameters
    ----------
    image : array, path, LoadedImage or ImageViews
        The image (converted to 8-bit RGB).
    radii : tuple of float, keyword-only
        Half-sides of the measured squares, as fractions of the inter-ocular distance.
    detect_side : int, keyword-only
        Face detection runs on a copy whose longer side is at most this many pixels.
    min_score : float, keyword-only
        Minimum detector confidence in [0, 1].
    max_size : int, keyword-only
        The region around the face is shrunk (area interpolation) when its longer side exceeds this.

    Returns
    -------
    ndarray of float64
        ``len(faceparts_names(...))`` values: ``face_found`` (1 or 0), then the geometry, the skin
        tone against neck and forehead, the maps over the face centre and, per radius, the ``abs``
        and ``diff`` comparisons (see the module's documentation).
    """
    radii = _check(radii, detect_side, min_score, max_size)
    rgb = as_views(image).rgb
    face = _find_face(rgb, detect_side, float(min_score))
    if face is None:
        out = np.full(_n_features(radii), np.nan)
        out[0] = 0.0
        return out
    box, score, points = face
    return faceparts_from_landmarks(rgb, points, box=box, score=score, radii=radii, max_size=max_size)


def _n_features(radii) -> int:
    return 1 + len(_GEO) + len(_TONE) + len(MAPS) * (1 + len(radii) * (len(_ABS) + len(_DIFF)))


def faceparts_from_landmarks(rgb: np.ndarray, points, *, box=None, score: float = float("nan"), radii: tuple = (0.2, 0.3, 0.4), max_size: int = 512) -> np.ndarray:
    """The block's features for a face whose five landmarks are known (no detection).

    ``rgb``: (H, W, 3) uint8; ``points``: (5, 2) ``(x, y)`` in the detector's order (right eye, left
    eye, nose tip, right and left mouth corners; "right" is the subject's); ``box``: the face box
    ``(x, y, w, h)`` (for the two box features; NaN when omitted); ``score``: detector confidence.
    Returns the values :func:`faceparts_features` gives for that face.
    """
    radii = tuple(float(r) for r in radii)
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    points = np.asarray(points, dtype=np.float64).reshape(5, 2)
    box = np.full(4, np.nan) if box is None else np.asarray(box, dtype=np.float64)
    out = np.full(_n_features(radii), np.nan)
    iod = float(np.linalg.norm(points[1] - points[0]))
    if not iod >= _MIN_IOD:
        out[0] = 0.0
        return out
    anchors = _anchors(points, iod)
    # the image around every region, plus 2 pixels for the filters; origin on the JPEG grid
    reach = max(max(radii), 1.0) * iod + 2
    pts = np.stack(list(anchors.values()))
    h, w = rgb.shape[:2]
    x0 = int(max(0, np.floor(pts[:, 0].min() - reach))) // _GRID * _GRID
    y0 = int(max(0, np.floor(pts[:, 1].min() - reach))) // _GRID * _GRID
    x1 = int(min(w, np.ceil(pts[:, 0].max() + reach)))
    y1 = int(min(h, np.ceil(pts[:, 1].max() + reach)))
    if x1 - x0 < 8 or y1 - y0 < 8:  # landmarks (almost) outside the image
        out[0] = 0.0
        return out
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    shift, scale = np.array([x0, y0], dtype=np.float64), 1.0
    if max(crop.shape[:2]) > max_size:
        scale = max_size / max(crop.shape[:2])
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    anchors = {k: (v - shift) * scale for k, v in anchors.items()}
    iod *= scale
    maps, lab = _maps(crop)
    integral = cv2.integral(maps, sdepth=cv2.CV_64F)

    out[0] = 1.0
    vals = [_geometry(box, score, points)]
    inner = _tone(lab, crop.shape, anchors["centre"], 0.5 * iod)
    for ref in ("neck", "forehead"):
        vals.append(inner - _tone(lab, crop.shape, anchors[ref], 0.3 * iod))
    vals.append(_means(integral, crop.shape, anchors["centre"], iod))
    for r in radii:
        m = {k: _means(integral, crop.shape, anchors[k], r * iod) for k in ("eye_r", "eye_l", "nose", "mouth", "cheek_r", "cheek_l", "forehead", "chin")}
        skin = np.stack([m["cheek_r"], m["cheek_l"], m["forehead"], m["chin"]])
        counted = np.isfinite(skin).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ref = np.where(counted > 0, np.nansum(skin, axis=0) / counted, np.nan)
        diffs = {k: m[k] - ref for k in ("eye_r", "eye_l", "nose", "mouth", "cheek_r", "cheek_l")}
        diffs["eyes"] = m["eye_r"] - m["eye_l"]
        diffs["cheeks"] = m["cheek_r"] - m["cheek_l"]
        vals += [np.abs(diffs[p]) for p in _ABS]
        vals += [diffs[p] for p in _DIFF]
    out[1:] = np.concatenate(vals)
    return out


faceparts_names = _names
__all__ = ["MAPS", "faceparts_features", "faceparts_from_landmarks", "faceparts_names"]
