"""The feature-block registry and the shared per-image views every block computes from.

A feature block is a plain function ``f(image, *, setting=default, ...) -> 1-D float array`` registered
with :func:`register_block`, which records its metadata (presets, cost, reference, optional dependency)
and a function giving its feature names for given settings. Everything else (the CLI's ``--blocks``
choices, presets, the sklearn transformers, the cache keys, the docs) is derived from the registry, so
adding a block touches one module.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import logging
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from forensics.errors import UsageError
from forensics.loading import LoadedImage, as_loaded

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Shared views: one decode, one colour conversion per image, shared by all blocks.
# --------------------------------------------------------------------------------------------------


class ImageViews:
    """Lazily computed, cached views of one RGB image (float32 unless stated).

    Blocks take either an array or an ``ImageViews``; passing the same ``ImageViews`` to every block
    means each colour conversion is done once per image.
    """

    def __init__(self, image):
        self.image: LoadedImage = as_loaded(image)
        self._cache: dict = {}

    def crop(self, size: int | None) -> "ImageViews":
        """Views of the grid-aligned centre crop of at most ``size`` x ``size`` pixels (cached).

        Blocks crop *before* asking for colour conversions, so a 12-megapixel photo costs a
        512 x 512 conversion, once, shared by every block using the same size. Returns ``self`` when
        the image already fits.
        """
        if size is None or (self.image.height <= size and self.image.width <= size):
            return self
        key = ("crop", int(size))
        child = self._cache.get(key)
        if child is None:
            img = self.image
            cropped = LoadedImage(
                rgb=np.ascontiguousarray(center_crop(img.rgb, size)),
                format=img.format, mode=img.mode, jpeg_quality=img.jpeg_quality,
                file_size=img.file_size, sha256=img.sha256, n_frames=img.n_frames, path=img.path,
            )
            child = self._cache[key] = ImageViews(cropped)
        return child

    def _get(self, key, fn):
        out = self._cache.get(key)
        if out is None:
            out = fn()
            self._cache[key] = out
        return out

    @property
    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8."""
        return self.image.rgb

    @property
    def rgb_f(self) -> np.ndarray:
        """(H, W, 3) float32 in 0-255."""
        return self._get("rgb_f", lambda: self.rgb.astype(np.float32))

    @property
    def gray(self) -> np.ndarray:
        """Luma Y (ITU-R BT.601), (H, W) float32 in 0-255."""
        return self._get("gray", lambda: np.ascontiguousarray(self.ycrcb[:, :, 0]))

    @property
    def ycrcb(self) -> np.ndarray:
        """(H, W, 3) float32 Y, Cr, Cb in 0-255 (OpenCV's full-range BT.601)."""
        return self._get("ycrcb", lambda: cv2.cvtColor(self.rgb_f, cv2.COLOR_RGB2YCrCb))

    @property
    def hsv(self) -> np.ndarray:
        """(H, W, 3) float32: hue in degrees [0, 360), saturation and value in [0, 1]."""
        return self._get("hsv", lambda: cv2.cvtColor(self.rgb_f / 255.0, cv2.COLOR_RGB2HSV))

    @property
    def lab(self) -> np.ndarray:
        """(H, W, 3) float32 CIE L*a*b* (L in [0, 100])."""
        return self._get("lab", lambda: cv2.cvtColor(self.rgb_f / 255.0, cv2.COLOR_RGB2Lab))

    def jpeg_error(self, quality: int, min_side: int = 16) -> np.ndarray:
        """(H, W, 3) uint8 ``|image - JPEG(image, quality)|`` in BGR order (read-only, cached).

        The image is edge-padded to ``min_side`` pixels a side first (:func:`pad_to_min`), then
        recompressed with OpenCV's libjpeg(-turbo) at its default 4:2:0 chroma subsampling. The
        ``ela`` and ``layout`` blocks share it: one round trip per quality and image.
        """

        def compute():
            bgr = cv2.cvtColor(pad_to_min(self.rgb, min_side), cv2.COLOR_RGB2BGR)
            ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
            if not ok:  # pragma: no cover - libjpeg does not fail on a valid uint8 image
                raise RuntimeError(f"JPEG encoding at quality {quality} failed")
            err = cv2.absdiff(bgr, cv2.imdecode(buf, cv2.IMREAD_COLOR))
            err.flags.writeable = False
            return err

        return self._get(("jpeg_error", int(quality), int(min_side)), compute)


#: Pairwise channel sums (r+g, r+b, g+b): their energies give the cross products without a split.
_PAIR_SUMS = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.float32)


def channel_correlations(x: np.ndarray, sq_sums=None) -> np.ndarray:
    """Correlations (rg, rb, gb) between the channels of (h, w, 3) float32 ``x``; 0 where a channel
    is flat. ``sq_sums`` optionally gives the per-channel sums of squares already computed.

    Uses sum(ci cj) = (sum((ci + cj)^2) - sum(ci^2) - sum(cj^2)) / 2, accumulated in double precision.
    """
    n = x.shape[0] * x.shape[1]
    mean = np.array(cv2.mean(x)[:3])
    if sq_sums is None:
        sq_sums = cv2.sumElems(cv2.multiply(x, x))
    sq = np.array(sq_sums[:3]) / n
    pair = cv2.transform(x, _PAIR_SUMS)
    pair_sq = np.array(cv2.sumElems(cv2.multiply(pair, pair))[:3]) / n
    var = np.maximum(sq - mean * mean, 0.0)
    out = []
    for k, (i, j) in enumerate(((0, 1), (0, 2), (1, 2))):
        cross = 0.5 * (pair_sq[k] - sq[i] - sq[j]) - mean[i] * mean[j]
        den = np.sqrt(var[i] * var[j])
        out.append(float(np.clip(cross / den, -1.0, 1.0)) if den > 1e-9 * (1.0 + sq[i] + sq[j]) else 0.0)
    return np.array(out)


def as_views(image) -> ImageViews:
    """Accept an array, path, :class:`LoadedImage` or :class:`ImageViews`."""
    return image if isinstance(image, ImageViews) else ImageViews(image)


#: Crops start on multiples of this, so that a previous JPEG grid (8x8, or 16x16 with chroma
#: subsampling, anchored at the top-left pixel) stays aligned with the crop's own grid.
CROP_ALIGN = 16


def center_crop(arr: np.ndarray, size: int | None, align: int = CROP_ALIGN) -> np.ndarray:
    """Centre crop of at most ``size`` x ``size`` pixels (no resampling); smaller sides are kept.

    The crop's origin is a multiple of ``align`` (so it is at most ``align - 1`` pixels off centre):
    cropping must not shift the JPEG block grid that the noise and ELA blocks measure.
    """
    if size is None:
        return arr
    h, w = arr.shape[:2]
    ch, cw = min(h, size), min(w, size)
    top = ((h - ch) // 2) // align * align
    left = ((w - cw) // 2) // align * align
    return arr[top : top + ch, left : left + cw]


def mirror_column_label(col: int, n: int) -> str:
    """Name of grid column ``col`` of ``n`` folded onto its mirror column (``n - 1 - col``), as blocks that
    average a grid with its mirror image name it: ``c1c6`` for column 1 of 8, ``c2`` for the middle one of 5."""
    other = n - 1 - col
    return f"c{col}" + (f"c{other}" if other != col else "")


def check_mirror(mirror) -> None:
    """Refuse a ``mirror`` setting that is not a boolean (``--set block.mirror=false`` parses to one)."""
    if not isinstance(mirror, (bool, np.bool_)):
        raise ValueError(f"mirror must be true or false, got {mirror!r}")


def pad_to_min(arr: np.ndarray, min_size: int) -> np.ndarray:
    """Edge-pad an array so both spatial sides are at least ``min_size`` (for tiny images)."""
    h, w = arr.shape[:2]
    if h >= min_size and w >= min_size:
        return arr
    ph, pw = max(0, min_size - h), max(0, min_size - w)
    pad = [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)] + [(0, 0)] * (arr.ndim - 2)
    return np.pad(arr, pad, mode="edge")


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

#: Presets and what they mean. ``default`` is the handcrafted blocks fed to the classifier unless
#: told otherwise; ``cnn`` (optional, torch) is in no preset.
PRESETS: dict[str, str] = {
    "default": "every handcrafted block that needs no optional package (spectrum, texture, noise, color, ela, cooc, layout, hog)",
    "fast": "spectrum and cooc (about 8x a JPEG decode), for triage of very large folders",
    "faces": "the default blocks plus faceparts, for pictures of faces (needs forensics[faces])",
}
#: Presets that also take every block of other presets.
PRESET_INCLUDES: dict[str, tuple[str, ...]] = {"faces": ("default",)}


@dataclass(frozen=True)
class FeatureBlock:
    """Metadata and functions of one registered feature block."""

    name: str
    func: Callable
    names_func: Callable
    presets: tuple = ("default",)
    cost: str = "low"
    description: str = ""
    reference: str = ""
    requires: tuple = ()
    install_hint: str = ""
    version: int = 1
    classifier_input: bool = True
    defaults: dict = field(default_factory=dict)
    #: Optional ``card_info(**settings) -> dict``: what the block adds to a model card (e.g. a
    #: backbone and its weights' SHA-256), recorded under ``block_info``.
    card_info: Callable | None = None
    _names_memo: dict = field(default_factory=dict, repr=False, compare=False)

    def check_available(self) -> None:
        """Raise :class:`UsageError` when an optional dependency of the block is missing."""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            hint = self.install_hint or f"pip install {' '.join(missing)}"
            raise UsageError(f"block '{self.name}' needs {', '.join(missing)}, which is not installed: {hint}")

    def resolve_settings(self, settings: dict | None = None) -> dict:
        """Defaults overridden by ``settings``; unknown keys raise :class:`UsageError`."""
        settings = dict(settings or {})
        unknown = set(settings) - set(self.defaults)
        if unknown:
            raise UsageError(
                f"unknown setting(s) {sorted(unknown)} for block '{self.name}'; known: {sorted(self.defaults)}"
            )
        out = dict(self.defaults)
        out.update(settings)
        return out

    def feature_names(self, settings: dict | None = None) -> list[str]:
        """Feature names ``block__feature`` for these settings."""
        s = self.resolve_settings(settings)
        return [f"{self.name}__{n}" for n in self._names(s)]

    def _names(self, s: dict) -> tuple[str, ...]:
        """``names_func(**s)``, memoised per settings (it runs once per image in :meth:`compute`)."""
        key = repr(sorted(s.items()))
        names = self._names_memo.get(key)
        if names is None:
            names = self._names_memo[key] = tuple(self.names_func(**s))
        return names

    def n_features(self, settings: dict | None = None) -> int:
        """How many features the block gives with these settings."""
        return len(self._names(self.resolve_settings(settings)))

    def compute(self, image, settings: dict | None = None) -> np.ndarray:
        """Run the block on one image; always returns a float64 vector of the advertised length."""
        s = self.resolve_settings(settings)
        out = np.asarray(self.func(image, **s), dtype=np.float64).ravel()
        n = len(self._names(s))
        if out.shape[0] != n:  # a bug in the block, never the image's fault
            raise RuntimeError(f"block '{self.name}' returned {out.shape[0]} values, expected {n}")
        return out

    def settings_key(self, settings: dict | None = None) -> str:
        """Stable hash of block name, version and settings: the cache key's block part."""
        s = self.resolve_settings(settings)
        payload = json.dumps({"block": self.name, "version": self.version, "settings": s}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


_REGISTRY: dict[str, FeatureBlock] = {}


def register_block(
    name: str,
    *,
    names: Callable,
    presets: tuple = ("default",),
    cost: str = "low",
    reference: str = "",
    requires: tuple = (),
    install_hint: str = "",
    version: int = 1,
    classifier_input: bool = True,
    card_info: Callable | None = None,
):
    """Decorator registering a per-image feature function as block ``name``.

    The function's keyword-only arguments (with their defaults) are the block's settings; ``names``
    is called with the same settings and returns the feature names (without the block prefix);
    ``card_info``, when given, is too and returns what the block records in a model card.
    """

    def deco(func: Callable) -> Callable:
        if name in _REGISTRY:
            raise RuntimeError(f"feature block '{name}' registered twice")
        if "__" in name:
            raise ValueError("block names may not contain '__'")
        sig = inspect.signature(func)
        defaults = {
            p.name: p.default
            for p in sig.parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty
        }
        doc = inspect.getdoc(func) or ""
        _REGISTRY[name] = FeatureBlock(
            name=name,
            func=func,
            names_func=names,
            presets=tuple(presets),
            cost=cost,
            description=doc.split("\n\n")[0].replace("\n", " "),
            reference=reference,
            requires=tuple(requires),
            install_hint=install_hint,
            version=version,
            classifier_input=classifier_input,
            defaults=defaults,
            card_info=card_info,
        )
        func.block_name = name
        return func

    return deco


def _ensure_loaded() -> None:
    # Import the block modules so that their decorators run.
    import forensics.features  # noqa: F401


def get_block(name: str) -> FeatureBlock:
    """The registered block called ``name``; :class:`UsageError` listing the known ones otherwise."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown feature block '{name}'; known blocks: {', '.join(sorted(_REGISTRY))}; presets: {', '.join(PRESETS)}") from None


def all_blocks() -> dict[str, FeatureBlock]:
    """Every registered block, by name, in registration order."""
    _ensure_loaded()
    return dict(_REGISTRY)


def resolve_blocks(spec: str | list[str] | tuple | None) -> list[str]:
    """Expand a ``--blocks`` value (names and presets, comma-separated or a list) to block names.

    Order is the registry's; duplicates are removed; unknown names raise :class:`UsageError`, and so
    do blocks whose optional dependency is missing.
    """
    _ensure_loaded()
    if spec is None:
        spec = "default"
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    items = [s for s in items if s]
    if not items:
        raise UsageError("no feature blocks given")
    wanted: set[str] = set()
    for item in items:
        if item in PRESETS:
            presets = {item, *PRESET_INCLUDES.get(item, ())}
            wanted.update(n for n, b in _REGISTRY.items() if presets & set(b.presets))
        else:
            block = get_block(item)
            if not block.classifier_input:
                raise UsageError(f"block '{item}' is provenance only and always recorded; it cannot be a classifier block")
            wanted.add(item)
    names = [n for n in _REGISTRY if n in wanted]
    for n in names:
        _REGISTRY[n].check_available()
    return names


def feature_names(blocks, settings: dict | None = None) -> list[str]:
    """Concatenated feature names of ``blocks`` (a spec or list), with per-block ``settings``."""
    settings = settings or {}
    out: list[str] = []
    for name in resolve_blocks(blocks):
        out.extend(get_block(name).feature_names(settings.get(name)))
    return out


def fmt_param(value) -> str:
    """Encode a parameter value for a feature name (``0.5`` -> ``0p5``)."""
    return str(value).replace(".", "p").replace("-", "m")
