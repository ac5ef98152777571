"""A small labelled demo dataset built offline: real photo crops vs simulated generator up-sampling.

Real images are crops of the photographs that ship inside the scikit-image wheel (no download).
Fakes are crops of the same photographs passed through the artefact simulator of Zhang, Karaman and
Chang (2019): down-sample, then up-sample with a transposed-convolution-like step (zero insertion
followed by a small, slightly uneven kernel), which leaves the periodic spectral peaks that the
up-sampling layers of real generators leave. Both classes are saved the same way (JPEG, same quality
distribution) so that the container does not give the label away.

Run ``python -m forensics.demo OUT_DIR`` to write the dataset from the command line.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

from forensics.errors import UsageError

logger = logging.getLogger(__name__)

#: Photographs bundled inside the scikit-image wheel (``skimage/data/*``), loaded without pooch or
#: network. Colour: astronaut, chelsea, coffee, rocket, immunohistochemistry; grayscale: camera,
#: coins, brick, grass, gravel. Data sets that scikit-image fetches on demand (``skin``, ``lily``,
#: ``kidney``...) and the rectified (resampled) ``stereo_motorcycle`` pair are deliberately left out.
BUNDLED_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "camera",
    "coins",
    "brick",
    "grass",
    "gravel",
)

#: JPEG quality range (inclusive) drawn uniformly for every saved image, real or fake.
DEFAULT_JPEG_QUALITY = (85, 95)

#: Number of simulated "generators": each has its own up-sampling kernels (per stage, per channel).
_N_GENERATORS = 4
#: Fraction of fakes made with two up-sampling stages (from 1/4 resolution) instead of one.
_TWO_STAGE_FRACTION = 0.3
#: Range of the relative spread of the kernel taps around the bilinear transposed-convolution kernel,
#: drawn once per generator: small enough that the peaks are often buried under the photo's own
#: spectrum and the JPEG grid (separable, not trivially).
_KERNEL_JITTER = (0.01, 0.04)
#: Range of the standard deviation (grey levels) of the Gaussian noise a generator synthesises on top
#: of the up-sampled image; it restores some of the high-frequency energy the down-sampling removed,
#: so that blur alone does not give the fakes away.
_NOISE_SIGMA = (0.5, 2.0)
#: Per-channel gain and offset jitter applied to the fakes (mild colour shift of a generator).
_GAIN_JITTER = 0.03
_OFFSET_JITTER = 3.0


@functools.lru_cache(maxsize=1)
def _photo_pool() -> tuple[tuple[str, np.ndarray], ...]:
    """Load :data:`BUNDLED_PHOTOS` once, as read-only (H, W) or (H, W, 3) uint8 arrays."""
    from skimage import data

    pool = []
    for name in BUNDLED_PHOTOS:
        arr = np.asarray(getattr(data, name)())
        if arr.dtype != np.uint8:
            raise RuntimeError(f"skimage.data.{name} is {arr.dtype}, expected uint8")
        if arr.ndim == 3:
            arr = arr[:, :, :3]
        arr = np.ascontiguousarray(arr)
        arr.setflags(write=False)
        pool.append((name, arr))
    return tuple(pool)


def _random_crop(rng: np.random.Generator, photo: np.ndarray, size: int) -> np.ndarray:
    """A size x size crop at a random position, with random horizontal/vertical flips; no resampling."""
    h, w = photo.shape[:2]
    y = int(rng.integers(0, h - size + 1))
    x = int(rng.integers(0, w - size + 1))
    crop = photo[y : y + size, x : x + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        crop = crop[::-1, :]
    return crop


def _area_downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Average over non-overlapping factor x factor blocks of an (H, W, C) float array."""
    h, w, c = img.shape
    return img.reshape(h // factor, factor, w // factor, factor, c).mean(axis=(1, 3))


def _transposed_upsample(img: np.ndarray, kernels: np.ndarray) -> np.ndarray:
    """Stride-2 transposed convolution: zero insertion, then one kernel per channel.

    ``img`` is (h, w, C) float, ``kernels`` is (C, k, k); the result is (2h, 2w, C). The low-resolution
    image is reflect-padded first so that the borders are not darkened by the zero insertion.
    """
    pad = 2
    h, w, c = img.shape
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    up = np.zeros((2 * padded.shape[0], 2 * padded.shape[1], c), dtype=np.float64)
    up[::2, ::2] = padded
    out = np.empty((2 * h, 2 * w, c), dtype=np.float64)
    for ch in range(c):
        full = ndimage.convolve(up[:, :, ch], kernels[ch], mode="constant")
        out[:, :, ch] = full[2 * pad : 2 * pad + 2 * h, 2 * pad : 2 * pad + 2 * w]
    return out


def _make_kernel(rng: np.random.Generator, taps: int, jitter: float) -> np.ndarray:
    """A "learned-looking" up-sampling kernel: bilinear transposed-conv kernel with uneven taps.

    The kernel is normalised to a total gain of 4 (a mean gain of 1 after stride-2 zero insertion),
    but its four polyphase components no longer sum to exactly 1 each, which is what produces the
    checkerboard pattern, i.e. spectral peaks at (1/2, 0), (0, 1/2) and (1/2, 1/2) cycles/pixel.
    """
    base_1d = np.array([0.25, 0.75, 0.75, 0.25]) if taps == 4 else np.array([0.5, 1.0, 0.5])
    base = np.outer(base_1d, base_1d)
    kernel = base * (1.0 + jitter * rng.standard_normal(base.shape))
    return kernel * (4.0 / kernel.sum())


def _make_generators(rng: np.random.Generator) -> list[dict]:
    """Draw the simulated generators: kernel size, and kernels per stage (2) and channel (3)."""
    generators = []
    for _ in range(_N_GENERATORS):
        taps = int(rng.choice([3, 4]))
        jitter = float(rng.uniform(*_KERNEL_JITTER))
        stages = [np.stack([_make_kernel(rng, taps, jitter) for _ in range(3)]) for _ in range(2)]
        generators.append({"taps": taps, "stages": stages})
    return generators


def _simulate_fake(rng: np.random.Generator, crop: np.ndarray, generator: dict) -> np.ndarray:
    """Down-sample a crop by 2 (or 4) and up-sample it back with the generator's kernels."""
    gray = crop.ndim == 2
    img = crop.astype(np.float64)
    img = img[:, :, None] if gray else img
    n_stages = 2 if rng.random() < _TWO_STAGE_FRACTION else 1
    img = _area_downsample(img, 2**n_stages)
    for stage in generator["stages"][-n_stages:]:
        kernels = stage[:1] if gray else stage  # one kernel for a gray photo keeps R = G = B
        img = _transposed_upsample(img, kernels)
    channels = img.shape[2]
    gain = 1.0 + rng.uniform(-_GAIN_JITTER, _GAIN_JITTER, size=channels)
    offset = rng.uniform(-_OFFSET_JITTER, _OFFSET_JITTER, size=channels)
    noise = rng.normal(0.0, rng.uniform(*_NOISE_SIGMA), size=img.shape)  # one plane for a gray photo
    img = img * gain + offset + noise
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out[:, :, 0] if gray else out


def _save_jpeg(pixels: np.ndarray, path: Path, quality: int) -> None:
    """Save as an RGB JPEG (gray photos are stored as R = G = B), the same way for both classes."""
    rgb = np.repeat(pixels[:, :, None], 3, axis=2) if pixels.ndim == 2 else pixels
    Image.fromarray(np.ascontiguousarray(rgb)).save(
        path, format="JPEG", quality=int(quality), subsampling="4:2:0", optimize=False
    )


def make_demo_dataset(
    out_dir: str | os.PathLike,
    *,
    n_per_class: int = 60,
    size: int = 128,
    seed: int = 0,
    jpeg_quality: tuple[int, int] = DEFAULT_JPEG_QUALITY,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Write a small labelled dataset of real photo crops and simulated generator images.

    Real images are random ``size`` x ``size`` crops (no resampling, random flips) of the photographs
    bundled with scikit-image (:data:`BUNDLED_PHOTOS`). Fakes are crops of the same photographs at
    other positions, down-sampled by 2 (area averaging; by 4 for about a third of them) and
    up-sampled back by one (or two) transposed-convolution-like steps: stride-2 zero insertion followed
    by a small (3x3 or 4x4) kernel with slightly uneven taps, per channel, taken from one of a few
    seeded simulated "generators"; then a mild per-channel gain/offset jitter and a little synthesised
    noise. This is the GAN artefact simulator
    ("AutoGAN") of Zhang et al. (2019) reduced to its up-sampling step: it leaves the periodic
    spectral peaks that real generators leave, without a trained network.

    Both classes are saved as JPEG with the quality drawn from the same range, so that neither the
    format nor the compression level gives the label away.

    Parameters
    ----------
    out_dir : str or path-like
        Created if needed; images go to ``out_dir/real/real_NNNN.jpg`` and ``out_dir/fake/fake_NNNN.jpg``.
    n_per_class : int, keyword-only
        Number of images per class.
    size : int, keyword-only
        Side of the square images, a multiple of 4 between 16 and the smallest usable photo side.
    seed : int, keyword-only
        Seed of everything random; the same seed writes the same files.
    jpeg_quality : (int, int), keyword-only
        Inclusive range of the JPEG quality drawn for every image, real or fake.
    overwrite : bool, keyword-only
        Replace the ``real_*.jpg``/``fake_*.jpg`` files of an earlier run. Without it, a ``real/`` or
        ``fake/`` folder that already holds files is an error.
    progress : callable, optional
        Called as ``progress(n_done, n_total)`` after each image is written.

    Returns
    -------
    dict
        ``{"real": n_real, "fake": n_fake}``, the number of images written per class.

    Raises
    ------
    UsageError
        Bad parameter, or existing files in the class folders without ``overwrite``.

    References
    ----------
    .. [1] X. Zhang, S. Karaman and S.-F. Chang, "Detecting and simulating artifacts in GAN fake
       images," IEEE International Workshop on Information Forensics and Security (WIFS), 2019.
       https://arxiv.org/abs/1907.06515
    """
    if int(n_per_class) != n_per_class or n_per_class < 1:
        raise UsageError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    if int(size) != size or size < 16 or size % 4:
        raise UsageError(f"size must be a multiple of 4 and at least 16, got {size!r}")
    q_lo, q_hi = (int(q) for q in jpeg_quality)
    if not 1 <= q_lo <= q_hi <= 100:
        raise UsageError(f"jpeg_quality must be a range (lo, hi) with 1 <= lo <= hi <= 100, got {jpeg_quality!r}")
    n_per_class, size = int(n_per_class), int(size)

    pool = [(name, arr) for name, arr in _photo_pool() if min(arr.shape[:2]) >= size]
    if not pool:
        largest = max(min(arr.shape[:2]) for _, arr in _photo_pool())
        raise UsageError(f"size must be at most {largest} (the bundled photos are too small), got {size}")

    out = Path(out_dir)
    dirs = {label: out / label for label in ("real", "fake")}
    for label, folder in dirs.items():
        if folder.is_dir() and any(folder.iterdir()):
            if not overwrite:
                raise UsageError(f"{folder} is not empty; pass overwrite=True to replace an earlier demo dataset")
            for old in folder.glob(f"{label}_*.jpg"):
                old.unlink()
        folder.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    generators = _make_generators(rng)
    n_total = 2 * n_per_class
    n_done = 0
    counts = {"real": 0, "fake": 0}
    for i in range(n_per_class):
        for label in ("real", "fake"):
            _, photo = pool[int(rng.integers(len(pool)))]
            crop = _random_crop(rng, photo, size)
            if label == "fake":
                crop = _simulate_fake(rng, crop, generators[int(rng.integers(len(generators)))])
            quality = int(rng.integers(q_lo, q_hi + 1))
            _save_jpeg(crop, dirs[label] / f"{label}_{i:04d}.jpg", quality)
            counts[label] += 1
            n_done += 1
            if progress is not None:
                progress(n_done, n_total)
    logger.info("wrote %d real and %d fake demo images to %s", counts["real"], counts["fake"], out)
    return counts


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m forensics.demo OUT_DIR [--n-per-class N] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m forensics.demo",
        description="Write a small offline demo dataset: OUT_DIR/real/*.jpg and OUT_DIR/fake/*.jpg.",
    )
    parser.add_argument("out_dir", help="output folder")
    parser.add_argument("--n-per-class", type=int, default=60, help="images per class (default 60)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier demo dataset")
    args = parser.parse_args(argv)
    try:
        counts = make_demo_dataset(
            args.out_dir, n_per_class=args.n_per_class, size=args.size, seed=args.seed, overwrite=args.overwrite
        )
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {counts['real']} real and {counts['fake']} fake images to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
