"""``noise``: statistics of high-pass noise residuals (a compact spatial rich model).

What is left after removing the predictable part of an image (its residual) carries the traces of
how the pixels were made: sensor noise, demosaicing and JPEG in cameras; the smooth, correlated
output of the last up-convolutions in generators. Rich models describe residuals by the histograms
and co-occurrences of their quantised, truncated values (Fridrich & Kodovsky 2012), which are
also what the first layers of residual CNNs compute (Cozzolino et al. 2017); co-occurrences alone
already separate GAN images from photographs (Nataraj et al. 2019).

References
----------
.. [1] J. Fridrich and J. Kodovsky, "Rich models for steganalysis of digital images", IEEE
       Transactions on Information Forensics and Security 7(3), 2012.
.. [2] D. Cozzolino, G. Poggi and L. Verdoliva, "Recasting residual-based local descriptors as
       convolutional neural networks: an application to image forgery detection", ACM IH&MMSec 2017.
.. [3] L. Nataraj, T. M. Mohammed, B. S. Manjunath, S. Chandrasekaran, A. Flenner, J. H. Bappy
       and A. K. Roy-Chowdhury, "Detecting GAN generated fake images using co-occurrence matrices",
       Electronic Imaging 2019 (arXiv:1903.06836).
.. [4] A. C. Popescu and H. Farid, "Exposing digital forgeries in color filter array interpolated
       images", IEEE Transactions on Signal Processing 53(10), 2005.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from forensics.features.base import as_views, channel_correlations, pad_to_min, register_block

#: SRM-style high-pass kernels (cross-correlation, anchor at the centre) and their default
#: quantisation steps (the central coefficient, Fridrich's q = c).
_K3 = np.array([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]])
_K5 = np.array(
    [
        [-1, 2, -2, 2, -1],
        [2, -6, 8, -6, 2],
        [-2, 8, -12, 8, -2],
        [2, -6, 8, -6, 2],
        [-1, 2, -2, 2, -1],
    ]
)
_FILTERS: tuple[tuple[str, np.ndarray, float], ...] = (
    ("d1h", np.array([[0, -1, 1]]), 1.0),  # x[j+1] - x[j]
    ("d1v", np.array([[0], [-1], [1]]), 1.0),
    ("d2h", np.array([[1, -2, 1]]), 2.0),  # x[j-1] - 2 x[j] + x[j+1]
    ("d2v", np.array([[1], [-2], [1]]), 2.0),
    ("d3h", np.array([[0, 1, -3, 3, -1]]), 3.0),  # x[j-1] - 3 x[j] + 3 x[j+1] - x[j+2]
    ("d3v", np.array([[0], [1], [-3], [3], [-1]]), 3.0),
    ("kb", _K3, 4.0),  # the 3x3 "KB" square kernel
    ("kv", _K5, 12.0),  # the 5x5 "KV" square kernel
)
_KERNELS = tuple((k.astype(np.float32), float(np.sqrt((k**2).sum())), q) for _, k, q in _FILTERS)
#: Border cropped from every residual before statistics (the largest kernel reaches 2 pixels).
_BORDER = 2
_MIN_SIZE = 8
#: Residual std floor, in grey levels (8-bit quantisation noise is 0.29).
_EPS_STD = 1e-2
#: Second-moment floor (grey levels squared) of the kurtosis; a flat residual gets kurtosis 3.
_EPS_M2 = 1e-6
#: Range of the median-filter residual histogram; the end bins collect the tails.
_MEDIAN_RANGE = 3
#: The luminance is snapped to multiples of 1/_SNAP so that rounding ties of the quantiser (frequent
#: for grey images, whose float luma is an integer up to 1e-5) break the same way on every machine.
_SNAP = 64.0
_PAIRS = ("rg", "rb", "gb")


def _lvl(v: int) -> str:
    return f"m{-v}" if v < 0 else str(v)


def _step_name(step: float) -> str:
    return f"{step:g}".replace(".", "p").replace("-", "m")


@lru_cache(maxsize=None)
def _orbits(truncation: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Classes of value pairs (a, b) in [-T, T]^2 under sign flip and swap.

    Returns the class index of each of the (2T+1)^2 pairs (row-major in (a + T, b + T)) and the
    class names ``a_b`` of their representatives (the largest of the four equivalent pairs).
    """
    t = truncation
    reps = {}
    for a in range(-t, t + 1):
        for b in range(-t, t + 1):
            reps[(a, b)] = max((a, b), (-a, -b), (b, a), (-b, -a))
    classes = sorted(set(reps.values()))
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[reps[(a, b)]] for a in range(-t, t + 1) for b in range(-t, t + 1)], dtype=np.intp)
    return labels, tuple(f"{_lvl(a)}_{_lvl(b)}" for a, b in classes)


def _names(*, truncation=2, step_scale=1.0, max_size=512):
    _, orbit_names = _orbits(int(truncation))
    names = []
    for fname, _, step in _FILTERS:
        prefix = f"{fname}_q{_step_name(step * step_scale)}"
        names += [f"{prefix}__log_std_rel", f"{prefix}__log_kurt"]
        names += [f"{prefix}__hist_t{truncation}__{_lvl(v)}" for v in range(-truncation, truncation + 1)]
        for direction in ("h", "v"):
            names += [f"{prefix}__cooc_{direction}_t{truncation}__{o}" for o in orbit_names]
    names += ["median_resid__log_std_rel", "median_resid__log_kurt"]
    names += [f"median_resid__hist__{_lvl(v)}" for v in range(-_MEDIAN_RANGE, _MEDIAN_RANGE + 1)]
    names += [f"xcorr_lap__{p}" for p in _PAIRS] + [f"xcorr_median__{p}" for p in _PAIRS]
    names += [f"cfa__{ch}__{k}" for ch in "rgb" for k in ("diag", "rows", "cols")]
    return names


def _log_std_rel(m2: float, gain: float, std_ref: float) -> float:
    """log((rms / gain + eps) / (std_ref + eps)): 0 for white noise and for flat images."""
    return float(np.log((np.sqrt(max(m2, 0.0)) / gain + _EPS_STD) / (std_ref + _EPS_STD)))


def _log_kurt(m2: float, m4: float) -> float:
    """log of the (non-excess) kurtosis about zero; log 3 for Gaussian and for flat residuals."""
    return float(np.log((m4 + 3.0 * _EPS_M2**2) / (m2 + _EPS_M2) ** 2))


@register_block(
    "noise",
    names=_names,
    presets=("default",),
    cost="medium",
    reference="Fridrich & Kodovsky, IEEE TIFS 2012; Cozzolino et al., IH&MMSec 2017; Nataraj et al., EI 2019",
)
def noise_features(image, *, truncation: int = 2, step_scale: float = 1.0, max_size: int = 512) -> np.ndarray:
    """Histograms and co-occurrences of quantised SRM residuals of the luminance, a median-filter
    residual, cross-channel residual correlations and colour-filter-array (demosaicing) traces.

    Computed on a centre crop of at most ``max_size`` pixels (never resampled; tiny images are
    edge-padded to 8 pixels). The luminance is snapped to multiples of 1/64 grey level (so that the
    quantiser's rounding ties break the same way everywhere), filtered with reflected borders, and a
    2-pixel border is dropped before any statistic.

    Features, for each of the eight residuals ``d1h``, ``d1v`` (first-order differences), ``d2h``,
    ``d2v`` (second order), ``d3h``, ``d3v`` (third order), ``kb`` (3x3) and ``kv`` (5x5), named
    ``{filter}_q{step}``:

    - ``log_std_rel``: log of the residual RMS divided by the kernel's L2 norm, relative to the
      luminance std (0 for white noise; invariant to a contrast gain).
    - ``log_kurt``: log kurtosis of the unquantised residual (about zero; log 3 for Gaussian).
    - ``hist_t{T}__*``: shares of the 2T+1 values of ``clip(round(residual / step), -T, T)``
      (rounding half to even, symmetric in sign).
    - ``cooc_h_t{T}__*`` and ``cooc_v_t{T}__*``: co-occurrences of horizontally and vertically
      adjacent quantised values, normalised to sum 1 and merged over the sign-flip and swap
      symmetries of natural images (pairs (a, b), (-a, -b), (b, a) and (-b, -a) form one class,
      named by the largest of them): 9 classes for T = 2 instead of 25.
      Histogram and co-occurrences are counted over the pixels having a right and a lower
      neighbour, as margins of one joint histogram of (pixel, right, lower) values.

    Then ``median_resid``: Y - median3x3(Y) on the 8-bit luminance (``log_std_rel``, ``log_kurt``
    and the shares of the integer values -3..3, the end bins collecting the tails); ``xcorr_lap``
    and ``xcorr_median``: correlations between R, G and B of their 4-neighbour Laplacian and of
    their median-filter residuals (1 for grey images; high for demosaiced camera images);
    ``cfa__{r,g,b}__{diag,rows,cols}``: for each channel's Laplacian energy on the four pixel phases
    of the 2x2 lattice, the absolute log ratio of the diagonal to the anti-diagonal phases, of even
    to odd rows and of even to odd columns (Popescu & Farid 2005: interpolated pixels of a Bayer
    mosaic have less residual energy; absolute values make them independent of the crop offset
    and of the mosaic layout).

    Parameters
    ----------
    image : array, path, LoadedImage or ImageViews
        The image (converted to 8-bit RGB by the loader).
    truncation : int, keyword-only
        T, the largest quantised residual magnitude kept (1 to 4).
    step_scale : float, keyword-only
        Multiplies every quantisation step (Fridrich uses 1, 1.5 and 2).
    max_size : int, keyword-only
        Side of the largest centre crop analysed (>= 8); bounds the cost for large images.

    Returns
    -------
    ndarray of float64
        ``len(noise_names(...))`` finite values.
    """
    if not isinstance(truncation, (int, np.integer)) or not 1 <= truncation <= 4:
        raise ValueError(f"truncation must be an integer from 1 to 4, got {truncation!r}")
    if not isinstance(step_scale, (int, float, np.integer, np.floating)) or not 0 < step_scale < np.inf:
        raise ValueError(f"step_scale must be a positive number, got {step_scale!r}")
    if not isinstance(max_size, (int, np.integer)) or max_size < _MIN_SIZE:
        raise ValueError(f"max_size must be an integer >= {_MIN_SIZE}, got {max_size!r}")
    v = as_views(image).crop(max_size)
    gray = pad_to_min(v.gray, _MIN_SIZE)
    rgb = pad_to_min(v.rgb, _MIN_SIZE)
    rgb_f = pad_to_min(v.rgb_f, _MIN_SIZE)
    g = np.rint(gray * np.float32(_SNAP))
    g *= np.float32(1.0 / _SNAP)
    b = _BORDER
    inner = (slice(b, -b), slice(b, -b))
    std_g = float(cv2.meanStdDev(gray[inner])[1][0, 0])
    n_inner = (gray.shape[0] - 2 * b) * (gray.shape[1] - 2 * b)
    t = int(truncation)
    levels = 2 * t + 1
    labels, orbit_names = _orbits(t)
    n_orb = len(orbit_names)
    code_type = np.uint8 if levels**3 <= 256 else np.uint16
    feats = []

    # --- SRM residuals of the luminance
    moments = np.empty((len(_FILTERS), 2))
    joints = np.empty((len(_FILTERS), levels**3))
    for i, (kernel, gain, step) in enumerate(_KERNELS):
        res = cv2.filter2D(g, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT)[inner]
        m2 = cv2.norm(res, cv2.NORM_L2SQR) / n_inner
        m4 = cv2.norm(cv2.multiply(res, res), cv2.NORM_L2SQR) / n_inner
        moments[i] = _log_std_rel(m2, gain, std_g), _log_kurt(m2, m4)
        # round half to even (symmetric in sign), saturate to int8, then truncate to [-T, T]
        q = cv2.addWeighted(res, 1.0 / (step * step_scale), res, 0.0, 0.0, dtype=cv2.CV_8S)
        np.clip(q, -t, t, out=q)
        codes = q.view(np.uint8)
        codes += np.uint8(t)
        codes = codes.astype(code_type, copy=False)
        # one joint histogram of (pixel, right neighbour, lower neighbour) over the pixels having both
        idx = codes[:-1, :-1] * code_type(levels * levels)
        idx += codes[:-1, 1:] * code_type(levels)
        idx += codes[1:, :-1]
        if code_type is np.uint8:
            joints[i] = cv2.calcHist([idx], [0], None, [levels**3], [0, levels**3]).ravel()
        else:
            joints[i] = np.bincount(idx.ravel(), minlength=levels**3)
    joints /= np.maximum(joints.sum(axis=1, keepdims=True), 1.0)
    joints = joints.reshape(len(_FILTERS), levels, levels, levels)  # (filter, here, right, down)
    merge = np.zeros((levels * levels, n_orb))
    merge[np.arange(levels * levels), labels] = 1.0
    hist = joints.sum(axis=(2, 3))
    cooc_h = joints.sum(axis=3).reshape(len(_FILTERS), -1) @ merge
    cooc_v = joints.sum(axis=2).reshape(len(_FILTERS), -1) @ merge
    feats.append(np.concatenate([moments, hist, cooc_h, cooc_v], axis=1))  # filter-major, as _names

    # --- median-filter (denoiser) residual of the 8-bit luminance
    g8 = cv2.convertScaleAbs(gray)  # rounds and saturates to uint8
    med = cv2.subtract(g8, cv2.medianBlur(g8, 3), dtype=cv2.CV_32F)[inner]
    m2 = cv2.norm(med, cv2.NORM_L2SQR) / n_inner
    m4 = cv2.norm(cv2.multiply(med, med), cv2.NORM_L2SQR) / n_inner
    r = _MEDIAN_RANGE
    shifted = cv2.addWeighted(med, 1.0, med, 0.0, float(r), dtype=cv2.CV_8U)  # integers, saturated at 0
    np.minimum(shifted, 2 * r, out=shifted)
    mh = cv2.calcHist([shifted], [0], None, [2 * r + 1], [0, 2 * r + 1]).ravel()
    feats.append([_log_std_rel(m2, 1.0, std_g), _log_kurt(m2, m4)])
    feats.append(mh / n_inner)

    # --- cross-channel correlations of residuals and CFA phase energies
    lap = cv2.Laplacian(rgb_f, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT)[inner]
    medc = cv2.subtract(rgb, cv2.medianBlur(np.ascontiguousarray(rgb), 3), dtype=cv2.CV_32F)[inner]
    h2, w2 = lap.shape[0] // 2, lap.shape[1] // 2
    energy = cv2.multiply(lap, lap)
    feats.append(channel_correlations(lap, cv2.sumElems(energy)))
    feats.append(channel_correlations(medc))
    energy = energy[: 2 * h2, : 2 * w2].reshape(2 * h2, 2 * w2 * 3)
    rows = [cv2.reduce(energy[i::2], 0, cv2.REDUCE_SUM, dtype=cv2.CV_64F) for i in (0, 1)]
    phase = np.stack([r.reshape(w2, 2, 3).sum(axis=0) for r in rows])  # (row par., column par., channel)
    e00, e01, e10, e11 = phase[0, 0], phase[0, 1], phase[1, 0], phase[1, 1]
    tiny = 1e-9 * (e00 + e01 + e10 + e11) + 1e-9

    def ratio(num, den):
        return np.abs(np.log((num + tiny) / (den + tiny)))

    cfa = np.stack([ratio(e00 + e11, e01 + e10), ratio(e00 + e01, e10 + e11), ratio(e00 + e10, e01 + e11)], axis=1)
    feats.append(cfa.ravel())  # channel-major: r diag, r rows, r cols, g ...
    return np.concatenate([np.asarray(f, dtype=np.float64).ravel() for f in feats])


noise_names = _names
__all__ = ["noise_features", "noise_names"]
