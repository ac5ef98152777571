"""The batch runner: every image goes through one decode, the requested blocks, and the cache.

This is the only place that knows about parallelism. Every input gets exactly one row, in input
order: a file that cannot be read gets NaN features and an ``error``; a block that fails on an image
gets NaN for its features and its message in ``error`` while the other blocks still count.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from forensics.cache import (
    FeatureCache,
    decode_record,
    decode_vector,
    encode_record,
    encode_vector,
    run_cache,
)
from forensics.errors import ForensicsError, ImageLoadError, UsageError
from forensics.features.base import ImageViews, get_block, resolve_blocks
from forensics.features.diag import DIAG_COLUMNS, diag_features
from forensics.loading import DEFAULT_MAX_PIXELS, LoadedImage, as_loaded, load_image_bytes, over_pixel_limit

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class FeatureSpec:
    """Which blocks, with which settings, and the loader's limit: everything that defines features."""

    blocks: list[str]
    settings: dict = field(default_factory=dict)
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    face_crop: bool = False  # blocks see the largest face (plus margin) instead of the whole image

    @classmethod
    def create(cls, blocks="default", settings: dict | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
               *, face_crop: bool = False):
        names = resolve_blocks(blocks)
        settings = dict(settings or {})
        stray = sorted(set(settings) - set(names))
        if stray:
            raise UsageError(f"settings given for block(s) not in use: {', '.join(stray)} (blocks: {', '.join(names)})")
        resolved = {n: get_block(n).resolve_settings(settings.get(n)) for n in names}
        if face_crop:
            from forensics.faces import check_available

            check_available()
        spec = cls(blocks=names, settings=resolved, max_pixels=max_pixels, face_crop=bool(face_crop))
        spec.validate()
        return spec

    def validate(self) -> None:
        """Run every block once on a small test image so that bad settings fail before a batch."""
        probe = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
        views = ImageViews(probe)
        for n in self.blocks:
            try:
                get_block(n).compute(views, self.settings.get(n))
            except (ValueError, TypeError) as exc:
                raise UsageError(f"invalid settings for block '{n}' {self.settings.get(n)}: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - not a settings problem: reported per image later
                logger.warning("block %s fails on the probe image: %s", n, exc)

    def feature_names(self) -> list[str]:
        out: list[str] = []
        for n in self.blocks:
            out.extend(get_block(n).feature_names(self.settings.get(n)))
        return out

    def block_sizes(self) -> dict[str, int]:
        return {n: get_block(n).n_features(self.settings.get(n)) for n in self.blocks}

    @cached_property
    def _block_keys(self) -> dict[str, str]:
        """Each block's settings key, computed once (hashing per image would cost more than a block).
        Specs are not mutated after creation (``dataclasses.replace`` makes a new one)."""
        return {n: get_block(n).settings_key(self.settings.get(n)) for n in self.blocks}

    def cache_keys(self, sha256: str) -> dict[str, str]:
        keys = {n: f"{sha256}:{k}" for n, k in self._block_keys.items()}
        if self.face_crop:  # only then, so that keys without face crops stay valid
            from forensics.faces import FACE_VERSION

            keys = {n: f"{sha256}:{FACE_VERSION}:{k.split(':', 1)[1]}" for n, k in keys.items()}
            keys["face"] = f"{sha256}:{FACE_VERSION}"
        keys["diag"] = f"{sha256}:diag:v1"
        return keys


@dataclass
class Row:
    """One input's result: diag record, features (NaN where missing) and error text (or None)."""

    path: str
    features: np.ndarray
    diag: dict
    error: str | None = None
    n_computed: int = 0  # blocks computed (not from cache)
    face_box: str | None = None  # face crops only: "x,y,w,h" of the face, "" when none (whole image used)


def _empty_diag() -> dict:
    return {c: (None if c in ("format", "mode", "sha256") else math.nan) for c in DIAG_COLUMNS}


def process_one(path: str, spec: FeatureSpec, cache: FeatureCache | None, *,
                only_cached: bool = False) -> tuple[Row, dict[str, bytes]] | None:
    """Compute (or fetch from cache) all features of one file. Never raises for bad input.

    ``only_cached``: return ``None`` instead of decoding the image when anything (a block, the
    diagnostics, the face box) is missing from the cache; a file that cannot be read still gets its
    error row. The parallel runner reads the cached head of a run this way, each file once."""
    sizes = spec.block_sizes()
    total = sum(sizes.values())
    feats = np.full(total, np.nan)
    try:
        p = Path(path)
        if p.is_dir():
            raise ImageLoadError("is a directory, not an image file")
        data = p.read_bytes()
    except ImageLoadError as exc:
        return Row(path, feats, _empty_diag(), str(exc)), {}
    except FileNotFoundError:
        return Row(path, feats, _empty_diag(), "file not found (or a dangling link)"), {}
    except OSError as exc:
        return Row(path, feats, _empty_diag(), f"cannot read file: {exc.strerror or exc}"), {}

    sha = hashlib.sha256(data).hexdigest()
    keys = spec.cache_keys(sha)
    cached = cache.get_many(list(keys.values())) if cache is not None else {}
    new: dict[str, bytes] = {}
    diag = decode_record(cached[keys["diag"]]) if keys["diag"] in cached else None
    refusal = over_limit_error(diag, spec)
    if refusal is not None:
        return Row(path, feats, diag, refusal), {}
    missing = [n for n in spec.blocks if keys[n] not in cached]
    face = decode_record(cached[keys["face"]]) if spec.face_crop and keys["face"] in cached else None
    errors: list[str] = []
    views = None
    if missing or diag is None or (spec.face_crop and face is None):
        if only_cached:
            return None
        try:
            image = load_image_bytes(data, max_pixels=spec.max_pixels, name=path)
        except ImageLoadError as exc:
            d = _empty_diag()
            d.update(file_size=len(data), sha256=sha)
            return Row(path, feats, d, str(exc)), {}
        views = ImageViews(image)
        if diag is None:
            diag = diag_features(views)
            new[keys["diag"]] = encode_record(diag)
        if spec.face_crop:
            try:
                views, face = _face_views(image)
            except Exception as exc:  # noqa: BLE001 - a detector failure must not sink the batch
                return Row(path, feats, diag, f"face detection failed: {type(exc).__name__}: {exc}"), new
            new[keys["face"]] = encode_record(face)
    n_computed = _fill_blocks(feats, views, spec, sizes, path, errors, cached=cached, keys=keys, new=new)
    face_box = _face_box_text(face) if spec.face_crop else None
    return Row(path, feats, diag, "; ".join(errors) or None, n_computed, face_box), new


def over_limit_error(diag: dict | None, spec: FeatureSpec) -> str | None:
    """The loader's :class:`~forensics.errors.DecompressionBombError` message for a file whose cached
    ``diag`` record is over ``spec.max_pixels`` (``None`` when it is within the limit, or without a
    record): the cache may have been filled under a higher limit, and must not let such a file through."""
    return None if diag is None else over_pixel_limit(diag["width"], diag["height"], spec.max_pixels)


def _fill_blocks(feats, views, spec, sizes, name, errors, *, cached=None, keys=None, new=None) -> int:
    """Write every block's features into ``feats`` (in ``spec.blocks`` order), from ``cached`` where
    its key is present, else computed on ``views`` (and added to ``new``). A block that fails leaves
    NaN and appends its message to ``errors``. Returns the number of blocks computed."""
    cached = cached if cached is not None else {}
    offset = n_computed = 0
    for block in spec.blocks:
        size = sizes[block]
        key = keys[block] if keys is not None else None
        if key is not None and key in cached:
            vec = decode_vector(cached[key])
        else:
            try:
                vec = get_block(block).compute(views, spec.settings.get(block))
                n_computed += 1
                if new is not None and key is not None:
                    new[key] = encode_vector(vec)
            except Exception as exc:  # noqa: BLE001 - a block bug must not sink the batch
                logger.warning("block %s failed on %s: %s", block, name, exc)
                errors.append(f"block {block} failed: {type(exc).__name__}: {exc}")
                vec = np.full(size, np.nan)
        if vec.shape[0] == size:
            feats[offset : offset + size] = vec
        offset += size
    return n_computed

def _face_views(image) -> tuple[ImageViews, dict]:
    """Views of the largest face crop of a loaded image (the whole image when there is none)."""
    from forensics.faces import largest_face_crop

    crop, box = largest_face_crop(image.rgb)
    if box is None:
        return ImageViews(image), {"box": None}
    cropped = LoadedImage(rgb=crop, format=image.format, mode=image.mode, jpeg_quality=image.jpeg_quality,
                          file_size=image.file_size, sha256=image.sha256, n_frames=image.n_frames, path=image.path)
    return ImageViews(cropped), {"box": list(box)}


def _face_box_text(face: dict | None) -> str:
    from forensics.faces import format_box

    return format_box((face or {}).get("box"))


def features_for_array(image, spec: FeatureSpec, *, name: str = "<array>", cached: dict | None = None,
                       keys: dict | None = None, new: dict | None = None) -> Row:
    """Features of one in-memory image (an RGB array, e.g. a video frame), as a :class:`Row`.

    The same blocks, settings and face crop as :func:`process_one`, without a file: a block that
    fails gives NaN for its features and its message in ``error``. Arrays other than (H, W, 3)
    uint8 are converted as :func:`forensics.loading.array_to_rgb8` does. With ``keys`` (block name
    -> cache key, optionally ``"diag"`` and ``"face"`` too, as :meth:`FeatureSpec.cache_keys` gives),
    what is in ``cached`` is read from there and everything computed is added to ``new`` under its
    key (the caller writes it to a cache). A cached face box is used only when every block is cached
    too; otherwise the face is detected again.
    """
    sizes = spec.block_sizes()
    feats = np.full(sum(sizes.values()), np.nan)
    try:
        image = as_loaded(image)
    except ImageLoadError as exc:
        return Row(name, feats, _empty_diag(), str(exc))
    views = ImageViews(image)
    cached = cached if cached is not None else {}
    dkey, fkey = (keys.get("diag"), keys.get("face")) if keys is not None else (None, None)
    if dkey is not None and dkey in cached:
        diag = decode_record(cached[dkey])
    else:
        diag = diag_features(views)
        if dkey is not None and new is not None:
            new[dkey] = encode_record(diag)
    face = None
    if spec.face_crop:
        if fkey is not None and fkey in cached and all(keys[b] in cached for b in spec.blocks):
            face = decode_record(cached[fkey])
        else:
            try:
                views, face = _face_views(image)
            except Exception as exc:  # noqa: BLE001
                return Row(name, feats, diag, f"face detection failed: {type(exc).__name__}: {exc}")
            if fkey is not None and new is not None:
                new[fkey] = encode_record(face)
    errors: list[str] = []
    n_computed = _fill_blocks(feats, views, spec, sizes, name, errors, cached=cached, keys=keys, new=new)
    face_box = _face_box_text(face) if spec.face_crop else None
    return Row(name, feats, diag, "; ".join(errors) or None, n_computed, face_box)


# --------------------------------------------------------------------------------------------------
# Worker-process plumbing
# --------------------------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(spec: FeatureSpec, cache_dir: str | None) -> None:
    _WORKER["spec"] = spec
    _WORKER["cache"] = FeatureCache(cache_dir, readonly=True) if cache_dir else None


def _work_chunk(paths: list[str]) -> list[tuple[Row, dict[str, bytes]]]:
    return [process_one(p, _WORKER["spec"], _WORKER["cache"]) for p in paths]


def _chunks(seq: list, size: int) -> Iterator[list]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def iter_features(
    paths: Iterable[str],
    spec: FeatureSpec,
    *,
    jobs: int = 1,
    cache_dir: str | os.PathLike | None = None,
    progress: Progress | None = None,
    chunk_size: int = 16,
    scheduler=None,
) -> Iterator[Row]:
    """Yield one :class:`Row` per path, in order, computing features with ``jobs`` processes.

    Parameters
    ----------
    paths : iterable of str
        Image files. Every one gets a row, readable or not.
    spec : FeatureSpec
        Blocks, settings and pixel limit.
    jobs : int
        Worker processes; 1 runs in this process. ``-1`` means one per CPU. Leading chunks whose
        features are all in the cache are read in this process; workers start at the first chunk
        with something to compute.
    cache_dir : path-like or None
        Feature cache folder; ``None`` disables caching.
    progress : callable(n_done, n_total) or None
        Called after each chunk.
    scheduler : str, distributed.Client or None
        Run the chunks on a dask.distributed cluster instead (see :mod:`forensics.distributed`): a
        scheduler address (``tcp://host:8786``), ``"local"`` (a LocalCluster of ``jobs`` worker
        processes) or a Client. Needs the extra ``forensics[dask]``.
    """
    if scheduler is not None:
        from forensics.distributed import check_available

        check_available()
    paths = [str(p) for p in paths]
    total = len(paths)
    jobs = _effective_jobs(jobs)
    done = 0
    if progress:
        progress(0, total)
    with run_cache(cache_dir) as cache:
        if scheduler is not None:
            from forensics.distributed import dask_client, map_chunks

            with dask_client(scheduler, jobs=jobs) as client:
                for results in map_chunks(client, _chunks(paths, chunk_size), spec, cache_dir):
                    done = yield from _emit(results, cache, done, total, progress)
        elif jobs <= 1 or total <= chunk_size:
            for chunk in _chunks(paths, chunk_size):
                results = [process_one(p, spec, cache) for p in chunk]
                done = yield from _emit(results, cache, done, total, progress)
        else:
            from forensics.runtime import map_chunks_cache_first

            read_cached = None if cache is None else (lambda p: process_one(p, spec, cache, only_cached=True))
            for results in map_chunks_cache_first(list(_chunks(paths, chunk_size)), read_cached, jobs, _work_chunk,
                                                  _init_worker, (spec, str(cache_dir) if cache_dir is not None else None)):
                done = yield from _emit(results, cache, done, total, progress)


def _emit(results, cache, done, total, progress):
    new: dict[str, bytes] = {}
    for row, entries in results:
        new.update(entries)
    if cache is not None:
        cache.put_many(new)
    for row, _ in results:
        yield row
    done += len(results)
    if progress:
        progress(done, total)
    return done


def _effective_jobs(jobs: int) -> int:
    if jobs is None or jobs == 0:
        return 1
    if jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + jobs)
    return jobs


def summarize_errors(errors: Iterable[str | None]) -> Counter:
    """Count distinct error messages (ignoring ``None``)."""
    return Counter(e for e in errors if e)


def rows_to_frame(rows: list[Row], spec: FeatureSpec, labels: list | None = None):
    """Assemble rows into the features table: ``path``, [``label``], ``error``, ``diag__*``, features."""
    import pandas as pd

    names = spec.feature_names()
    feats = np.vstack([r.features for r in rows]) if rows else np.zeros((0, len(names)))
    data = {"path": [r.path for r in rows]}
    if labels is not None:
        data["label"] = list(labels)
    data["error"] = [r.error for r in rows]
    for c in DIAG_COLUMNS:
        data[f"diag__{c}"] = [r.diag.get(c) for r in rows]
    frame = pd.DataFrame(data)
    feat_frame = pd.DataFrame(feats, columns=names)
    return pd.concat([frame, feat_frame], axis=1)


def extract_features(
    paths,
    blocks="default",
    *,
    settings: dict | None = None,
    labels: list | None = None,
    jobs: int = 1,
    cache_dir=None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: Progress | None = None,
):
    """Features table (pandas DataFrame) for ``paths``: one row each, in order. See :func:`iter_features`."""
    spec = FeatureSpec.create(blocks, settings, max_pixels)
    paths = list(paths)
    if labels is not None and len(labels) != len(paths):
        raise ForensicsError("labels and paths differ in length")
    rows = list(iter_features(paths, spec, jobs=jobs, cache_dir=cache_dir, progress=progress))
    return rows_to_frame(rows, spec, labels)
