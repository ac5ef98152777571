"""``hog``: which way the edges run, and where: histograms of oriented gradients over a grid.

A part pasted into a face (an eye, a nose, a mouth) is drawn from another face: its outline, the fold
of its lid, the line of its brows sit at angles and in places that do not quite continue the face
around them, even when its noise and colour were blended in. ``layout`` measures how much noise and
detail each cell of the picture holds; this block measures the *direction* of the detail in each
cell, the descriptor of Dalal & Triggs (2005): the luma's gradient orientations, histogrammed per
cell and weighted by gradient magnitude, each cell's histogram normalised by the contrast of the
2 x 2 cells around it, so that the shape counts and not the lighting. On pictures framed the same way
(face crops) a cell stands for a part of the face and the classifier learns how its edges normally
run. It needs nothing beyond the default packages.

What it sees is shape, and shape is also pose and content. On faces-photoshop the spliced faces are
more often frontal than the real ones; the gain this block brings there holds within bins of equal
head turn (see the README's Measured results), but a model can still learn a set's poses or subjects
along with its splices. Measure it on your own pictures before trusting it on another source.
It is in the ``default`` preset because on the shared sets it made the models *more* general, not
less: fewer false positives on another camera's real faces and leave-one-set-out above chance on
every set (the README's Measured results), and its gain on the splices holds between pictures whose
faces are framed alike (``forensics audit --framing``).

Implementation
--------------
* The luma (ITU-R BT.601, as the other blocks) is resized to ``size`` x ``size`` pixels (pixel-area
  averaging when shrinking, bilinear when enlarging), so a cell is a fixed fraction of the frame
  whatever the picture's size and aspect ratio.
* Then the descriptor of :func:`skimage.feature.hog` (``block_norm="L2-Hys"``, ``cells_per_block=(2,
  2)``), computed here in vectorised NumPy: central-difference gradients, ``orientations`` unsigned
  orientation bins over 0-180 degrees with scikit-image's bin edges, each cell's gradient magnitudes
  summed per bin over its ``size / cells`` x ``size / cells`` pixels and divided by its area, blocks of
  2 x 2 cells normalised with L2-Hys (L2, clipped at 0.2, L2 again), every overlapping block position.
  Every pixel falls in the same bin as in scikit-image; the values agree with it to a few units in
  the last place of single precision (scikit-image sums each cell in single precision, NumPy in
  double), which the tests check. It is about four times faster than two calls to scikit-image with
  the mirror, because the mirror image's gradients are the picture's with the horizontal one negated:
  one gradient pass, one magnitude, two orientation histograms.
* A flat picture has no gradient: every value is 0.

Features are named by the cell, the 2 x 2 block that normalised it (by its top-left cell) and the
orientation bin: ``r2c3__blk_r1c3__o40`` is cell (2, 3)'s bin for orientations 40-60 degrees, as
normalised in the block whose top-left cell is (1, 3). A cell inside the grid appears in four blocks, an edge cell in two, a corner cell in one.
``cells`` x ``cells`` cells give ``(cells - 1)**2 * 4 * orientations`` values (1764 for the defaults)
with ``mirror=False``.

Left and right alike (``mirror=True``, the default): the histograms of the picture and of its mirror
image are averaged, value by value, so that the picture and its mirror image give the same vector
and a part changed on the left or on the right of a face gives the same values. The blocks of the
right half then repeat those of the left half (with the orientations mirrored) and are dropped: the
blocks of the left half and the middle are kept, ``(cells - 1) * ceil((cells - 1) / 2) * 4 *
orientations`` values (1008 for the defaults), named by each column and its mirror column:
``r2c1c6__blk_r1c0c6__o40`` is cell (2, 1), with cell (2, 6) of the picture folded onto it, in the
block whose top-left cell is (1, 0) (its mirror block's is (1, 6)). It costs two HOG passes.

References
----------
.. [1] N. Dalal and B. Triggs, "Histograms of oriented gradients for human detection", CVPR 2005.
"""

from __future__ import annotations

import cv2
from functools import lru_cache

import numpy as np

from forensics.features.base import as_views, check_mirror, mirror_column_label, register_block


def _check_settings(cells, size, orientations, mirror=True) -> None:
    for name, value, lo, hi in (("cells", cells, 2, 16), ("orientations", orientations, 2, 36)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
            raise ValueError(f"{name} must be an integer from {lo} to {hi}, got {value!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2 * cells or size % cells:
        raise ValueError(f"size must be an integer multiple of cells ({cells}) of at least {2 * cells} "
                         f"(each cell at least 2 pixels), got {size!r}")
    check_mirror(mirror)


def _kept_block_columns(cells: int) -> int:
    """With ``mirror``: the block columns of the left half and the middle, ceil((cells - 1) / 2)."""
    return cells // 2


def _names(*, cells=8, size=128, orientations=9, mirror=True):
    _check_settings(cells, size, orientations, mirror)
    step = 180.0 / orientations
    bins = [f"o{round(k * step):d}" if float(k * step).is_integer() else f"o{k * step:.1f}" for k in range(orientations)]
    n = cells - 1  # block positions a side
    if not mirror:
        return [f"r{i + a}c{j + b}__blk_r{i}c{j}__{o}"
                for i in range(n) for j in range(n) for a in (0, 1) for b in (0, 1) for o in bins]
    return [f"r{i + a}{mirror_column_label(j + b, cells)}__blk_r{i}{mirror_column_label(j, n)}__{o}"
            for i in range(n) for j in range(_kept_block_columns(cells)) for a in (0, 1) for b in (0, 1) for o in bins]


@register_block(
    "hog",
    names=_names,
    presets=("default",),
    version=2,  # 2: averaged with the mirror image (mirror=True) by default
    cost="low",
    reference="Dalal & Triggs, CVPR 2005",
)
def hog_features(image, *, cells: int = 8, size: int = 128, orientations: int = 9, mirror: bool = True) -> np.ndarray:
    """Which way the edges run in each cell of a grid over the picture: histograms of oriented
    gradients of the luma, normalised over 2 x 2 cells.

    Parameters
    ----------
    image : array, path, LoadedImage or ImageViews
        The image (converted to 8-bit RGB).
    cells : int, keyword-only
        The grid is ``cells`` x ``cells`` (2 to 16).
    size : int, keyword-only
        The luma is resized to ``size`` x ``size`` pixels first; a multiple of ``cells``.
    orientations : int, keyword-only
        Orientation bins over 0-180 degrees (2 to 36).
    mirror : bool, keyword-only
        Average each value with the same one of the mirror image (left and right swapped), and keep
        the blocks of the left half and the middle: a part changed on the left or on the right of a
        subject gives the same values, and the picture and its mirror image the same vector.
        ``False`` keeps the picture's own histograms, every block.

    Returns
    -------
    ndarray of float64
        Values in [0, 1], block by block in row order, then the block's four cells in row order, then
        the orientation bins: ``(cells - 1)**2 * 4 * orientations`` without ``mirror``,
        ``(cells - 1) * ceil((cells - 1) / 2) * 4 * orientations`` with it.
    """
    _check_settings(cells, size, orientations, mirror)
    v = as_views(image)
    y = v.ycrcb[:, :, 0]
    h, w = y.shape[:2]
    interp = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
    y = cv2.resize(np.ascontiguousarray(y, dtype=np.float32), (size, size), interpolation=interp) / 255.0
    out = _normalised_blocks(_cell_histograms(y, cells, orientations, mirror), cells)
    # (picture or mirror, block row, block column, cell row, cell column, orientation)
    if mirror:
        return ((out[0] + out[1]) / 2)[:, : _kept_block_columns(cells)].ravel()
    return out[0].ravel()


@lru_cache(maxsize=16)
def _cell_layout(size: int, cells: int, orientations: int) -> tuple[np.ndarray, np.ndarray]:
    """Each pixel's offset of its cell's histogram in a flat (cell row, cell column, bin + 1) array,
    and the bin edges as scikit-image compares them (single precision), with +inf appended."""
    cell_of = np.arange(size) // (size // cells)
    offsets = ((cell_of[:, None] * cells + cell_of[None, :]) * (orientations + 1)).ravel()
    edges = np.float32(180.0 / orientations) * np.arange(orientations + 1, dtype=np.float32)
    offsets.flags.writeable = False
    return offsets, np.append(edges.astype(np.float64), np.inf)


def _cell_histograms(y: np.ndarray, cells: int, orientations: int, mirror: bool) -> np.ndarray:
    """(1 or 2, cells, cells, orientations) histograms of the square plane ``y`` (and of its mirror
    image, cells in the mirror image's order), each cell's magnitudes summed per bin over its area."""
    size = y.shape[0]
    g_row = np.zeros((size, size))
    g_col = np.zeros((size, size))
    g_row[1:-1, :] = y[2:, :] - y[:-2, :]  # in y's precision, as scikit-image, then widened
    g_col[:, 1:-1] = y[:, 2:] - y[:, :-2]
    g_row, g_col = g_row.ravel(), g_col.ravel()
    magnitude = np.hypot(g_col, g_row)
    offsets, edges = _cell_layout(size, cells, orientations)
    n = cells * cells * (orientations + 1)
    hists = []
    # The mirror image's gradient at the mirrored pixel: the same vertical one, the horizontal one
    # negated (0.0 - g keeps a zero positive, as a subtraction in the mirror image gives it).
    for g_h in (g_col, 0.0 - g_col) if mirror else (g_col,):
        angle = np.arctan2(g_row, g_h) * (180 / np.pi)  # scikit-image's expression, then % 180:
        angle[angle < 0] += 180
        angle[angle >= 180] = 0
        # bin i holds [edges[i], edges[i + 1]): a first guess, corrected by the exact comparisons
        b = np.minimum((angle * (orientations / 180.0)).astype(np.intp), orientations)
        b -= angle < edges[b]
        b += angle >= edges[b + 1]  # b == orientations: past the last edge, counted nowhere
        hist = np.bincount(offsets + b, weights=magnitude, minlength=n)
        hists.append(hist.reshape(cells, cells, orientations + 1)[:, :, :orientations])
    if mirror:
        hists[1] = hists[1][:, ::-1]
    return np.stack(hists) / (size // cells) ** 2


def _normalised_blocks(hists: np.ndarray, cells: int, eps: float = 1e-5) -> np.ndarray:
    """Every 2 x 2 block of cells, L2-Hys normalised, rounded to single precision as scikit-image's."""
    blocks = np.empty((hists.shape[0], cells - 1, cells - 1, 2, 2, hists.shape[-1]))
    for a in (0, 1):
        for b in (0, 1):
            blocks[:, :, :, a, b] = hists[:, a : cells - 1 + a, b : cells - 1 + b]
    blocks /= np.sqrt((blocks * blocks).sum(axis=(3, 4, 5), keepdims=True) + eps**2)
    np.minimum(blocks, 0.2, out=blocks)
    blocks /= np.sqrt((blocks * blocks).sum(axis=(3, 4, 5), keepdims=True) + eps**2)
    return blocks.astype(np.float32).astype(np.float64)


hog_names = _names
