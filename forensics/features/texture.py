"""``texture``: local binary pattern (LBP) histograms of luminance and chroma.

Camera images owe their micro-texture to optics, sensor noise, demosaicing and the JPEG pipeline;
generators and editing tools synthesise it, and the local ordering of grey levels around a pixel
(which neighbours are brighter than the centre) is where they differ from cameras. LBP histograms
capture that ordering independently of brightness and contrast, which makes them a robust,
cheap texture descriptor (Ojala et al. 2002) that has been used for image forensics ever since
(e.g. splicing and recapture detection, and GAN-image detection in the chroma channels, Li et al. 2020).

Implementation
--------------
Rotation-invariant uniform patterns ("riu2") with ``P = 8`` circular neighbours at each radius ``R``,
exactly as in the paper and in :func:`skimage.feature.local_binary_pattern` (``method="uniform"``):
neighbour ``p`` sits at ``(-R sin(2 pi p / 8), R cos(2 pi p / 8))`` (rows, cols) and the diagonal
neighbours, which fall between pixels, are **bilinearly interpolated** (not rounded). Everything is
array arithmetic on shifted views of the image: an axis neighbour is a shifted view, a diagonal one
is a 2x2 bilinear filter (``cv2.filter2D``) read through a shifted view; each comparison with the
centre is one ``cv2.compare`` and sets one bit of an 8-bit code image. A 256-bin histogram of the
codes is then mapped through lookup tables to the 10 riu2 bins (0-8: uniform pattern with that many
neighbours >= centre, 9: every non-uniform pattern) and, optionally, to the 59 non-rotation-invariant
uniform ("u2") bins. Luminance and Cr are coded together as one two-channel image. Only pixels at
least ``max(radii)`` away from the border are coded (the same pixels for every radius), so no
border extrapolation enters the histograms.

Ties are decided with a tolerance of ``1e-3`` grey levels (``neighbour >= centre - 1e-3``): an
interpolated value that equals the centre up to float rounding counts as ``>=``, so flat regions
(and constant images) always give the "all neighbours >= centre" code whatever the rounding of the
bilinear weights. This is the only deliberate difference from scikit-image, whose float64
interpolation decides such exact ties by rounding error; on natural images the histograms agree to
within about 1e-3 (see ``tests/test_block_texture.py``).

References
----------
.. [1] T. Ojala, M. Pietikäinen and T. Mäenpää, "Multiresolution gray-scale and rotation invariant
       texture classification with local binary patterns", IEEE TPAMI 24(7), 971-987, 2002.
.. [2] H. Li, B. Li, S. Tan and J. Huang, "Identification of deep network generated images using
       disparities in color components", Signal Processing 174, 2020.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from forensics.features.base import as_views, pad_to_min, register_block

_P = 8
_RIU2_BINS = _P + 2  # 0..P uniform patterns by number of ones, P + 1 for every non-uniform pattern
_U2_BINS = _P * (_P - 1) + 3  # 58 uniform patterns + 1 bin for every non-uniform pattern = 59
_TIE = 1e-3  # grey levels; see the module docstring
_CHANNELS = ("y", "cr")


def _transitions(code: int) -> int:
    """Number of 0/1 transitions around the circular 8-bit pattern ``code``."""
    bits = [(code >> p) & 1 for p in range(_P)]
    return sum(bits[p] != bits[(p + 1) % _P] for p in range(_P))


def _build_luts() -> tuple[np.ndarray, np.ndarray]:
    codes = range(1 << _P)
    riu2 = np.array([bin(c).count("1") if _transitions(c) <= 2 else _P + 1 for c in codes], dtype=np.intp)
    uniform = [c for c in codes if _transitions(c) <= 2]  # 58 codes, in increasing code order
    u2 = np.full(1 << _P, len(uniform), dtype=np.intp)
    u2[uniform] = np.arange(len(uniform))
    riu2.setflags(write=False)
    u2.setflags(write=False)
    return riu2, u2


#: 256-entry lookup tables from an 8-bit LBP code (bit p = neighbour p >= centre) to its riu2 bin
#: (0-9) and to its u2 bin (0-58, non-uniform patterns in bin 58).
RIU2_LUT, U2_LUT = _build_luts()


def _names(*, radii=(1, 2, 3), u2=True, max_size=512):
    _check_settings(radii, u2, max_size)
    names = [f"lbp_{ch}__r_{r}__bin_{b:02d}" for ch in _CHANNELS for r in radii for b in range(_RIU2_BINS)]
    names += [f"lbp_{ch}__r_{r}__entropy" for ch in _CHANNELS for r in radii]
    if u2:
        names += [f"lbp_u2_y__r_{min(radii)}__bin_{b:02d}" for b in range(_U2_BINS)]
    return names


def _check_settings(radii, u2, max_size) -> None:
    if not isinstance(radii, (list, tuple)) or not radii or len(set(radii)) != len(radii):
        raise ValueError(f"radii must be a non-empty sequence of distinct positive integers, got {radii!r}")
    for r in radii:
        if isinstance(r, bool) or not isinstance(r, (int, np.integer)) or r < 1:
            raise ValueError(f"radii must contain positive integers, got {r!r}")
    if not isinstance(u2, (bool, np.bool_)):
        raise ValueError(f"u2 must be a bool, got {u2!r}")
    if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size < 2 * max(radii) + 1:
        raise ValueError(f"max_size must be an integer >= 2 * max(radii) + 1, got {max_size!r}")


@functools.lru_cache(maxsize=None)
def _neighbour_offsets(radius: int) -> tuple:
    """Per neighbour ``p``: ``(oy, ox, None)`` for a neighbour on the pixel grid at that offset, or
    ``(oy, ox, kernel)`` with the top-left pixel offset of the 2x2 cell holding it and the 2x2
    bilinear weights. Positions are rounded to 5 decimals, as in scikit-image."""
    out = []
    for p in range(_P):
        theta = 2.0 * np.pi * p / _P
        dy, dx = round(-radius * np.sin(theta), 5), round(radius * np.cos(theta), 5)
        oy, ox = int(np.floor(dy)), int(np.floor(dx))
        fy, fx = dy - oy, dx - ox
        if fy == 0 and fx == 0:
            out.append((oy, ox, None))
        else:
            kernel = np.array([[(1 - fy) * (1 - fx), (1 - fy) * fx], [fy * (1 - fx), fy * fx]], dtype=np.float32)
            kernel.setflags(write=False)
            out.append((oy, ox, kernel))
    return tuple(out)


def lbp_code_histograms(x: np.ndarray, radii=(1, 2, 3), *, margin: int | None = None) -> np.ndarray:
    """256-bin histograms of 8-bit LBP codes of each channel of ``x`` at each radius.

    Parameters
    ----------
    x : ndarray of shape (H, W) or (H, W, C), float32
        The image; all channels are coded by the same array passes.
    radii : sequence of int
        Circle radii in pixels (``P = 8`` neighbours, diagonals bilinearly interpolated).
    margin : int, optional
        Only pixels at least ``margin`` pixels from the border are coded (default and minimum
        ``max(radii)``), so all radii are histogrammed over the same pixels.

    Returns
    -------
    ndarray of shape (len(radii), C, 256), float64
        Code counts; bit ``p`` of a code is set when neighbour ``p`` (at angle ``2 pi p / 8``,
        counter-clockwise from the right, as in scikit-image) is ``>= centre - 1e-3``.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    h, w, c = x.shape
    radii = [int(r) for r in radii]
    m = max(radii) if margin is None else int(margin)
    if min(radii) < 1 or m < max(radii) or h < 2 * m + 1 or w < 2 * m + 1:
        raise ValueError(f"image {h}x{w} too small for margin {m} and radii {radii}")
    x2 = x if c > 1 else x[:, :, 0]  # OpenCV sees (H, W, 1) as 2-D; keep shapes consistent
    ys, ye, xs, xe = m, h - m, m, w - m  # the coded region

    def view(arr: np.ndarray, dy: int, dx: int) -> np.ndarray:
        return arr[ys + dy : ye + dy, xs + dx : xe + dx]

    # Threshold with the tie tolerance, shared by all radii. Few large temporaries, reused across
    # neighbours and radii: allocating fresh image-sized arrays per operation costs more than the
    # arithmetic on a 256 x 256 image.
    thr = view(x2, 0, 0) - np.float32(_TIE)
    buf = np.empty_like(x2)  # interpolated diagonal neighbours (read through shifted views)
    mask = np.empty(thr.shape, dtype=np.uint8)
    code = np.empty(thr.shape, dtype=np.uint8)
    out = np.empty((len(radii), c, 1 << _P), dtype=np.float64)
    for i, r in enumerate(radii):
        for p, (oy, ox, kernel) in enumerate(_neighbour_offsets(r)):
            if kernel is None:  # on the pixel grid (the four axis neighbours)
                nb = view(x2, oy, ox)
            else:
                # Bilinear interpolation is a 2x2 filter anchored at the top-left pixel of the
                # cell holding the neighbour: one pass over the image, read at the cell's offset
                # (only where the cell lies inside the image, so the border mode never matters).
                cv2.filter2D(x2, -1, kernel, dst=buf, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
                nb = view(buf, oy, ox)
            cv2.compare(nb, thr, cv2.CMP_GE, dst=mask)  # 255 or 0
            if p == 0:
                np.bitwise_and(mask, np.uint8(1), out=code)
            else:
                np.bitwise_and(mask, np.uint8(1 << p), out=mask)
                np.bitwise_or(code, mask, out=code)
        for ch in range(c):
            out[i, ch] = cv2.calcHist([code], [ch], None, [1 << _P], [0, 1 << _P]).ravel()
    return out


def _entropy(p: np.ndarray) -> float:
    nz = p[p > 0]
    return float(-(nz * np.log2(nz)).sum())


@register_block(
    "texture",
    names=_names,
    presets=("default",),
    cost="low",
    reference="Ojala, Pietikäinen & Mäenpää, IEEE TPAMI 24(7), 2002",
)
def texture_features(image, *, radii: tuple = (1, 2, 3), u2: bool = True, max_size: int = 512) -> np.ndarray:
    """Rotation-invariant uniform LBP histograms (P = 8, bilinear) of luminance and Cr at several
    radii, their entropies, and a non-rotation-invariant uniform histogram of luminance.

    Parameters
    ----------
    image : array, path, LoadedImage or ImageViews
        The image (converted to 8-bit RGB); luminance is ``Y`` and chroma ``Cr`` of
        :attr:`ImageViews.ycrcb`.
    radii : tuple of int, keyword-only
        Circle radii in pixels, each giving 10 riu2 bins per channel.
    u2 : bool, keyword-only
        Also return the 59-bin uniform (not rotation-invariant) histogram of luminance at the
        smallest radius, which keeps the orientation of edges and lines (JPEG grids, upsampling
        artefacts).
    max_size : int, keyword-only
        Larger images are centre-cropped (never resampled) to at most ``max_size`` x ``max_size``
        pixels, which bounds the cost.

    Returns
    -------
    ndarray of float64
        ``len(texture_names(...))`` values: per channel and radius the 10 riu2 bins (summing to 1),
        then the Shannon entropy (bits) of each of those histograms, then the 59 u2 bins (summing to 1).
        Images smaller than ``2 * max(radii) + 1`` pixels a side are edge-padded first.
    """
    _check_settings(radii, u2, max_size)
    v = as_views(image)
    margin = int(max(radii))
    # (H, W, 2) float32 Y and Cr, so both channels are coded by the same array passes.
    v = v.crop(max_size)
    x = cv2.merge([v.gray, cv2.extractChannel(v.ycrcb, 1)])
    x = pad_to_min(x.reshape(x.shape[0], x.shape[1], 2), 2 * margin + 1)

    counts = lbp_code_histograms(x, radii, margin=margin)  # (n_radii, 2, 256) code counts
    total = counts[0, 0].sum()  # > 0: at least one pixel is coded
    riu2 = np.empty((len(_CHANNELS), len(radii), _RIU2_BINS))
    for i in range(len(radii)):
        for ch in range(len(_CHANNELS)):
            riu2[ch, i] = np.bincount(RIU2_LUT, weights=counts[i, ch], minlength=_RIU2_BINS) / total
    u2_hist = np.bincount(U2_LUT, weights=counts[int(np.argmin(radii)), 0], minlength=_U2_BINS) / total
    out = [riu2.ravel(), np.array([_entropy(h) for h in riu2.reshape(-1, _RIU2_BINS)])]
    if u2:
        out.append(u2_hist)
    return np.concatenate(out)


texture_names = _names
__all__ = ["RIU2_LUT", "U2_LUT", "lbp_code_histograms", "texture_features", "texture_names"]
