"""Per-image forensic views: what the detector looks at in one image, and what it made of it.

:func:`inspect_image` computes, for one image file,

- its log-magnitude Fourier spectrum (of the centre crop the ``spectrum`` block analyses) and its
  azimuthal luminance profile (the block's ``lum_profile`` features), against the mean profile of the
  real and of the fake training images stored in the model card (``card["spectrum_means"]``);
- the error-level-analysis map: the per-pixel mean over R, G, B of ``|image - JPEG(image, q=90)|``;
- the noise residual map: the 5x5 "KV" SRM high-pass residual of the luminance (the ``noise`` block's
  kernel), divided by its quantisation step;
- the LBP map: the rotation-invariant uniform code (riu2, P = 8, R = 1) of every pixel, computed as the
  ``texture`` block codes its histograms;

and, with a model,

- the image's calibrated ``prob_fake``, exactly as ``forensics score`` gives it, with two measures of
  uncertainty (see :class:`ScoreView`);
- a patch heat map: the model's score of overlapping square crops (see :func:`patch_windows`);
- the features that pushed the score most (exact TreeSHAP contributions of XGBoost, or coefficient x
  standardised value for logistic regression; :mod:`forensics.pipelines.explain`).

:func:`render_html` lays the views out as one self-contained page (figures embedded as PNG ``data:``
URIs; no script, stylesheet, font or link is fetched), :func:`render_png` as one matplotlib figure.
Figures are drawn on :class:`matplotlib.figure.Figure` objects (no pyplot), so that using this module
from a notebook does not change its plotting backend.

References
----------
.. [1] N. Krawetz, "A picture's worth: digital image analysis and forensics", Black Hat USA, 2007 (ELA).
.. [2] J. Fridrich and J. Kodovsky, "Rich models for steganalysis of digital images", IEEE TIFS 7(3),
       2012 (the KV residual).
.. [3] T. Ojala, M. Pietikäinen and T. Mäenpää, "Multiresolution gray-scale and rotation invariant
       texture classification with local binary patterns", IEEE TPAMI 24(7), 2002 (riu2 codes).
.. [4] R. Durall, M. Keuper and J. Keuper, "Watch your up-convolution", CVPR 2020 (spectral profiles).
"""

from __future__ import annotations

import base64
import io
import logging
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from forensics.reports import html as H
from forensics.reports.plots import FAKE_C, OTHER_C, REAL_C

logger = logging.getLogger(__name__)

#: Section ids of the page, in order; the last three need a model.
INSPECT_SECTIONS = ("image", "score", "spectrum", "ela", "noise", "lbp", "patches", "explain")
MODEL_SECTIONS = ("score", "patches", "explain")

#: JPEG quality of the ELA map.
ELA_QUALITY = 90
#: Longest side, in pixels, of the image and maps as drawn (larger images are shown downscaled;
#: every map is computed at full resolution).
DISPLAY_MAX = 1024
#: Patch windows: about a quarter of the shorter side, a multiple of 16 within these bounds.
WINDOW_MIN, WINDOW_MAX = 16, 96
#: At most this many patches are scored; larger images get larger windows.
MAX_PATCHES = 256
#: Training images whose out-of-fold score is nearest to this image's, for the empirical interval:
#: a tenth of the training set, at least 10 and at most this many.
OOF_NEIGHBOURS = 50
DPI = 100
_PROFILE_PREFIX = "spectrum__lum_profile__"


# --------------------------------------------------------------------------------------------------
# Pure per-image maps
# --------------------------------------------------------------------------------------------------


def ela_map(rgb: np.ndarray, *, quality: int = ELA_QUALITY) -> np.ndarray:
    """Error level analysis map: mean over R, G, B of ``|rgb - JPEG(rgb, quality)|``, in grey levels.

    The recompression is the ``ela`` block's (OpenCV's libjpeg, 4:2:0 chroma subsampling); the block
    reduces this map (on its centre crop) to statistics.

    Parameters
    ----------
    rgb : ndarray of shape (H, W, 3), uint8
    quality : int, keyword-only
        JPEG quality, 1-100.

    Returns
    -------
    ndarray of shape (H, W), float32
    """
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"quality must be an integer in [1, 100], got {quality!r}")
    from forensics.features.base import as_views

    diff = as_views(np.ascontiguousarray(rgb, dtype=np.uint8)).jpeg_error(int(quality), min_side=1)
    return diff.astype(np.float32).mean(axis=2)


def noise_residual_map(gray: np.ndarray) -> np.ndarray:
    """High-pass noise residual of the luminance: the 5x5 "KV" SRM kernel of the ``noise`` block
    (reflected borders), divided by its quantisation step (12), so that the values are those the
    block quantises and histograms.

    Parameters
    ----------
    gray : ndarray of shape (H, W)
        Luminance in grey levels.

    Returns
    -------
    ndarray of shape (H, W), float32
    """
    from forensics.features.noise import _FILTERS

    kernel, step = next((k, q) for name, k, q in _FILTERS if name == "kv")
    g = np.ascontiguousarray(gray, dtype=np.float32)
    return cv2.filter2D(g, cv2.CV_32F, kernel.astype(np.float32), borderType=cv2.BORDER_REFLECT) / np.float32(step)


def lbp_map(gray: np.ndarray, *, radius: int = 1) -> np.ndarray:
    """Rotation-invariant uniform LBP code (riu2, P = 8) of every pixel of ``gray``.

    Coded exactly as the ``texture`` block codes its histograms (bilinear diagonal neighbours, ties
    within 1e-3 grey levels count as ">="), after reflecting the border by ``radius`` pixels so that
    the map has the image's size. Values 0-8: a uniform pattern with that many neighbours at least as
    bright as the centre (0: a local maximum, 8: a local minimum or a flat area, 4: an edge); 9: a
    non-uniform pattern (noise-like micro-texture).

    Parameters
    ----------
    gray : ndarray of shape (H, W)
    radius : int, keyword-only
        Circle radius in pixels (>= 1).

    Returns
    -------
    ndarray of shape (H, W), uint8
    """
    from forensics.features.texture import _TIE, RIU2_LUT, _neighbour_offsets

    if isinstance(radius, bool) or not isinstance(radius, (int, np.integer)) or radius < 1:
        raise ValueError(f"radius must be a positive integer, got {radius!r}")
    x = np.ascontiguousarray(gray, dtype=np.float32)
    h, w = x.shape
    m = int(radius) + 1  # one more than the radius: the 2x2 bilinear cell of a diagonal neighbour
    xp = cv2.copyMakeBorder(x, m, m, m, m, cv2.BORDER_REFLECT_101 if min(h, w) > m else cv2.BORDER_REPLICATE)
    thr = xp[m : m + h, m : m + w] - np.float32(_TIE)
    code = np.zeros((h, w), dtype=np.uint8)
    for p, (oy, ox, kernel) in enumerate(_neighbour_offsets(int(radius))):
        src = xp if kernel is None else cv2.filter2D(xp, -1, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
        nb = src[m + oy : m + oy + h, m + ox : m + ox + w]
        code |= (nb >= thr).astype(np.uint8) << np.uint8(p)
    return RIU2_LUT[code].astype(np.uint8)


def log_spectrum(gray: np.ndarray, *, max_size: int = 512) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Centred log-magnitude spectrum ``log(1 + |F|)`` of the luminance's centre crop.

    The crop is the one the ``spectrum`` block analyses (at most ``max_size`` pixels a side, origin
    on a multiple of 16); its mean is removed and it is Hann-windowed, as in the block. Frequencies
    run from -1/2 to 1/2 cycle per pixel on both axes (zero in the middle); the up-sampling layers
    of generators leave bright peaks at +-1/4 and +-1/2.

    Returns
    -------
    spectrum : ndarray of shape (h, w), float32
    box : tuple of int
        ``(top, left, h, w)`` of the crop in the image.
    """
    from forensics.features.base import CROP_ALIGN

    g = np.asarray(gray, dtype=np.float64)
    H_, W_ = g.shape
    ch, cw = min(H_, max_size), min(W_, max_size)
    top = ((H_ - ch) // 2) // CROP_ALIGN * CROP_ALIGN
    left = ((W_ - cw) // 2) // CROP_ALIGN * CROP_ALIGN
    crop = g[top : top + ch, left : left + cw]
    win = np.outer(np.hanning(ch), np.hanning(cw)) if min(ch, cw) > 1 else np.ones((ch, cw))
    f = np.fft.fftshift(np.fft.fft2((crop - crop.mean()) * win))
    return np.log1p(np.abs(f)).astype(np.float32), (top, left, ch, cw)


def patch_windows(height: int, width: int, *, window: int | None = None,
                  max_patches: int = MAX_PATCHES) -> tuple[int, list[tuple[int, int]]]:
    """Square windows for the patch heat map: side and top-left corners, with 50 % overlap.

    The default side is a quarter of the shorter side, rounded down to a multiple of 16 and kept
    within 16-96 pixels (64 for a 256-pixel image, 16 for 64 pixels, 96 from 384 pixels on); it is
    enlarged when more than ``max_patches`` windows would be needed, and never exceeds the shorter
    side. The stride is half the side; corners are on multiples of 8 pixels, so that each crop keeps
    the JPEG 8x8 grid of the image, and the last row and column of windows end within 7 pixels of
    the border.
    """
    short = min(height, width)
    if short < 8:
        return 0, []
    if window is None:
        window = int(np.clip(short // 4 // 16 * 16, WINDOW_MIN, WINDOW_MAX))
        while window < short and _n_windows(height, width, window) > max_patches:
            window += 16
    elif isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 8:
        raise ValueError(f"window must be an integer >= 8 pixels, got {window!r}")
    window = int(min(window, short))
    stride = max(8, window // 2 // 8 * 8)
    ys = _starts(height, window, stride)
    xs = _starts(width, window, stride)
    return window, [(y, x) for y in ys for x in xs]


def _starts(n: int, window: int, stride: int) -> list[int]:
    last = (n - window) // 8 * 8
    out = list(range(0, last + 1, stride))
    if out[-1] != last:
        out.append(last)
    return out


def _n_windows(height: int, width: int, window: int) -> int:
    stride = max(8, window // 2 // 8 * 8)
    return len(_starts(height, min(window, height), stride)) * len(_starts(width, min(window, width), stride))


def wilson_interval(k: float, n: int, *, z: float = 1.6449) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n`` (default 90 % two-sided)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def spectrum_means(names: list[str], X: np.ndarray, y: np.ndarray) -> dict | None:
    """Per-class means of the ``spectrum__lum_profile`` features, for the model card.

    Returns ``{"names": [...], "real": [...], "fake": [...]}`` (``None`` for a class mean that is
    NaN), or ``None`` when the features do not include the spectrum block.
    """
    ix = [i for i, n in enumerate(names) if n.startswith(_PROFILE_PREFIX)]
    if not ix:
        return None
    X = np.asarray(X, dtype=np.float64)[:, ix]
    y = np.asarray(y).astype(int)
    out: dict = {"names": [names[i] for i in ix]}
    for label, cls in (("real", 0), ("fake", 1)):
        with np.errstate(all="ignore"):
            m = np.nanmean(X[y == cls], axis=0) if (y == cls).any() else np.full(len(ix), np.nan)
        out[label] = [None if not np.isfinite(v) else round(float(v), 6) for v in m]
    return out


# --------------------------------------------------------------------------------------------------
# The inspection
# --------------------------------------------------------------------------------------------------


@dataclass
class SpectrumView:
    log_mag: np.ndarray
    box: tuple[int, int, int, int]
    radius: np.ndarray
    profile: np.ndarray | None
    real_mean: np.ndarray | None = None
    fake_mean: np.ndarray | None = None


@dataclass
class PatchView:
    window: int
    corners: list[tuple[int, int]]
    scores: np.ndarray
    heat: np.ndarray  # per-pixel mean score of the windows covering it (NaN where none does)


@dataclass
class ScoreView:
    """The model's verdict on the whole image.

    ``prob_fake`` is the calibrated probability that ``forensics score`` writes. Uncertainty:

    - ``oof_share``/``oof_interval``/``oof_n``: among the ``oof_n`` training images whose
      cross-validated (out-of-fold) score was nearest to ``prob_fake``, the share that were fake and
      its 90 % Wilson interval: how often a score like this one was right during training.
    - ``patch_q10``/``patch_median``/``patch_q90``: spread of the patch scores over the image.
    """

    prob_fake: float
    threshold: float
    label: str | None
    oof_share: float | None = None
    oof_interval: tuple[float, float] | None = None
    oof_n: int = 0
    patch_q10: float | None = None
    patch_median: float | None = None
    patch_q90: float | None = None
    error: str | None = None


@dataclass
class Inspection:
    """Everything :func:`render_html` and :func:`render_png` draw for one image."""

    path: str
    rgb: np.ndarray
    info: dict
    spectrum: SpectrumView
    ela: np.ndarray
    noise: np.ndarray
    lbp: np.ndarray
    model_name: str | None = None
    score: ScoreView | None = None
    patches: PatchView | None = None
    contributions: list[tuple[str, float, float, float | None, float | None]] | None = None
    bias: float | None = None
    explain_kind: str | None = None  # "xgb" or "logreg": how the contributions were computed
    explain_note: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def has_model(self) -> bool:
        return self.score is not None


def inspect_image(
    path: str | os.PathLike,
    model=None,
    *,
    model_name: str | None = None,
    window: int | None = None,
    max_patches: int = MAX_PATCHES,
    top: int = 12,
    max_pixels: int | None = None,
    progress=None,
) -> Inspection:
    """Compute the forensic views of one image file and, with ``model``, its score and evidence.

    Parameters
    ----------
    path : path-like
        The image file (any format the loader reads).
    model : ForensicModel or path-like, optional
        Without it, only the maps are computed.
    window, max_patches : keyword-only
        Patch heat map windows; see :func:`patch_windows`.
    top : int, keyword-only
        Features listed among those that pushed the score most.
    max_pixels : int, keyword-only
        Loader's pixel limit (default: the model's, else the loader's default).
    progress : callable(stage, done, total), optional
        Called while the patches are scored.

    Raises
    ------
    ImageLoadError
        The file cannot be read as an image.
    """
    from forensics.errors import ImageLoadError
    from forensics.features.base import ImageViews, get_block
    from forensics.loading import DEFAULT_MAX_PIXELS, load_image
    from forensics.model import ForensicModel

    if model is not None and not isinstance(model, ForensicModel):
        model_name = model_name or Path(model).name
        model = ForensicModel.load(model)
    if max_pixels is None:
        max_pixels = model.spec.max_pixels if model is not None else DEFAULT_MAX_PIXELS
    try:
        loaded = load_image(path, max_pixels=max_pixels)
    except ImageLoadError as exc:
        raise type(exc)(f"cannot inspect {path}: {exc}") from None
    views = ImageViews(loaded)
    info = {
        "file": Path(path).name,
        "size": f"{loaded.width} x {loaded.height} px",
        "format": loaded.format,
        "mode": loaded.mode,
        "JPEG quality (estimated)": None if not np.isfinite(loaded.jpeg_quality) else round(float(loaded.jpeg_quality)),
        "file size": f"{loaded.file_size:,} bytes",
        "SHA-256": loaded.sha256,
    }
    gray = views.gray

    # --- the image's spectrum profile: from the model's spectrum settings if it has the block
    spec_settings = {}
    if model is not None and "spectrum" in model.spec.blocks:
        spec_settings = model.spec.settings.get("spectrum", {})
    block = get_block("spectrum")
    s = block.resolve_settings(spec_settings)
    prof_names = [n for n in block.feature_names(s) if n.startswith(_PROFILE_PREFIX)]
    log_mag, box = log_spectrum(gray, max_size=int(s["max_size"]))
    try:
        vec = block.compute(views, s)
        all_names = block.feature_names(s)
        profile = np.array([vec[all_names.index(n)] for n in prof_names])
    except Exception as exc:  # noqa: BLE001 - a view must not sink the page
        logger.warning("spectrum profile failed on %s: %s", path, exc)
        profile = None
    spectrum = SpectrumView(log_mag, box, (np.arange(len(prof_names)) + 0.5) / len(prof_names), profile)

    insp = Inspection(
        path=str(path), rgb=loaded.rgb, info=info, spectrum=spectrum,
        ela=ela_map(loaded.rgb), noise=noise_residual_map(gray), lbp=lbp_map(gray), model_name=model_name,
    )
    if model is None:
        return insp

    means = _card_spectrum_means(model, prof_names)
    if means is not None:
        spectrum.real_mean, spectrum.fake_mean = means
    else:
        insp.notes.append("The model card holds no per-class mean spectrum with these settings.")
    _score(insp, model, loaded, window=window, max_patches=max_patches, top=top, progress=progress)
    return insp


def _card_spectrum_means(model, prof_names: list[str]):
    """Real and fake mean profiles from the card: ``spectrum_means``, else the older ``class_means``."""
    card = model.card or {}
    sm = card.get("spectrum_means") or {}
    if sm.get("names") == prof_names and sm.get("real") and sm.get("fake"):
        return tuple(np.array([np.nan if v is None else v for v in sm[k]], float) for k in ("real", "fake"))
    cm = card.get("class_means") or {}
    names = model.feature_names
    if cm.get("real") and cm.get("fake") and all(n in names for n in prof_names):
        ix = [names.index(n) for n in prof_names]
        return tuple(np.array([np.nan if cm[k][i] is None else cm[k][i] for i in ix], float) for k in ("real", "fake"))
    return None


def _score(insp: Inspection, model, loaded, *, window, max_patches, top, progress) -> None:
    from forensics.extraction import features_for_array
    from forensics.pipelines.explain import ExplanationUnavailable, classifier_kind, contributions

    row = features_for_array(loaded, model.spec, name=insp.path)
    X = row.features[None, :]
    prob = float(model.predict_proba(X)[0])
    sv = ScoreView(prob_fake=prob, threshold=float(model.threshold), label=model.label([prob])[0], error=row.error)
    insp.score = sv
    names = model.feature_names
    prof_names = [n for n in names if n.startswith(_PROFILE_PREFIX)]
    if prof_names and len(prof_names) == len(insp.spectrum.radius):  # exactly the model's input (e.g. a face crop)
        insp.spectrum.profile = np.array([row.features[names.index(n)] for n in prof_names])
    if row.face_box is not None:
        insp.notes.append(f"Face crop model: the score is of the face at {row.face_box} (x,y,w,h)." if row.face_box
                          else "Face crop model: no face found, the whole image was scored.")

    # uncertainty 1: how often training images with a similar out-of-fold score were fake
    oof = (model.card or {}).get("oof") or {}
    if np.isfinite(prob) and oof.get("scores"):
        s = np.asarray(oof["scores"], float)
        y = np.asarray(oof["labels"], int)
        ok = np.isfinite(s)
        s, y = s[ok], y[ok]
        k = min(len(s), max(10, min(OOF_NEIGHBOURS, len(s) // 10)))
        if k:
            near = np.argsort(np.abs(s - prob), kind="stable")[:k]
            sv.oof_n = int(k)
            sv.oof_share = float(y[near].mean())
            sv.oof_interval = wilson_interval(float(y[near].sum()), k)

    # patch heat map: every window scored by the model's features (no face crop: the window is the image)
    rgb = loaded.rgb
    h, w = rgb.shape[:2]
    side, corners = patch_windows(h, w, window=window, max_patches=max_patches)
    if corners:
        pspec = replace(model.spec, face_crop=False)
        feats = []
        for i, (y0, x0) in enumerate(corners):
            feats.append(features_for_array(np.ascontiguousarray(rgb[y0 : y0 + side, x0 : x0 + side]), pspec).features)
            if progress:
                progress("patches", i + 1, len(corners))
        scores = model.predict_proba(np.vstack(feats))
        acc = np.zeros((h, w))
        cnt = np.zeros((h, w))
        for (y0, x0), sc in zip(corners, scores):
            if np.isfinite(sc):
                acc[y0 : y0 + side, x0 : x0 + side] += sc
                cnt[y0 : y0 + side, x0 : x0 + side] += 1
        with np.errstate(invalid="ignore"):
            heat = np.where(cnt > 0, acc / np.maximum(cnt, 1), np.nan)
        insp.patches = PatchView(side, corners, scores, heat)
        fin = scores[np.isfinite(scores)]
        if fin.size:
            sv.patch_q10, sv.patch_median, sv.patch_q90 = (float(v) for v in np.percentile(fin, [10, 50, 90]))

    # the features that pushed the score most
    try:
        contrib, bias = contributions(model.pipeline, X)
    except ExplanationUnavailable as exc:
        insp.explain_note = str(exc)
        return
    c = contrib[0]
    if not np.isfinite(c).any():
        insp.explain_note = "No contributions: the image has no features."
        return
    cm = (model.card or {}).get("class_means") or {}
    order = np.argsort(-np.where(np.isfinite(c), np.abs(c), -1.0), kind="stable")[: max(0, int(top))]
    insp.contributions = [
        (names[i], float(c[i]), float(X[0, i]),
         (cm.get("real") or [None] * len(names))[i], (cm.get("fake") or [None] * len(names))[i])
        for i in order
    ]
    insp.bias = float(bias[0])
    insp.explain_kind = classifier_kind(model.pipeline)


# --------------------------------------------------------------------------------------------------
# Drawing: one function per panel, used by the page (one figure per section) and the PNG (all panels)
# --------------------------------------------------------------------------------------------------


def _display(arr: np.ndarray) -> np.ndarray:
    """Downscale (area averaging) so that the longest side is at most :data:`DISPLAY_MAX`."""
    h, w = arr.shape[:2]
    f = DISPLAY_MAX / max(h, w)
    if f >= 1:
        return arr
    return cv2.resize(arr, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def _imshow(ax, arr, **kw):
    small = max(arr.shape[:2]) < 400
    im = ax.imshow(_display(arr), interpolation="nearest" if small else "antialiased",
                   extent=(0, arr.shape[1], arr.shape[0], 0), **kw)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def draw_image(ax, insp: Inspection) -> None:
    _imshow(ax, insp.rgb)
    t, l, h, w = insp.spectrum.box
    if (h, w) != insp.rgb.shape[:2]:
        from matplotlib.patches import Rectangle

        ax.add_patch(Rectangle((l, t), w, h, fill=False, ec="#ffeb3b", lw=1.2, ls="--"))
    ax.set_title(insp.info["file"], fontsize=9)


def draw_spectrum_2d(ax, insp: Inspection) -> None:
    s = insp.spectrum.log_mag
    lo, hi = np.percentile(s, [1, 99.9])
    ax.imshow(s, cmap="magma", vmin=lo, vmax=hi, extent=(-0.5, 0.5, 0.5, -0.5), interpolation="nearest")
    ax.set_xticks([-0.5, -0.25, 0, 0.25, 0.5])
    ax.set_yticks([-0.5, -0.25, 0, 0.25, 0.5])
    ax.tick_params(labelsize=7)
    ax.set_xlabel("cycles/pixel (x)", fontsize=8)
    ax.set_title("log-magnitude spectrum", fontsize=9)


def draw_profile(ax, insp: Inspection) -> None:
    sp = insp.spectrum
    if sp.real_mean is not None:
        ax.plot(sp.radius, sp.real_mean, "-", color=REAL_C, lw=1.8, label="real (training mean)")
        ax.plot(sp.radius, sp.fake_mean, "-", color=FAKE_C, lw=1.8, label="fake (training mean)")
    if sp.profile is not None:
        ax.plot(sp.radius, sp.profile, "-", color="k", lw=1.4, marker=".", ms=3, label="this image")
    ax.set_xlabel("radius (1 = Nyquist)", fontsize=8)
    ax.set_ylabel("log power (minus its mean)", fontsize=8)
    ax.set_title("azimuthal profile", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def _colorbar(fig, im, ax, label):
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    cb.ax.tick_params(labelsize=7)
    cb.set_label(label, fontsize=7)
    return cb


def draw_ela(fig, ax, insp: Inspection) -> None:
    vmax = max(float(np.percentile(insp.ela, 99.5)), 1.0)
    im = _imshow(ax, insp.ela, cmap="inferno", vmin=0, vmax=vmax)
    _colorbar(fig, im, ax, "grey levels")
    ax.set_title(f"ELA (JPEG q={ELA_QUALITY}, x{255 / vmax:.0f})", fontsize=9)


def draw_noise(fig, ax, insp: Inspection) -> None:
    a = np.abs(insp.noise)
    lim = max(float(np.percentile(a, 80)), float(np.percentile(a, 99)) / 10, 1e-3)  # texture visible, edges saturate
    im = _imshow(ax, insp.noise, cmap="gray", vmin=-lim, vmax=lim)
    _colorbar(fig, im, ax, "residual / 12")
    ax.set_title("noise residual (SRM KV)", fontsize=9)


def draw_lbp(fig, ax, insp: Inspection) -> None:
    from matplotlib.colors import BoundaryNorm, ListedColormap

    cmap = ListedColormap([*[_viridis(i / 8) for i in range(9)], "#e53935"])
    norm = BoundaryNorm(np.arange(-0.5, 10.5), cmap.N)
    small = max(insp.lbp.shape) < 400
    lbp = insp.lbp if max(insp.lbp.shape) <= DISPLAY_MAX else insp.lbp[:: math.ceil(max(insp.lbp.shape) / DISPLAY_MAX)] \
        [:, :: math.ceil(max(insp.lbp.shape) / DISPLAY_MAX)]
    im = ax.imshow(lbp, cmap=cmap, norm=norm, interpolation="nearest" if small else "antialiased",
                   extent=(0, insp.lbp.shape[1], insp.lbp.shape[0], 0))
    ax.set_xticks([])
    ax.set_yticks([])
    cb = _colorbar(fig, im, ax, "riu2 code (9 = non-uniform)")
    cb.set_ticks(range(10))
    ax.set_title("LBP codes (P=8, R=1)", fontsize=9)


def _viridis(v: float):
    from matplotlib import colormaps

    return colormaps["viridis"](v)


def draw_patches(fig, ax, insp: Inspection) -> None:
    p = insp.patches
    gray = cv2.cvtColor(insp.rgb, cv2.COLOR_RGB2GRAY)
    _imshow(ax, gray, cmap="gray", vmin=0, vmax=255)
    if p is None:
        ax.set_title("patch scores: image too small", fontsize=9)
        return
    im = _imshow(ax, p.heat.astype(np.float32), cmap="coolwarm", vmin=0, vmax=1, alpha=0.6)
    cb = _colorbar(fig, im, ax, "prob_fake")
    if insp.score is not None:
        cb.ax.axhline(insp.score.threshold, color="k", lw=1.2)
    ax.set_title(f"patch scores ({len(p.corners)} windows of {p.window} px)", fontsize=9)


def draw_contributions(ax, insp: Inspection) -> None:
    if not insp.contributions:
        ax.text(0.5, 0.5, insp.explain_note or "no explanation", ha="center", va="center", wrap=True, fontsize=8)
        ax.set_axis_off()
        return
    items = insp.contributions[::-1]
    vals = [c for _, c, *_ in items]
    ax.barh(range(len(items)), vals, color=[FAKE_C if v > 0 else REAL_C for v in vals])
    ax.set_yticks(range(len(items)), [n for n, *_ in items], fontsize=7)
    ax.axvline(0, color=OTHER_C, lw=0.8)
    ax.set_xlabel("contribution (log-odds; > 0 pushes towards fake)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("features that pushed the score most", fontsize=9)


def verdict(sv: ScoreView) -> str:
    """One line: the calibrated score, the label and the threshold."""
    if not np.isfinite(sv.prob_fake):
        return "no score (no feature could be computed)"
    return f"prob_fake {sv.prob_fake:.3f}: {sv.label} (threshold {sv.threshold:.3f})"


def uncertainty_lines(sv: ScoreView) -> list[str]:
    """The two uncertainty measures of :class:`ScoreView`, one plain sentence each (when available)."""
    out = []
    if sv.oof_interval is not None:
        lo, hi = sv.oof_interval
        out.append(f"of the {sv.oof_n} training images with the nearest cross-validated scores, {sv.oof_share:.0%} were "
                   f"fake (90 % interval {lo:.2f}-{hi:.2f})")
    if sv.patch_median is not None:
        out.append(f"patch scores: median {sv.patch_median:.2f}, 10-90 % range {sv.patch_q10:.2f}-{sv.patch_q90:.2f}")
    return out


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _figure(w: float, h: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=DPI, layout="constrained")


def _png_bytes(fig, dpi: int = DPI) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _uri(fig) -> str:
    return "data:image/png;base64," + base64.b64encode(_png_bytes(fig)).decode("ascii")


def _map_fig(draw, insp: Inspection):
    h, w = insp.rgb.shape[:2]
    side = 4.6
    fig = _figure(side * 1.2, max(2.4, min(side * h / w, 7.0)) + 0.3)
    ax = fig.add_subplot(1, 1, 1)
    draw(fig, ax, insp)
    return fig


def _image_uri(rgb: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(_display(rgb))).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img_tag(uri: str, alt: str, width: int) -> str:
    return f'<img class="fig" src="{uri}" alt="{H.esc(alt)}" style="width:{width}px;max-width:100%;image-rendering:pixelated">'


def render_html(insp: Inspection) -> str:
    """The page: one ``<section id=...>`` per entry of :data:`INSPECT_SECTIONS` (the model's only with
    a model); every figure is a PNG ``data:`` URI."""
    h, w = insp.rgb.shape[:2]
    shown = max(min(512, max(w, h) * 4), 256)  # small images are enlarged on screen, pixel for pixel
    sections = []
    img = _img_tag(_image_uri(insp.rgb), "the image", int(shown * w / max(w, h)))
    body = img + H.kv_table(list(insp.info.items()))
    if max(h, w) > DISPLAY_MAX:
        body += H.note(f"Shown downscaled to {DISPLAY_MAX} px; every map is computed at full resolution.")
    sections.append(H.Section("image", "Image", body))

    if insp.score is not None:
        sv = insp.score
        body = f'<p style="font-size:1.25em;margin:6px 0"><b>{H.esc(verdict(sv))}</b></p>'
        rows = [("model", insp.model_name or "-"), ("prob_fake (calibrated)", sv.prob_fake), ("threshold", sv.threshold),
                ("label", sv.label or "-")]
        if sv.oof_interval is not None:
            rows.append((f"fake share of the {sv.oof_n} training images scored nearest (out-of-fold)",
                         f"{sv.oof_share:.3f} (90 % Wilson interval {sv.oof_interval[0]:.3f}-{sv.oof_interval[1]:.3f})"))
        if sv.patch_median is not None:
            rows.append(("patch scores: median (10-90 %)", f"{sv.patch_median:.3f} ({sv.patch_q10:.3f}-{sv.patch_q90:.3f})"))
        if sv.error:
            rows.append(("feature errors", sv.error))
        body += H.kv_table(rows)
        body += H.note("Uncertainty, two ways. (1) Calibration evidence: the training images whose cross-validated "
                       "(out-of-fold) score was closest to this one, and the share of them that were fake, with a 90 % "
                       "Wilson interval; a wide interval means few training images were scored like this one. "
                       "(2) Consistency over the image: the spread of the patch scores below; a wide spread means "
                       "the verdict depends on where one looks (a local edit, or a patch unlike the training images).")
        for n in insp.notes:
            body += H.note(n)
        sections.append(H.Section("score", "Score", body))

    fig = _figure(11, 4.2)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    draw_spectrum_2d(ax1, insp)
    draw_profile(ax2, insp)
    t, l, ch, cw = insp.spectrum.box
    body = H.figure(_uri(fig), "spectrum and azimuthal profile")
    body += H.note(f"Left: log(1 + |F|) of the mean-removed, Hann-windowed luminance of the {cw} x {ch} centre crop "
                   "the spectrum block analyses (dashed box on the image when it is not the whole image); zero frequency "
                   "in the middle. Generators' up-sampling layers leave bright periodic peaks at +-1/4 and +-1/2 "
                   "cycle/pixel. Right: the spectrum block's luminance profile (log mean power per ring, minus its "
                   "mean) of this image" + (", against the mean of the model's real and fake training images."
                                             if insp.spectrum.real_mean is not None else "."))
    sections.append(H.Section("spectrum", "Spectrum", body))

    for sid, title, draw, text in (
        ("ela", "Error level analysis", draw_ela,
         f"Mean over R, G, B of |image - JPEG(image, q={ELA_QUALITY})|, amplified: the colour scale ends at the 99.5th "
         "percentile. Areas that have been JPEG-compressed at this quality or lower change little; a region with a "
         "different compression history from its surroundings (pasted, synthesised and blended) stands out. Edges "
         "and texture always show more error than flat areas: compare like with like."),
        ("noise", "Noise residual", draw_noise,
         "The 5x5 KV high-pass residual of the luminance (Fridrich & Kodovsky 2012) divided by its quantisation step "
         "12, as the noise block uses it; grey scale stretched to the 80th percentile of |residual| (strong edges saturate). Camera noise is "
         "fine-grained and everywhere; generated or smoothed regions look flat, and up-sampling leaves regular "
         "grid patterns."),
        ("lbp", "Local binary patterns", draw_lbp,
         "Rotation-invariant uniform LBP code (P=8, R=1) of every pixel, as the texture block codes its "
         "histograms: 0-8 count the neighbours at least as bright as the centre (8 also marks flat areas, "
         "4 edges), 9 (red) marks non-uniform, noise-like micro-texture. Real sensor noise gives many 9s in "
         "smooth areas; over-smooth synthesis gives few."),
    ):
        sections.append(H.Section(sid, title, H.figure(_uri(_map_fig(draw, insp)), title) + H.note(text)))

    if insp.score is not None:
        p = insp.patches
        if p is not None:
            body = H.figure(_uri(_map_fig(draw_patches, insp)), "patch heat map")
            body += H.note(f"Each of the {len(p.corners)} square windows of {p.window} px (50 % overlap, corners on the "
                           "8-pixel JPEG grid) is scored by the model as if it were a whole image (its own features, "
                           "calibrated); each pixel shows the mean score of the windows covering it; the black line on "
                           "the colour bar is the threshold. The model was trained on whole images, so windows are "
                           "out of its training distribution: read the map for contrasts between regions, not for "
                           "absolute values. Window side: a quarter of the shorter image side, a multiple of 16 "
                           "within 16-96 px, enlarged to keep at most 256 windows (--window overrides).")
        else:
            body = H.note("The image is too small for patch windows.")
        sections.append(H.Section("patches", "Patch heat map", body))
        if insp.contributions:
            fig = _figure(9, 0.3 * len(insp.contributions) + 1.2)
            draw_contributions(fig.add_subplot(1, 1, 1), insp)
            body = H.figure(_uri(fig), "feature contributions")
            body += H.table(["feature", "contribution (log-odds)", "this image", "training mean, real", "training mean, fake"],
                            [list(c) for c in insp.contributions])
            kind = "exact TreeSHAP contributions of XGBoost (pred_contribs)" if insp.explain_kind == "xgb" else \
                "coefficient x standardised value (logistic regression)"
            body += H.note(f"The {len(insp.contributions)} features with the largest |contribution| to this image's "
                           f"log-odds of fake ({kind}; before calibration, which is monotone). Positive values push "
                           f"towards fake. Base value (bias) {insp.bias:+.3f}.")
        else:
            body = H.note(insp.explain_note or "No explanation available.")
        sections.append(H.Section("explain", "What pushed the score", body))

    subtitle = f"{insp.path}" + (f"; model {insp.model_name}" if insp.model_name else "; no model: maps only")
    css = _GRID_CSS + ("" if insp.has_model else "#image { grid-column: 1 / -1; }")
    return H.page("forensics inspect", subtitle, sections).replace("</style>", css + "</style>", 1)


#: Two columns: image | score, the spectrum across, then the maps two by two, the explanation across.
_GRID_CSS = """
main { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); column-gap: 16px; max-width: 1400px; }
main > section { min-width: 0; }
#spectrum, #explain { grid-column: 1 / -1; }
#image td { word-break: break-all; }
"""


def render_png(insp: Inspection, out: str | os.PathLike | None = None, *, dpi: int = DPI) -> bytes:
    """All panels in one figure, as PNG bytes (written to ``out`` when given, atomically)."""
    fig = figure(insp)
    data = _png_bytes(fig, dpi=dpi)
    if out is not None:
        _write_bytes_atomic(out, data)
    return data


def figure(insp: Inspection):
    """All panels in one :class:`matplotlib.figure.Figure` (what ``--png`` writes; a notebook displays it)."""
    rows = 3 if insp.has_model else 2
    fig = _figure(16, 4.6 * rows + 0.6)
    gs = fig.add_gridspec(rows, 3)
    draw_image(fig.add_subplot(gs[0, 0]), insp)
    draw_spectrum_2d(fig.add_subplot(gs[0, 1]), insp)
    draw_profile(fig.add_subplot(gs[0, 2]), insp)
    draw_ela(fig, fig.add_subplot(gs[1, 0]), insp)
    draw_noise(fig, fig.add_subplot(gs[1, 1]), insp)
    draw_lbp(fig, fig.add_subplot(gs[1, 2]), insp)
    if insp.has_model:
        draw_patches(fig, fig.add_subplot(gs[2, 0]), insp)
        draw_contributions(fig.add_subplot(gs[2, 1:]), insp)
        title = verdict(insp.score)
        extra = uncertainty_lines(insp.score)
        if extra:
            title += "\n" + "; ".join(extra)
    else:
        title = "no model: forensic maps only"
    fig.suptitle(f"{insp.info['file']}: {title}", fontsize=11)
    return fig


def _write_bytes_atomic(path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_html(insp: Inspection, out: str | os.PathLike) -> None:
    """Write :func:`render_html` to ``out`` (atomically)."""
    from forensics.reports.io import write_text_atomic

    write_text_atomic(out, render_html(insp))
