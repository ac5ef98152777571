"""``ela``: error level analysis, how the image responds to JPEG recompression.

Recompressing an image with JPEG at quality ``q`` changes it a lot when it has never been compressed
at that quality or lower, and little when it already carries the quantisation of an equal or lower
quality on the same 8x8 grid. So the size of the recompression error at several qualities, and how
it changes with the quality, reflect the image's compression history; a region pasted from another
source, or synthesised by a generator and blended in, often has a different history from the rest
of the picture and stands out as a patch of different error level (Krawetz 2007). The block reduces
the error images to scale-free statistics (ratios, spreads relative to levels) so that they do not
key on one dataset's camera or JPEG pipeline, plus two measures of the input's own 8x8 blockiness.

Implementation
--------------
* The image is centre-cropped (never resampled) to at most ``max_size`` pixels a side, with the crop
  origin on a multiple of 16 pixels so that a previous JPEG grid (8x8 luma blocks, 16x16 chroma MCUs
  with 4:2:0 subsampling) stays aligned with the recompression grid; images under 16 pixels a side
  are edge-padded to 16.
* Recompression uses OpenCV's libjpeg(-turbo) (``cv2.imencode``/``cv2.imdecode``, BGR order, its
  default 4:2:0 chroma subsampling). The error image ``E_q`` is the per-pixel mean over the three
  channels of ``|image - recompressed|`` (grey levels, multiples of 1/3).
* Global statistics of ``E_q`` are exact, from its histogram (percentiles are the "inverted CDF"
  ones, i.e. an actual value of ``E_q``). Regional statistics use non-overlapping ``patch`` x
  ``patch`` tiles (``patch`` is clamped to half the shorter side so there are at least 2 x 2 tiles).
* "Activity" is the image's own mean absolute luma gradient ``(|dY/dx| + |dY/dy|) / 2``: the
  recompression error of a never-compressed image grows with its high-frequency content, so
  ``E_q`` relative to activity compares compression history across contents.
* Tile spreads: the coefficient of variation of tile means is their std over the global mean error;
  that of tile standard deviations and of the tile error-to-activity ratios (``pratio``, tile mean
  error over tile mean activity plus 1 grey level, so that flat tiles do not explode) is relative
  to their own mean.
* ``input_blockiness__h``/``__v`` measure the input's own JPEG grid: mean absolute luma step across
  8x8 block boundaries over that inside blocks (1 for a never-compressed image). They are cheap and
  informative, but a classifier can use them to learn "JPEG vs PNG" when a training set's real and
  fake images come in different formats; check for that shortcut.
* Ratios of two non-negative levels are ``(a + c) / (b + c)`` and spreads relative to a level are
  ``s / (level + c)``, with ``c = 0.01`` grey levels, so that constant or already-identical images
  give finite, neutral values (1 and 0).

References
----------
.. [1] N. Krawetz, "A picture's worth: digital image analysis and forensics", Black Hat USA, 2007.
.. [2] D. C. Jeronymo, Y. C. C. Borges and L. dos Santos Coelho, "Image forgery detection by
       semi-automatic wavelet soft-thresholding with error level analysis", Expert Systems with
       Applications 85, 348-356, 2017.
.. [3] T. S. Gunawan, S. A. M. Hanafiah, M. Kartiwi et al., "Development of photo forensics algorithm
       by detecting Photoshop manipulation using error level analysis", Indonesian Journal of
       Electrical Engineering and Computer Science 7(1), 131-137, 2017 (block-wise ELA consistency).
"""

from __future__ import annotations

import cv2
import numpy as np

from forensics.features.base import as_views, pad_to_min, register_block

_FLOOR = 0.01  # grey levels, see the module docstring
_ACT_FLOOR = 1.0  # grey levels per pixel: patches flatter than this count as this flat
_MIN_SIDE = 16  # smaller images are edge-padded to 16 x 16 (two JPEG blocks a side)
_ALIGN = 16  # crop origin alignment: 8x8 luma blocks and 16x16 4:2:0 chroma MCUs
_PERCENTILES = (50, 90, 99)
_GLOBAL = ("mean", "mean_rel_activity", "cv", *(f"p{p}_rel" for p in _PERCENTILES), "grid_ratio")
_REGIONAL = (
    "pmean_cv",
    "pmean_max_med",
    "pmean_iqr_rel",
    "pstd_cv",
    "pstd_max_med",
    "pstd_iqr_rel",
    "pratio_cv",
    "pratio_max_med",
)


def _check_settings(qualities, patch, max_size) -> tuple:
    if not isinstance(qualities, (list, tuple)) or not qualities:
        raise ValueError(f"qualities must be a non-empty sequence of JPEG qualities, got {qualities!r}")
    for q in qualities:
        if isinstance(q, bool) or not isinstance(q, (int, np.integer)) or not 1 <= q <= 100:
            raise ValueError(f"qualities must contain integers in [1, 100], got {q!r}")
    if len(set(qualities)) != len(qualities):
        raise ValueError(f"qualities must be distinct, got {qualities!r}")
    if isinstance(patch, bool) or not isinstance(patch, (int, np.integer)) or patch < 2:
        raise ValueError(f"patch must be an integer >= 2, got {patch!r}")
    if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size < _MIN_SIDE:
        raise ValueError(f"max_size must be an integer >= {_MIN_SIDE}, got {max_size!r}")
    return tuple(int(q) for q in qualities)


def _names(*, qualities=(95, 90, 75), patch=32, max_size=512):
    qualities = _check_settings(qualities, patch, max_size)
    names = []
    for q in qualities:
        names += [f"q_{q}__{stat}" for stat in _GLOBAL]
        names += [f"q_{q}__patch_{patch}__{stat}" for stat in _REGIONAL]
    ref = qualities[-1]
    names += [f"mean_ratio__q_{q}__q_{ref}" for q in qualities[:-1]]
    names += ["input_blockiness__h", "input_blockiness__v"]
    return names





def _ratio(a, b):
    """``(a + c) / (b + c)`` for non-negative levels ``a``, ``b`` (arrays or floats)."""
    return (a + _FLOOR) / (b + _FLOOR)


def _rel(spread, level):
    """``spread / (level + c)`` for a non-negative level (arrays or floats)."""
    return spread / (level + _FLOOR)


def _patch_sums(img: np.ndarray, p: int) -> np.ndarray:
    """Sums of ``img`` (H, W) over the non-overlapping ``p`` x ``p`` tiles that fit, flattened."""
    nh, nw = img.shape[0] // p, img.shape[1] // p
    t = img[: nh * p, : nw * p]
    return t.reshape(nh, p, nw * p).sum(axis=1).reshape(nh * nw, p).sum(axis=1)


def _grid_position_sums(img: np.ndarray) -> np.ndarray:
    """(8, 8) sums of ``img`` by pixel position inside its 8x8 blocks (whole blocks only)."""
    h8, w8 = img.shape[0] // 8 * 8, img.shape[1] // 8 * 8
    t = img[:h8, :w8]
    return t.reshape(h8 // 8, 8 * w8).sum(axis=0).reshape(8, w8 // 8, 8).sum(axis=1)


#: Pixels on an 8x8 block boundary (row or column 0 or 7 inside the block).
_EDGE = np.zeros((8, 8), dtype=bool)
_EDGE[[0, 7], :] = True
_EDGE[:, [0, 7]] = True


def _spread_stats(rows: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Per row of ``rows`` (k, n): std relative to ``levels`` (k,), max/median and IQR/median.

    Quantiles are linearly interpolated, as :func:`numpy.percentile`.
    """
    v = np.sort(rows, axis=1)
    pos = np.array([0.25, 0.5, 0.75]) * (v.shape[1] - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, v.shape[1] - 1)
    q = v[:, lo] + (v[:, hi] - v[:, lo]) * (pos - lo)  # (k, 3): q25, median, q75
    med = q[:, 1]
    return np.column_stack([_rel(v.std(axis=1), levels), _ratio(v[:, -1], med), _rel(q[:, 2] - q[:, 0], med)])


def _blockiness(col_means: np.ndarray) -> float:
    """Mean absolute difference across 8-pixel block boundaries over that within blocks.

    ``col_means[j]`` is the mean ``|I[:, j + 1] - I[:, j]|``; boundaries are ``j = 7 mod 8``.
    """
    n = col_means.shape[0]
    if n < 8:
        return 1.0
    boundary = (np.arange(n) % 8) == 7
    return float(_ratio(col_means[boundary].mean(), col_means[~boundary].mean()))


@register_block(
    "ela",
    names=_names,
    presets=("default",),
    cost="medium",
    reference="Krawetz, Black Hat 2007; Jeronymo et al., Expert Syst. Appl. 2017",
)
def ela_features(image, *, qualities: tuple = (95, 90, 75), patch: int = 32, max_size: int = 512) -> np.ndarray:
    """Error level analysis: global and regional statistics of the JPEG recompression error at
    several qualities, their cross-quality ratios, and the input's 8x8 blockiness.

    Parameters
    ----------
    image : array, path, LoadedImage or ImageViews
        The image (converted to 8-bit RGB).
    qualities : tuple of int, keyword-only
        JPEG qualities (1-100) to recompress at. The last one is the reference of the
        ``mean_ratio`` features.
    patch : int, keyword-only
        Side of the square tiles of the regional statistics, clamped to half the shorter side.
    max_size : int, keyword-only
        Larger images are centre-cropped (never resampled, origin aligned to 16 pixels) to at most
        ``max_size`` x ``max_size`` pixels, which bounds the cost.

    Returns
    -------
    ndarray of float64
        ``len(ela_names(...))`` values. Per quality ``q``, with ``E`` the recompression error
        (grey levels): ``mean`` (the only absolute level), ``mean_rel_activity`` (mean over the
        mean absolute luma gradient), ``cv`` (std/mean), ``p50_rel``/``p90_rel``/``p99_rel``
        (percentiles over the mean), ``grid_ratio`` (mean on 8x8 block-boundary pixels over the
        mean inside blocks); over tiles (``q_<q>__patch_<patch>__*``), the coefficient of
        variation, max/median and IQR/median of the tile means (``pmean_*``) and tile standard
        deviations (``pstd_*``), and the coefficient of variation and max/median of tile mean error
        over tile activity (``pratio_*``). Then ``mean_ratio__q_<q>__q_<last>``, each quality's
        mean error over the last quality's, and ``input_blockiness__h``/``__v``, the input's mean
        absolute luma step across 8x8 block boundaries over that inside blocks.
    """
    qualities = _check_settings(qualities, patch, max_size)
    v = as_views(image).crop(max_size)
    gray = pad_to_min(v.gray, _MIN_SIDE)
    h, w = gray.shape
    p = int(min(patch, min(h, w) // 2))

    # Luma activity |dY/dx| + |dY/dy| (forward differences, 0 past the last row/column).
    dx = np.empty((h, w), dtype=np.float32)
    dy = np.empty((h, w), dtype=np.float32)
    dx[:, -1] = 0.0
    dy[-1, :] = 0.0
    cv2.absdiff(gray[:, 1:], gray[:, :-1], dst=dx[:, :-1])
    cv2.absdiff(gray[1:, :], gray[:-1, :], dst=dy[:-1, :])
    blockiness_h = _blockiness(dx[:, :-1].mean(axis=0))
    blockiness_v = _blockiness(dy[:-1, :].mean(axis=1))
    activity = cv2.add(dx, dy, dst=dx)  # twice the per-pixel activity
    activity_mean = 0.5 * float(activity.sum()) / (h * w)
    patch_area = float(p * p)
    patch_activity = 0.5 * _patch_sums(activity, p) / patch_area
    del dx, dy, activity

    # Work buffers reused across qualities (few large temporaries keeps this fast).
    s16 = np.empty((h, w), dtype=np.uint16)  # sum over channels of |difference|, 0..765
    s = np.empty((h, w), dtype=np.float32)
    s2 = np.empty((h, w), dtype=np.float32)
    hists, grids, patch_rows = [], [], []
    for q in qualities:
        c0, c1, c2 = cv2.split(v.jpeg_error(q, _MIN_SIDE))
        cv2.add(c0, c1, dst=s16, dtype=cv2.CV_16U)
        cv2.add(s16, c2, dst=s16, dtype=cv2.CV_16U)
        hists.append(cv2.calcHist([s16], [0], None, [766], [0, 766]).ravel())
        np.copyto(s, s16)
        cv2.multiply(s, s, dst=s2)
        grids.append(_grid_position_sums(s))
        pmean = _patch_sums(s, p) / (3.0 * patch_area)
        pstd = np.sqrt(np.maximum(_patch_sums(s2, p) / (9.0 * patch_area) - pmean * pmean, 0.0))
        patch_rows += [pmean, pstd, pmean / (patch_activity + _ACT_FLOOR)]

    # Global statistics, exact from the histograms of the integer channel sums (in grey levels).
    hist = np.asarray(hists, dtype=np.float64)  # (Q, 766)
    n_pix = hist[0].sum()
    levels = np.arange(hist.shape[1]) / 3.0
    mean = hist @ levels / n_pix
    std = np.sqrt(np.maximum(hist @ (levels * levels) / n_pix - mean * mean, 0.0))
    cdf = np.cumsum(hist, axis=1)
    targets = np.array(_PERCENTILES) / 100.0 * n_pix - 1e-9
    pct = np.argmax(cdf[:, None, :] >= targets[None, :, None], axis=2) / 3.0  # (Q, 3), inverted CDF
    grid = np.asarray(grids, dtype=np.float64) / (3.0 * (h // 8) * (w // 8))  # mean error by position
    grid_ratio = _ratio(grid[:, _EDGE].mean(axis=1), grid[:, ~_EDGE].mean(axis=1))
    # Regional statistics: rows are (pmean, pstd, pratio) per quality; pmean spreads are relative
    # to the global mean error, the others to their own mean.
    rows = np.asarray(patch_rows, dtype=np.float64)
    row_levels = rows.mean(axis=1)
    row_levels[0::3] = mean
    spread = _spread_stats(rows, row_levels).reshape(len(qualities), 3, 3)
    per_q = np.column_stack(
        [
            mean,
            _ratio(mean, activity_mean),
            _rel(std, mean),
            _rel(pct, mean[:, None]),
            grid_ratio,
            spread[:, 0, :],
            spread[:, 1, :],
            spread[:, 2, :2],
        ]
    )
    cross = _ratio(mean[:-1], mean[-1])
    return np.concatenate([per_q.ravel(), cross, [blockiness_h, blockiness_v]])


ela_names = _names
__all__ = ["ela_features", "ela_names"]
