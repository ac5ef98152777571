"""``layout``: where on the picture the noise, the detail, the compression error and the colour are.

A region pasted from another picture brings its own noise level, sharpness and compression history;
a generator spreads detail and blur over the frame in its own way. The other blocks summarise the
whole picture, or the spread of its tiles without saying which tile is which; this one keeps the
position. The picture is cut into a ``cells`` x ``cells`` grid, and each cell's level of each map
below is given relative to the median cell of the same picture, in log units. On pictures framed the
same way (face crops, portraits, centred objects) a cell stands for a part of the subject, so a
classifier can learn, for example, that the eyes' cells of a spliced face carry less noise than
its cheeks', without a face detector. It needs nothing beyond the default packages.

Maps (per pixel, then averaged over each cell)
----------------------------------------------
* ``res``: ``|Y - median3x3(Y)|``, the luma noise residual.
* ``kb``: the absolute "KB" high-pass residual of luma (Ker-Böhme kernel ``[-1 2 -1; 2 -4 2; -1 2 -1] / 4``).
* ``res_cr``, ``res_cb``: ``|C - median3x3(C)|`` of the two chroma planes.
* ``ela``: the JPEG recompression error at quality 90, mean over the three channels.
* ``grad``: the luma gradient magnitude after a Gaussian blur of sigma 1 (edges and texture).
* ``lap``: the absolute Laplacian of luma after a Gaussian blur of sigma 2 (coarse detail).
* ``sharp``: ``log(res) - log(grad)`` of the cell, fine noise over edges (a blurred or denoised
  cell has less of it).
* ``a``, ``b``: the mean CIELAB a* and b* of the cell (colour, in CIELAB units).

Every value is ``log(m_cell + 0.05) - median over cells`` for the first seven maps, ``sharp``'s
difference minus its median, and the cell's mean minus the median cell mean for ``a`` and ``b``: 0
for a cell like the picture's typical one, whatever the camera's overall noise or colour. Cells are
numbered by row and column from the top left (``r0c0`` ... ``r7c7``).

Left and right alike (``mirror=True``, the default): each cell is then averaged with its mirror
cell across the vertical midline, which is the same cell of the mirror image (every map but ``ela``
is exactly mirror-symmetric; JPEG's chroma subsampling and rounding make ``ela`` nearly so), and
each row keeps its pairs from the sides in: ``res__r3c0c7`` is the mean of cells (3, 0) and (3, 7),
``r3c3c4`` of the two middle ones (the middle column of an odd grid stands alone, ``r3c2`` of 5).
A face's left and right eye then share their values, so a model that learned from spliced left eyes
knows spliced right ones, and a head turned left or right looks alike. On the face sets this gained
0.02 CV AUC on the splices and lost nothing on the StyleGAN faces; a StyleGAN-face model called about
0.02 more of another camera's real faces fake, inside its spread over seeds (see the README's
Measured results).
``mirror=False`` keeps every cell apart: ``10 * cells**2`` values.

Implementation
--------------
* Pictures larger than ``max_size`` pixels on the longer side are shrunk to it by pixel-area
  averaging (the layout, not the pixel-level noise, is what this block measures, and shrinking keeps
  all of the frame where a crop would keep its centre only); pictures under 16 pixels a side are
  edge-padded to 16.
* Cell means are area-weighted (``cv2.resize`` with ``INTER_AREA`` to ``cells`` x ``cells``), so
  sides that are not multiples of ``cells`` share their border pixels between cells.
* Recompression uses OpenCV's libjpeg(-turbo) through ``ImageViews.jpeg_error``: on shared views
  the ``ela`` block's round trip at quality 90 serves both blocks.

Position-specific features only mean something when the pictures scored are framed like those
trained on. On the face sets here they help (see the README's Measured results); on pictures framed
at random a cell stands for no particular part (not measured: no such labelled set is at hand).

References
----------
.. [1] B. Mahdian and S. Saic, "Using noise inconsistencies for blind image forensics", Image and
       Vision Computing 27(10), 1497-1503, 2009 (local noise levels reveal spliced regions).
.. [2] N. Krawetz, "A picture's worth: digital image analysis and forensics", Black Hat USA, 2007.
.. [3] J. Fridrich and J. Kodovsky, "Rich models for steganalysis of digital images", IEEE TIFS 7(3),
       868-882, 2012 (the KB residual).
"""

from __future__ import annotations

import cv2
import numpy as np

from forensics.features.base import as_views, check_mirror, mirror_column_label, pad_to_min, register_block

_MIN_SIDE = 16
_FLOOR = 0.05  # grey levels: log(m + c) keeps flat cells finite
_ELA_QUALITY = 90
_MEAN3 = np.full((1, 3), 1.0 / 3.0, dtype=np.float32)
_KB = np.array([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]], dtype=np.float32) / 4.0
#: Maps in column order (see the module docstring).
MAPS = ("res", "kb", "res_cr", "res_cb", "ela", "grad", "lap", "sharp", "a", "b")


def _check_settings(cells, max_size, mirror=True) -> None:
    if isinstance(cells, bool) or not isinstance(cells, (int, np.integer)) or not 2 <= cells <= 16:
        raise ValueError(f"cells must be an integer from 2 to 16, got {cells!r}")
    if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size < _MIN_SIDE:
        raise ValueError(f"max_size must be an integer >= {_MIN_SIDE}, got {max_size!r}")
    check_mirror(mirror)


def _cell_labels(cells: int, mirror: bool) -> list[str]:
    """``r{i}c{j}`` per cell; with ``mirror``, ``r{i}c{j}c{k}`` per pair of mirror cells (k = cells - 1 - j)
    from the sides in, and ``r{i}c{j}`` for the middle column of an odd grid."""
    if not mirror:
        return [f"r{i}c{j}" for i in range(cells) for j in range(cells)]
    return [f"r{i}{mirror_column_label(j, cells)}" for i in range(cells) for j in range((cells + 1) // 2)]


def _names(*, cells=8, max_size=512, mirror=True):
    _check_settings(cells, max_size, mirror)
    return [f"{m}__{c}" for m in MAPS for c in _cell_labels(cells, mirror)]


def _cell_means(m: np.ndarray, cells: int) -> np.ndarray:
    return cv2.resize(m, (cells, cells), interpolation=cv2.INTER_AREA).ravel().astype(np.float64)


def _abs_median_residual(plane: np.ndarray) -> np.ndarray:
    return cv2.absdiff(plane, cv2.medianBlur(plane, 3))


@register_block(
    "layout",
    names=_names,
    presets=("default",),
    version=2,  # 2: mirror cells averaged (mirror=True) by default
    cost="low",
    reference="Mahdian & Saic, Image Vis. Comput. 2009; Krawetz, Black Hat 2007",
)
def layout_features(image, *, cells: int = 8, max_size: int = 512, mirror: bool = True) -> np.ndarray:
    """Where the noise, detail, recompression error and colour are: each cell of a grid over the
    picture against the picture's median cell.

    Parameters
    ----------
    image : array, path, LoadedImage or ImageViews
        The image (converted to 8-bit RGB).
    cells : int, keyword-only
        The grid is ``cells`` x ``cells`` (2 to 16).
    max_size : int, keyword-only
        Larger pictures are shrunk (pixel-area averaging) to this many pixels on the longer side.
    mirror : bool, keyword-only
        Average each cell with its mirror cell across the vertical midline (the same cell of the
        mirror image), so that a part changed on the left or on the right of a subject gives the same
        values. ``False`` keeps every cell on its own.

    Returns
    -------
    ndarray of float64
        Map by map (``res``, ``kb``, ``res_cr``, ``res_cb``, ``ela``, ``grad``, ``lap``, ``sharp``,
        ``a``, ``b``), cells in row order: log level minus the median cell's (colour: difference of
        means), 0 for a cell like the picture's median one. ``10 * cells * ceil(cells / 2)`` values
        with ``mirror`` (each row's pairs of mirror cells from the sides in), ``10 * cells**2``
        without.
    """
    _check_settings(cells, max_size, mirror)
    v = as_views(image)
    h, w = v.rgb.shape[:2]
    if max(h, w) > max_size:  # the shrunk copy's own views (colour conversions, JPEG round trip)
        scale = max_size / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        v = as_views(np.ascontiguousarray(cv2.resize(v.rgb, size, interpolation=cv2.INTER_AREA)))
    ycrcb = pad_to_min(v.ycrcb, _MIN_SIDE)
    lab = pad_to_min(v.lab, _MIN_SIDE)
    y = np.ascontiguousarray(ycrcb[:, :, 0])

    res = _abs_median_residual(y)
    kb = np.abs(cv2.filter2D(y, -1, _KB))
    res_cr = _abs_median_residual(np.ascontiguousarray(ycrcb[:, :, 1]))
    res_cb = _abs_median_residual(np.ascontiguousarray(ycrcb[:, :, 2]))
    ela = cv2.transform(v.jpeg_error(_ELA_QUALITY, _MIN_SIDE).astype(np.float32), _MEAN3)  # shared with ``ela``
    smooth = cv2.GaussianBlur(y, (0, 0), 1.0)
    grad = cv2.magnitude(cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=1, scale=0.5),
                         cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=1, scale=0.5))
    lap = np.abs(cv2.Laplacian(cv2.GaussianBlur(y, (0, 0), 2.0), cv2.CV_32F))

    logs = {k: np.log(_cell_means(m, cells) + _FLOOR)
            for k, m in (("res", res), ("kb", kb), ("res_cr", res_cr), ("res_cb", res_cb), ("ela", ela),
                         ("grad", grad), ("lap", lap))}
    logs["sharp"] = logs["res"] - logs["grad"]
    logs["a"] = _cell_means(np.ascontiguousarray(lab[:, :, 1]), cells)
    logs["b"] = _cell_means(np.ascontiguousarray(lab[:, :, 2]), cells)
    out = np.stack([logs[k] - np.median(logs[k]) for k in MAPS]).reshape(len(MAPS), cells, cells)
    if mirror:
        out = ((out + out[:, :, ::-1]) / 2)[:, :, : (cells + 1) // 2]
    return out.ravel()


layout_names = _names
