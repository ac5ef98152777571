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

import numpy as np

from forensics.features.base import as_views, register_block

_SPACES = {
    "rgb": ("r", "g", "b"),
    "hsv": ("h", "s", "v"),
    "ycrcb": ("y", "cr", "cb"),
    "lab": ("l", "a", "b"),
}
_MOMENTS = ("mean", "std", "skew", "kurt")


def _names(*, hue_bins=12, sat_bins=8):
    names = [f"{space}_{ch}_{m}" for space, chans in _SPACES.items() for ch in chans for m in _MOMENTS]
    names += ["corr_rg", "corr_rb", "corr_gb", "corr_crcb"]
    names += [f"hue_hist__bins_{hue_bins}__{i:02d}" for i in range(hue_bins)]
    names += [f"sat_hist__bins_{sat_bins}__{i:02d}" for i in range(sat_bins)]
    names += ["sat_p99", "sat_frac_high", "val_frac_clipped"]
    return names


def _moments(x: np.ndarray) -> np.ndarray:
    """Mean, std, skewness, excess kurtosis of each column of (n, k) ``x``; 0 for constant columns."""
    # Channels-first contiguous float32 rows reduce much faster than strided columns; numpy's
    # pairwise summation keeps float32 sums accurate to ~1e-6 relative here.
    rows = np.ascontiguousarray(x.T, dtype=np.float32)
    mean = rows.mean(axis=1, keepdims=True)
    d = rows - mean
    d2 = d * d
    var = d2.mean(axis=1).astype(np.float64)
    std = np.sqrt(var)
    ok = std > 1e-6
    safe = np.where(ok, std, 1.0)
    m3 = (d2 * d).mean(axis=1).astype(np.float64)
    m4 = (d2 * d2).mean(axis=1).astype(np.float64)
    skew = np.where(ok, m3 / safe**3, 0.0)
    kurt = np.where(ok, m4 / safe**4 - 3.0, 0.0)
    return np.stack([mean[:, 0].astype(np.float64), std, skew, kurt], axis=1)  # (k, 4)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 1e-9 else 0.0


@register_block(
    "color",
    names=_names,
    presets=("default", "fast"),
    cost="low",
    reference="McCloskey & Albright, ICIP 2019; Li et al., Signal Processing 2020",
)
def color_features(image, *, hue_bins: int = 12, sat_bins: int = 8) -> np.ndarray:
    """Colour moments in RGB, HSV, YCrCb and Lab, cross-channel correlations, hue and saturation
    histograms and saturation/clipping tails.

    Parameters
    ----------
    image : array, path or ImageViews
        The image (converted to 8-bit RGB).
    hue_bins : int, keyword-only
        Bins of the saturation-weighted hue histogram over [0, 360).
    sat_bins : int, keyword-only
        Bins of the saturation histogram over [0, 1].

    Returns
    -------
    ndarray of float64
        ``len(color_names)`` values; scale-free where possible (moments are on the spaces' own ranges).
    """
    if hue_bins < 1 or sat_bins < 1:
        raise ValueError("hue_bins and sat_bins must be >= 1")
    v = as_views(image)
    n = v.rgb.shape[0] * v.rgb.shape[1]
    feats = []
    # Normalise ranges so that moments are comparable across spaces: RGB/YCrCb to [0,1], hue to [0,1],
    # Lab L to [0,1] and a/b by 128.
    rgb = v.rgb_f.reshape(n, 3) / 255.0
    hsv = v.hsv.reshape(n, 3) * np.array([1 / 360.0, 1.0, 1.0], dtype=np.float32)
    ycc = v.ycrcb.reshape(n, 3) / 255.0
    lab = v.lab.reshape(n, 3) * np.array([1 / 100.0, 1 / 128.0, 1 / 128.0], dtype=np.float32)
    for arr in (rgb, hsv, ycc, lab):
        feats.append(_moments(arr).ravel())
    feats.append(
        np.array(
            [
                _corr(rgb[:, 0], rgb[:, 1]),
                _corr(rgb[:, 0], rgb[:, 2]),
                _corr(rgb[:, 1], rgb[:, 2]),
                _corr(ycc[:, 1], ycc[:, 2]),
            ]
        )
    )
    hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    hue_hist, _ = np.histogram(hue, bins=hue_bins, range=(0.0, 1.0), weights=sat)
    total = hue_hist.sum()
    feats.append(hue_hist / total if total > 0 else np.zeros(hue_bins))
    sat_hist, _ = np.histogram(sat, bins=sat_bins, range=(0.0, 1.0 + 1e-6))
    feats.append(sat_hist / n)
    feats.append(
        np.array(
            [
                float(np.percentile(sat, 99)),
                float((sat > 0.8).mean()),
                float(((v.rgb == 0) | (v.rgb == 255)).any(axis=2).mean()),
            ]
        )
    )
    return np.concatenate(feats)


color_names = _names
__all__ = ["color_features", "color_names"]
