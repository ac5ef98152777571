"""``spectrum``: shape of the Fourier power spectrum and periodic up-sampling peaks.

Generators build images with up-convolutions (transposed convolutions, nearest or bilinear
up-sampling), which leave two traces in the Fourier domain: the high-frequency tail of the
azimuthally averaged power spectrum departs from the smooth power law of camera images (Durall et al.
2020), and the up-sampling grid puts periodic peaks at fractions 1/2 and 1/4 of the sampling
frequency (Zhang et al. 2019; Frank et al. 2020).

All quantities are shapes or ratios (profiles with their mean removed, slopes, energy shares,
peak-to-background and chroma-to-luma ratios), so that they do not key on the absolute contrast or
size of one dataset's images. The only absolute level is ``lum_log_power_mean``.

References
----------
.. [1] R. Durall, M. Keuper and J. Keuper, "Watch your up-convolution: CNN based generative deep
       neural networks are failing to reproduce spectral distributions", CVPR 2020 (arXiv:2003.01826).
.. [2] X. Zhang, S. Karaman and S.-F. Chang, "Detecting and simulating artifacts in GAN fake
       images", IEEE WIFS 2019.
.. [3] J. Frank, T. Eisenhofer, L. Schönherr, A. Fischer, D. Kolossa and T. Holz, "Leveraging
       frequency analysis for deep fake image recognition", ICML 2020.
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace

import cv2
import numpy as np
import scipy.sparse as sp

from forensics.features.base import as_views, pad_to_min, register_block

#: Images are edge-padded to at least this size (a 1x1 image gives a finite, flat spectrum).
_MIN_SIZE = 16
#: Power floor in grey levels squared per frequency; the power is normalised so that white noise of
#: variance s^2 has power s^2 at every frequency, so this is far below the 8-bit quantisation noise
#: (1/12) and only matters for flat images.
_EPS = 1e-4
#: Periodic-peak targets (fy, fx) in cycles/pixel; targets in one group are averaged (the two
#: diagonals at 1/4 are distinct frequencies of a real image, the others are their own mirror).
_PEAK_GROUPS = (
    ("fy_0__fx_0p5", ((0.0, 0.5),)),
    ("fy_0p5__fx_0", ((0.5, 0.0),)),
    ("fy_0p5__fx_0p5", ((0.5, 0.5),)),
    ("fy_0__fx_0p25", ((0.0, 0.25),)),
    ("fy_0p25__fx_0", ((0.25, 0.0),)),
    ("fy_0p25__fx_0p25", ((0.25, 0.25), (0.25, -0.25))),
)
#: Peak = mean power over a (2*_PEAK_HALF+1)^2 neighbourhood of the target (a Hann-windowed line
#: spreads over 3 bins); background = median power over the square ring at Chebyshev distance
#: _RING_IN.._RING_OUT bins around it.
_PEAK_HALF, _RING_IN, _RING_OUT = 1, 3, 5
#: Orientation profile of the residual spectrum uses frequencies with normalised radius above this.
_ANGULAR_MIN_RADIUS = 0.25


def _idx(i: int, n: int) -> str:
    return f"{i:0{max(2, len(str(n - 1)))}d}"


def _names(*, n_bins=32, coarse_bins=16, max_size=512):
    names = [f"lum_profile__bins_{n_bins}__{_idx(i, n_bins)}" for i in range(n_bins)]
    names += ["lum_log_power_mean", "slope", "slope_resid", "slope_low", "slope_high"]
    names += ["hf_ratio__r_0p5", "hf_ratio__r_0p75"]
    names += [f"peak__{label}" for label, _ in _PEAK_GROUPS] + ["peak__max"]
    names += [f"res_peakiness__bins_{coarse_bins}__{_idx(i, coarse_bins)}" for i in range(coarse_bins)]
    names += [f"res_angular__bins_{coarse_bins}__{_idx(i, coarse_bins)}" for i in range(coarse_bins)]
    for ch in ("cr", "cb"):
        names += [f"{ch}_luma_ratio__bins_{coarse_bins}__{_idx(i, coarse_bins)}" for i in range(coarse_bins)]
    return names


# --------------------------------------------------------------------------------------------------
# Geometry of OpenCV's packed (CCS) real DFT, cached per shape
# --------------------------------------------------------------------------------------------------


def _is_5_smooth(n: int) -> bool:
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


@lru_cache(maxsize=None)
def _fft_size(n: int) -> int:
    """Largest m <= n that is a multiple of 4 with only factors 2, 3, 5 (fast DFT, exact 1/4 bins)."""
    m = n - n % 4
    while not _is_5_smooth(m // 4):
        m -= 4
    return m


def _ccs_index(ky: np.ndarray, kx: np.ndarray, m: int, n: int) -> np.ndarray:
    """Flat index, in a CCS-packed m x n spectrum, of the real part of frequency (ky, kx) (any ints).

    For a real image F(-k) = conj F(k), so the power of a frequency outside the stored half-plane is
    read at its mirror.
    """
    ky = np.mod(ky, m)
    kx = np.mod(kx, n)
    flip = kx > n // 2
    ky = np.where(flip, np.mod(-ky, m), ky)
    kx = np.where(flip, n - kx, kx)
    on_axis = (kx == 0) | (kx == n // 2)
    kya = np.where(ky > m // 2, m - ky, ky)  # the axis columns hold ky = 0..m/2 only
    row_axis = np.where(kya == 0, 0, np.where(kya == m // 2, m - 1, 2 * kya - 1))
    row = np.where(on_axis, row_axis, ky)
    col = np.where(on_axis, np.where(kx == 0, 0, n - 1), 2 * kx - 1)
    return row * n + col


@lru_cache(maxsize=8)
def _geometry(m: int, n: int, n_bins: int, coarse_bins: int) -> SimpleNamespace:
    """Window, frequency labels and peak indices for an m x n (both multiples of 4) CCS spectrum."""
    ky = np.zeros((m, n), dtype=np.int64)
    kx = np.zeros((m, n), dtype=np.int64)
    mult = np.zeros((m, n), dtype=np.float32)  # full-plane weight of each real slot, 0 for imag slots
    rows = np.arange(m)
    # interior columns: pairs (Re, Im) of kx = 1..n/2-1 for every row ky (signed)
    ky[:, 1 : n - 1] = np.where(rows < m // 2, rows, rows - m)[:, None]
    kx[:, 1 : n - 1] = (np.arange(1, n - 1) + 1) // 2
    mult[:, 1 : n - 1 : 2] = 2.0
    # axis columns kx = 0 and n/2: rows 0, (Re, Im) of ky = 1..m/2-1, then ky = m/2
    axis_ky = np.concatenate([[0], (np.arange(1, m - 1) + 1) // 2, [m // 2]])
    axis_mult = np.concatenate([[1.0], np.where(np.arange(1, m - 1) % 2 == 1, 2.0, 0.0), [1.0]])
    for col, kxv in ((0, 0), (n - 1, n // 2)):
        ky[:, col] = axis_ky
        kx[:, col] = kxv
        mult[:, col] = axis_mult
    real = mult > 0
    # normalised frequency coordinates: 1 = Nyquist along each axis
    u = 2.0 * ky / m
    w = 2.0 * kx / n
    r = np.sqrt(u * u + w * w)
    big_r = min(m, n) // 2  # integer radii 1..big_r cover (0, 1]
    k_int = np.rint(r * big_r).astype(np.int64)
    n_k = int(k_int.max()) + 1
    flat_real = np.flatnonzero(real)
    weights = mult.ravel()[flat_real].astype(np.float64)
    # sparse (label x pixel) matrices with the full-plane weights: one mat-vec per weighted sum
    radial = sp.csr_matrix((weights, (k_int.ravel()[flat_real], flat_real)), shape=(n_k, m * n))
    rcount = np.asarray(radial.sum(axis=1)).ravel()

    def cells(nb):
        k = np.arange(1, big_r + 1)
        return np.minimum(np.ceil(k / big_r * nb).astype(np.int64) - 1, nb - 1)

    # orientation of the residual spectrum, bins centred on multiples of pi / coarse_bins
    theta = np.mod(np.arctan2(u, w), np.pi)
    width = np.pi / coarse_bins
    abin = np.mod(np.floor((theta + width / 2) / width).astype(np.int64), coarse_bins)
    a_flat = np.flatnonzero(real & (r > _ANGULAR_MIN_RADIUS) & (r <= 1.0))
    angular = sp.csr_matrix(
        (mult.ravel()[a_flat].astype(np.float64), (abin.ravel()[a_flat], a_flat)), shape=(coarse_bins, m * n)
    )
    acount = np.asarray(angular.sum(axis=1)).ravel()
    # coarse radial cells of stored real slots (r in (0, 1]) for max/mean "peakiness"
    p_ok = (real & (k_int >= 1) & (k_int <= big_r)).ravel()
    pcell = cells(coarse_bins)[np.clip(k_int.ravel(), 1, big_r) - 1]
    flat = np.flatnonzero(p_ok)
    order = flat[np.argsort(pcell[flat], kind="stable")]
    pcount = np.bincount(pcell[flat], minlength=coarse_bins)
    nonempty = np.flatnonzero(pcount)
    starts = np.concatenate([[0], np.cumsum(pcount)[:-1]])[nonempty]
    harmonic = np.cumsum(1.0 / np.arange(1, max(int(pcount.max()), 1) + 1))
    # periodic-peak neighbourhoods and background rings, as flat CCS indices
    d = np.arange(-_RING_OUT, _RING_OUT + 1)
    dy, dx = np.meshgrid(d, d, indexing="ij")
    cheb = np.maximum(np.abs(dy), np.abs(dx))
    hood = cheb <= _PEAK_HALF
    ring = (cheb >= _RING_IN) & (cheb <= _RING_OUT)
    peak_hood, peak_ring = [], []
    for _, targets in _PEAK_GROUPS:
        for fy, fx in targets:
            ty, tx = int(round(fy * m)), int(round(fx * n))
            peak_hood.append(_ccs_index(ty + dy[hood], tx + dx[hood], m, n))
            peak_ring.append(_ccs_index(ty + dy[ring], tx + dx[ring], m, n))
    win = np.outer(np.hanning(m), np.hanning(n)).astype(np.float32)
    wsum = float(win.sum(dtype=np.float64))
    return SimpleNamespace(
        window=win,
        wsum=wsum if wsum > 0 else 1.0,
        pnorm=1.0 / max(float((win.astype(np.float64) ** 2).sum()), 1e-12),
        big_r=big_r,
        radial=radial,
        rcount=rcount,
        radii=np.arange(1, big_r + 1) / big_r,
        cells_fine=cells(n_bins),
        cells_coarse=cells(coarse_bins),
        angular=angular,
        acount=acount,
        order=order,
        starts=starts,
        nonempty=nonempty,
        pcount=pcount[nonempty],
        harmonic=harmonic[np.maximum(pcount[nonempty], 1) - 1],
        peak_hood=np.stack(peak_hood),
        peak_ring=np.stack(peak_ring),
        peak_groups=[len(t) for _, t in _PEAK_GROUPS],
    )


# --------------------------------------------------------------------------------------------------
# Spectra and profiles
# --------------------------------------------------------------------------------------------------


def _power(x: np.ndarray, geo: SimpleNamespace) -> np.ndarray:
    """Hann-windowed power spectrum in CCS layout (real slots hold |F|^2 of the frequency they
    store, imaginary slots 0), normalised so that white noise of variance s^2 has power s^2.

    The mean, then the window-weighted mean of the rest, are removed so that the DC term is zero.
    """
    win = geo.window
    xw = cv2.multiply(cv2.subtract(x, cv2.mean(x)[0]), win)  # plain mean first: flat images give 0
    mu = float(cv2.sumElems(xw)[0]) / geo.wsum
    xw = cv2.scaleAdd(win, -mu, xw)  # (x - mean - mu) * win
    spec = cv2.dft(xw)
    power = cv2.mulSpectrums(spec, spec, 0, conjB=True)
    return power.ravel() * np.float32(geo.pnorm)


def _radial_sums(power: np.ndarray, geo: SimpleNamespace) -> np.ndarray:
    """Full-plane power summed per integer radius (index 0 = DC; includes the corners beyond 1)."""
    return geo.radial @ power


def _log_profile(sums: np.ndarray, geo: SimpleNamespace, cells: np.ndarray, nb: int) -> np.ndarray:
    """Log mean power on a grid of ``nb`` cells of normalised radius in (0, 1].

    Cell means when every cell holds at least one integer radius, else interpolation of the
    per-radius log means at the cell centres (images smaller than 2 * nb pixels).
    """
    s = sums[1 : geo.big_r + 1]
    c = geo.rcount[1 : geo.big_r + 1]
    if geo.big_r >= nb:
        cell_s = np.bincount(cells, weights=s, minlength=nb)
        cell_c = np.bincount(cells, weights=c, minlength=nb)
        return np.log(cell_s / np.maximum(cell_c, 1.0) + _EPS)
    per_k = np.log(s / np.maximum(c, 1.0) + _EPS)
    return np.interp((np.arange(nb) + 0.5) / nb, geo.radii, per_k)


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of y on x and the RMS residual."""
    xc = x - x.mean()
    yc = y - y.mean()
    den = float(xc @ xc)
    slope = float(xc @ yc) / den if den > 0 else 0.0
    resid = yc - slope * xc
    return slope, float(np.sqrt(np.mean(resid * resid)))


@register_block(
    "spectrum",
    names=_names,
    presets=("default", "fast"),
    cost="low",
    reference="Durall et al., CVPR 2020; Zhang et al., WIFS 2019; Frank et al., ICML 2020",
)
def spectrum_features(image, *, n_bins: int = 32, coarse_bins: int = 16, max_size: int = 512) -> np.ndarray:
    """Azimuthal log-power profile, spectral slope, high-frequency shares, periodic up-sampling peaks,
    residual-spectrum peakiness and orientation profiles, and chroma-to-luma spectral ratios.

    The luminance (and Cr, Cb) of a centre crop of at most ``max_size`` pixels (trimmed by at most a
    few pixels to a fast DFT size that is a multiple of 4; never resampled; tiny images are
    edge-padded to 16 pixels) is Hann-windowed after removing its mean. Radii are normalised so that
    1 is the Nyquist frequency along each axis; corners beyond 1 only enter the energy shares.

    Features:

    - ``lum_profile__bins_{n_bins}__*``: log mean power in ``n_bins`` equal cells of radius in
      (0, 1], minus its mean (shape only); ``lum_log_power_mean`` is that mean.
    - ``slope``: least-squares slope of log power on log radius over the cells (natural images are
      near -2, white noise near 0), ``slope_resid`` its RMS residual, ``slope_low`` and
      ``slope_high`` the slopes over radii below and above 0.5.
    - ``hf_ratio__r_*``: share of the non-DC power (whole plane) at radius above 0.5 and 0.75.
    - ``peak__*``: on the spectrum of the high-pass residual ``Y - mean3x3(Y)``, log ratio of the
      mean power in a 3x3 neighbourhood of (fy, fx) cycles/pixel (0 or 1/2 or 1/4) to the median
      power of a surrounding ring (0 for no peak; about 0.4 for white noise); ``peak__max`` is the
      largest.
    - ``res_peakiness__bins_{coarse_bins}__*``: per radial cell of the residual spectrum, log of
      max / (H_n * mean) power, where the harmonic number H_n is the expected max / mean for white
      noise with n frequencies in the cell, so that spectral spikes at any frequency show whatever
      the image size (about 0 for noise). 0 for flat images and for cells without frequencies
      (images under 32 pixels).
    - ``res_angular__bins_{coarse_bins}__*``: log mean residual power per orientation of the
      frequency vector (bins centred on multiples of 180 / coarse_bins degrees; bin 0 = frequencies
      along x, i.e. vertical structures) at radius above 0.25, minus its mean: grid-aligned (axis)
      energy from up-sampling or blocking.
    - ``cr_luma_ratio__*``, ``cb_luma_ratio__*``: log of chroma over luma mean power in
      ``coarse_bins`` radial cells (invariant to a global contrast gain; very negative for
      grey images; the high cells show chroma subsampling and demosaicing).

    Parameters
    ----------
    image : array, path, LoadedImage or ImageViews
        The image (converted to 8-bit RGB by the loader).
    n_bins : int, keyword-only
        Cells of the luminance radial profile (>= 4).
    coarse_bins : int, keyword-only
        Cells of the residual peakiness, residual orientation and chroma profiles (>= 2).
    max_size : int, keyword-only
        Side of the largest centre crop analysed (>= 16); bounds the cost for large images.

    Returns
    -------
    ndarray of float64
        ``len(spectrum_names(...))`` finite values.
    """
    if not isinstance(n_bins, (int, np.integer)) or n_bins < 4:
        raise ValueError(f"n_bins must be an integer >= 4, got {n_bins!r}")
    if not isinstance(coarse_bins, (int, np.integer)) or coarse_bins < 2:
        raise ValueError(f"coarse_bins must be an integer >= 2, got {coarse_bins!r}")
    if not isinstance(max_size, (int, np.integer)) or max_size < _MIN_SIZE:
        raise ValueError(f"max_size must be an integer >= {_MIN_SIZE}, got {max_size!r}")
    v = as_views(image).crop(max_size)
    ycc = pad_to_min(v.ycrcb, _MIN_SIZE)
    m, n = _fft_size(ycc.shape[0]), _fft_size(ycc.shape[1])
    top, left = (ycc.shape[0] - m) // 2, (ycc.shape[1] - n) // 2
    ycc = ycc[top : top + m, left : left + n]
    y, cr, cb = cv2.split(np.ascontiguousarray(ycc))
    geo = _geometry(m, n, n_bins, coarse_bins)

    # --- luminance power spectrum
    p_y = _power(y, geo)
    s_y = _radial_sums(p_y, geo)
    prof = _log_profile(s_y, geo, geo.cells_fine, n_bins)
    level = float(prof.mean())
    centres = (np.arange(n_bins) + 0.5) / n_bins
    logr = np.log(centres)
    slope, resid = _fit(logr, prof)
    low = centres < 0.5
    slope_low, _ = _fit(logr[low], prof[low])
    slope_high, _ = _fit(logr[~low], prof[~low])
    k_rad = np.arange(s_y.shape[0]) / geo.big_r
    denom = float(s_y[1:].sum()) + _EPS * m * n  # the power floor over all frequencies
    hf = [float(s_y[k_rad > t].sum()) / denom for t in (0.5, 0.75)]

    # --- high-pass residual spectrum: periodic peaks, peakiness, orientation
    res = cv2.subtract(y, cv2.blur(y, (3, 3), borderType=cv2.BORDER_REFLECT))
    p_r = _power(res, geo)
    hood = p_r[geo.peak_hood].mean(axis=1)
    ring = np.median(p_r[geo.peak_ring], axis=1)
    ratios = np.log((hood + _EPS) / (ring + _EPS))
    peaks, i = [], 0
    for size in geo.peak_groups:
        peaks.append(float(ratios[i : i + size].mean()))
        i += size
    peaks.append(max(peaks))
    vals = p_r[geo.order]
    peaky = np.zeros(coarse_bins)
    if vals.size:
        mx = np.maximum.reduceat(vals, geo.starts).astype(np.float64)
        mean = np.add.reduceat(vals, geo.starts, dtype=np.float64) / geo.pcount
        peaky[geo.nonempty] = np.log((mx + _EPS) / (geo.harmonic * mean + _EPS))
    a_s = geo.angular @ p_r
    filled = geo.acount > 0
    ang = np.log(a_s / np.maximum(geo.acount, 1.0) + _EPS)
    ang = np.where(filled, ang - (ang[filled].mean() if filled.any() else 0.0), 0.0)

    # --- chroma-to-luma spectral ratios
    coarse_y = _log_profile(s_y, geo, geo.cells_coarse, coarse_bins)
    chroma = [
        _log_profile(_radial_sums(_power(c, geo), geo), geo, geo.cells_coarse, coarse_bins) - coarse_y
        for c in (cr, cb)
    ]

    out = np.concatenate(
        [
            prof - level,
            [level, slope, resid, slope_low, slope_high],
            hf,
            peaks,
            peaky,
            ang,
            *chroma,
        ]
    )
    return out.astype(np.float64)


spectrum_names = _names
__all__ = ["spectrum_features", "spectrum_names"]
