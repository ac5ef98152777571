"""``color``: colour statistics in four colour spaces.

Generators and editing tools reproduce the *look* of colour well but not its statistics: saturation
distributions, the correlation between channels that demosaicing and white balance leave in camera
images, and the joint spread of chroma (McCloskey & Albright 2019; Li et al. 2020).

References
----------
.. [1] S. McCloskey and M. Albright, "Detecting GAN-generated imagery using saturation cues",
       ICIP 2019.
.. [2] H. Li, B. Li, S. Tan and J. Huang, "Identification of deep network generated images using
       disparities in color components", Signal Processing 174, 2020.
"""

from __future__ import annotations

import cv2
import numpy as np

from forensics.features.base import as_views, channel_correlations, register_block

_SPACES = {
    "rgb": ("r", "g", "b"),
    "hsv": ("h", "s", "v"),
    "ycrcb": ("y", "cr", "cb"),
    "lab": ("l", "a", "b"),
}
_MOMENTS = ("mean", "std", "skew", "kurt")


def _names(*, hue_bins=12, sat_bins=8, max_size=512):
    names = [f"{space}_{ch}_{m}" for space, chans in _SPACES.items() for ch in chans for m in _MOMENTS]
    names += ["corr_rg", "corr_rb", "corr_gb", "corr_crcb"]
    names += [f"hue_hist__bins_{hue_bins}__{i:02d}" for i in range(hue_bins)]
    names += [f"sat_hist__bins_{sat_bins}__{i:02d}" for i in range(sat_bins)]
    names += ["sat_p99", "sat_frac_high", "val_frac_clipped"]
    return names


_LEVELS = np.arange(256, dtype=np.float64)


def _hist_moments(hist: np.ndarray, scale: float, offset: float = 0.0) -> np.ndarray:
    """Mean, std, skewness, excess kurtosis of 8-bit values from their 256-bin histogram, after
    mapping level ``x`` to ``(x - offset) / scale``; 0 for skew/kurtosis of constant channels."""
    n = hist.sum()
    if n <= 0:
        return np.zeros(4)
    p = hist / n
    x = (_LEVELS - offset) / scale
    mean = float(p @ x)
    d = x - mean
    d2 = d * d
    var = float(p @ d2)
    std = np.sqrt(var)
    if std <= 1e-6:
        return np.array([mean, 0.0, 0.0, 0.0])
    skew = float(p @ (d2 * d)) / std**3
    kurt = float(p @ (d2 * d2)) / var**2 - 3.0
    return np.array([mean, std, skew, kurt])


@register_block(
    "color",
    names=_names,
    presets=("default",),
    cost="low",
    reference="McCloskey & Albright, ICIP 2019; Li et al., Signal Processing 2020",
    version=2,
)
def color_features(image, *, hue_bins: int = 12, sat_bins: int = 8, max_size: int = 512) -> np.ndarray:
    """Colour moments in RGB, HSV, YCrCb and Lab, cross-channel correlations, hue and saturation
    histograms and saturation/clipping tails.

    All colour spaces are computed on 8 bits (OpenCV's conversions of the 8-bit image), so that every
    moment comes exactly from a 256-bin histogram: fast, and as precise as the pixels themselves.

    Parameters
    ----------
    image : array, path or ImageViews
        The image (converted to 8-bit RGB).
    hue_bins : int, keyword-only
        Bins of the saturation-weighted hue histogram over [0, 360).
    sat_bins : int, keyword-only
        Bins of the saturation histogram over [0, 1].
    max_size : int, keyword-only
        Statistics are taken on the grid-aligned centre crop of at most this many pixels a side.

    Returns
    -------
    ndarray of float64
        ``len(color_names)`` values. Moments are on normalised ranges: RGB, YCrCb, saturation and value
        in [0, 1], hue in [0, 1) (one turn), Lab's L in [0, 1] and a, b divided by 128.
    """
    if hue_bins < 1 or sat_bins < 1:
        raise ValueError("hue_bins and sat_bins must be >= 1")
    if max_size < 1:
        raise ValueError("max_size must be >= 1")
    v = as_views(image).crop(max_size)
    rgb = v.rgb
    n = rgb.shape[0] * rgb.shape[1]
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL)  # hue as 0-255 for one turn
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)  # L scaled to 0-255, a/b offset by 128
    # (space image, per-channel (scale, offset)) in the order of _SPACES
    spaces = (
        (rgb, ((255.0, 0.0),) * 3),
        (hsv, ((256.0, 0.0), (255.0, 0.0), (255.0, 0.0))),
        (ycc, ((255.0, 0.0),) * 3),
        (lab, ((255.0, 0.0), (128.0, 128.0), (128.0, 128.0))),
    )
    feats = []
    hists = {}
    for k, (img, scales) in enumerate(spaces):
        for c, (scale, offset) in enumerate(scales):
            h = cv2.calcHist([img], [c], None, [256], [0, 256]).ravel().astype(np.float64)
            hists[(k, c)] = h
            feats.append(_hist_moments(h, scale, offset))
    # rg, rb, gb of RGB and (Cr, Cb) of YCrCb: exact integer moments summed in double precision
    feats.append(channel_correlations(v.rgb_f))
    feats.append(channel_correlations(ycc.astype(np.float32))[2:])
    hue = hsv[:, :, 0].ravel()
    sat = hsv[:, :, 1].ravel()
    hue_w = np.bincount(hue, weights=sat.astype(np.float64), minlength=256)
    hue_hist = np.add.reduceat(hue_w, (np.arange(hue_bins) * 256) // hue_bins) if hue_bins <= 256 else _rebin(hue_w, hue_bins)
    total = hue_hist.sum()
    feats.append(hue_hist / total if total > 0 else np.zeros(hue_bins))
    sat_h = hists[(1, 1)]
    sat_hist = np.add.reduceat(sat_h, (np.arange(sat_bins) * 256) // sat_bins) if sat_bins <= 256 else _rebin(sat_h, sat_bins)
    feats.append(sat_hist / n)
    cum = np.cumsum(sat_h) / n
    p99 = float(np.searchsorted(cum, 0.99)) / 255.0
    clipped = cv2.inRange(rgb, (1, 1, 1), (254, 254, 254))  # 255 where no channel is clipped
    feats.append(
        np.array(
            [
                p99,
                float(sat_h[205:].sum() / n),  # saturation > 0.8
                1.0 - float(np.count_nonzero(clipped)) / n,
            ]
        )
    )
    return np.concatenate([np.ravel(f) for f in feats])


def _rebin(hist256: np.ndarray, bins: int) -> np.ndarray:
    """Spread a 256-level histogram over more bins than levels (each level to its bin)."""
    idx = (np.arange(256) * bins) // 256
    return np.bincount(idx, weights=hist256, minlength=bins)


color_names = _names
__all__ = ["color_features", "color_names"]
