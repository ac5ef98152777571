"""Held-out evaluation of a model on labelled data, clean and under perturbations.

Each image is read once and decoded at most once; its features are computed on the clean image and on
each perturbed copy (JPEG re-compression, resizing, blur, cropping, noise; see
:mod:`forensics.perturbations`), in memory. With a cache folder, the features of the clean image and of
each perturbed copy are kept in the feature cache (a copy keyed by the file's hash and the
perturbation), so a second run computes nothing it has computed before, and decodes no image whose
features are all cached. Real and fake images get the same perturbations. Per condition: AUC, AP,
balanced accuracy, accuracy on real and on fake at the model's threshold, EER, detection rate at 1 %
and 5 % false positives, Brier score.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections import Counter
from pathlib import Path, PurePath
from typing import Callable, Iterator

import numpy as np

from forensics.cache import FeatureCache, decode_record, encode_record, run_cache
from forensics.datasets import collect_labelled
from forensics.errors import ImageLoadError, UsageError
from forensics.extraction import FeatureSpec, _effective_jobs, _fill_blocks, features_for_array, over_limit_error
from forensics.features.diag import diag_features
from forensics.loading import load_image_bytes
from forensics.perturbations import Perturbation
from forensics.pipelines.metrics import detection_metrics

logger = logging.getLogger(__name__)

#: Name of the unperturbed condition in results.
CLEAN = "clean"


def image_conditions(path: str, spec: FeatureSpec, perturbations: list[Perturbation], *,
                     clean: bool = True) -> tuple[np.ndarray, list[str | None]]:
    """Features of one image file, clean and under each perturbation: an array of shape
    (1 + len(perturbations), n_features) and one error (or ``None``) per condition; without ``clean``
    only the perturbed rows, (len(perturbations), n_features). Never raises for bad input: an
    unreadable file gives NaN rows and its error in every condition. Without a feature cache: see
    :func:`cached_conditions` for one."""
    feats, errors, _ = cached_conditions(path, spec, perturbations, clean=clean)
    return feats, errors


def condition_keys(spec: FeatureSpec, sha256: str, perturbations: list[Perturbation], *,
                   clean: bool = True) -> list[dict[str, str]]:
    """Per condition (clean first when ``clean``), each block's feature-cache key. The clean image's
    keys are those of :meth:`FeatureSpec.cache_keys` (shared with ``extract``, ``train`` and
    ``score``); a perturbed copy's add the perturbation's :attr:`~Perturbation.cache_tag` to the
    file's hash, so that a copy is keyed by the file, the operation and each block's settings."""
    shas = ([sha256] if clean else []) + [f"{sha256}~{p.cache_tag}" for p in perturbations]
    out = []
    for sha in shas:
        keys = spec.cache_keys(sha)
        out.append({b: keys[b] for b in spec.blocks})
    return out


def cached_conditions(path: str, spec: FeatureSpec, perturbations: list[Perturbation], *, clean: bool = True,
                      cache: FeatureCache | None = None, only_cached: bool = False
                      ) -> tuple[np.ndarray, list[str | None], dict[str, bytes]] | None:
    """:func:`image_conditions` with a feature cache: returns the features, the errors and the new
    cache entries (``{key: bytes}``) of what was computed here, for the caller to write (workers open
    the cache read-only). The file is read and hashed once, and decoded only when the cache lacks a
    block of some condition or the file's diagnostics record (which is then added to the new entries,
    as :func:`~forensics.extraction.process_one` does). As there, a file whose cached record is over
    ``spec.max_pixels`` gets the loader's decompression-bomb error in every condition, so the cache
    never lets it through; a file that cannot be read or decoded gets its error in every condition and
    nothing cached. A condition whose blocks are all cached is neither perturbed nor computed.

    ``only_cached``: return ``None`` instead of decoding when anything is missing from the cache; a
    file that cannot be read still gets its result. :func:`iter_conditions` reads the cached head of a
    parallel run this way, each file once."""
    sizes = spec.block_sizes()
    first = 1 if clean else 0
    n_cond = first + len(perturbations)
    feats = np.full((n_cond, sum(sizes.values())), np.nan)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        msg = f"cannot read file: {exc.strerror or exc}"
        return feats, [msg] * n_cond, {}
    keys = [None] * n_cond
    cached: dict[str, bytes] = {}
    diag_key = diag = None
    if cache is not None:
        sha = hashlib.sha256(data).hexdigest()
        keys = condition_keys(spec, sha, perturbations, clean=clean)
        diag_key = spec.cache_keys(sha)["diag"]
        cached = cache.get_many([diag_key] + [k for ks in keys for k in ks.values()])
        diag = decode_record(cached[diag_key]) if diag_key in cached else None
    refusal = over_limit_error(diag, spec)
    if refusal is not None:
        return feats, [refusal] * n_cond, {}
    complete = [ks is not None and all(k in cached for k in ks.values()) for ks in keys]
    new: dict[str, bytes] = {}
    image = None
    if diag is None or not all(complete):
        if only_cached:
            return None
        try:
            image = load_image_bytes(data, max_pixels=spec.max_pixels, name=path)
        except ImageLoadError as exc:
            return feats, [str(exc)] * n_cond, {}
        if diag_key is not None and diag is None:
            new[diag_key] = encode_record(diag_features(image))
    errors: list[str | None] = []
    for i in range(n_cond):
        p = perturbations[i - first] if i >= first else None
        if complete[i]:  # nothing to compute
            _fill_blocks(feats[i], None, spec, sizes, path, [], cached=cached, keys=keys[i])
            errors.append(None)
            continue
        if p is None:
            source, name = image, path
        else:
            try:
                source, name = p(image.rgb), f"{path} [{p.name}]"
            except Exception as exc:  # noqa: BLE001 - one image's failure must not sink the run
                errors.append(f"{p.name} failed: {type(exc).__name__}: {exc}")
                continue
        row = features_for_array(source, spec, name=name, cached=cached, keys=keys[i], new=new)
        feats[i] = row.features
        errors.append(row.error)
    return feats, errors, new


_WORKER: dict = {}


def _init_worker(spec: FeatureSpec, perturbations: list[Perturbation], clean: bool, cache_dir: str | None) -> None:
    _WORKER.update(spec=spec, perturbations=perturbations, clean=clean,
                   cache=FeatureCache(cache_dir, readonly=True) if cache_dir else None)


def _work(paths: list[str]):
    w = _WORKER
    return [cached_conditions(p, w["spec"], w["perturbations"], clean=w["clean"], cache=w["cache"]) for p in paths]


def iter_conditions(
    paths: list[str],
    spec: FeatureSpec,
    perturbations: list[Perturbation],
    *,
    clean: bool = True,
    jobs: int = 1,
    chunk_size: int = 8,
    cache_dir=None,
) -> Iterator[list[tuple[np.ndarray, list[str | None]]]]:
    """:func:`image_conditions` of every path, in order, one list per chunk of ``chunk_size`` images,
    computed by ``jobs`` worker processes (``-1``: one per CPU). With ``cache_dir``, features are read
    from and written to the feature cache there (this process writes, after each chunk). Chunks
    whose features are all in the cache are read here (each file once, none decoded), and the workers
    start only at the first chunk with something to compute: starting them costs more than reading a
    cache."""
    chunks = [paths[i : i + chunk_size] for i in range(0, len(paths), chunk_size)]
    jobs = _effective_jobs(jobs)
    with run_cache(cache_dir) as cache:

        def emit(results):
            if cache is not None:
                cache.put_many({k: v for _, _, entries in results for k, v in entries.items()})
            return [(feats, errors) for feats, errors, _ in results]

        if jobs <= 1 or len(chunks) <= 1:
            for chunk in chunks:
                yield emit([cached_conditions(p, spec, perturbations, clean=clean, cache=cache) for p in chunk])
            return
        from forensics.runtime import map_chunks_cache_first

        read_cached = None if cache is None else (
            lambda p: cached_conditions(p, spec, perturbations, clean=clean, cache=cache, only_cached=True))
        init_args = (spec, perturbations, clean, str(cache_dir) if cache_dir is not None else None)
        for results in map_chunks_cache_first(chunks, read_cached, jobs, _work, _init_worker, init_args):
            yield emit(results)


def condition_scores(
    model,
    paths: list[str],
    perturbations: list[Perturbation],
    *,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    chunk_size: int = 8,
    cache_dir=None,
) -> tuple[np.ndarray, list[list[str | None]]]:
    """Scores of ``model`` on each image (rows) under each condition (columns: clean, then the
    perturbations), and the errors per image and condition. Features are scored chunk by chunk, so
    memory stays at one chunk's features; ``cache_dir``: the feature cache folder (``None``: none)."""
    n, n_cond = len(paths), 1 + len(perturbations)
    scores = np.full((n, n_cond), np.nan)
    errors: list[list[str | None]] = []
    done = 0
    if progress:
        progress(0, n)
    for results in iter_conditions(paths, model.spec, perturbations, jobs=jobs, chunk_size=chunk_size,
                                   cache_dir=cache_dir):
        if results:  # one call per chunk: a model's per-call overhead outweighs a few rows' scoring
            chunk = model.predict_proba(np.vstack([feats for feats, _ in results]))
            scores[done : done + len(results)] = chunk.reshape(len(results), n_cond)
            errors.extend(errs for _, errs in results)
            done += len(results)
        if progress:
            progress(done, n)
    return scores, errors


#: ``evaluate(..., by=BY_FOLDER)``: group images by the folder that holds them.
BY_FOLDER = "folder"
#: The group of the images a ``by`` expression does not match.
OTHER = "(other)"


def image_groups(paths: list[str], by: str) -> list[str]:
    """The group of each image, for per-group metrics (:func:`evaluate`'s ``by``).

    ``by="folder"``: the name of the folder holding the image (``data/fake/stylegan2/x.jpg`` is in
    ``stylegan2``, ``data/real/x.jpg`` in ``real``), so fakes sorted into one sub-folder per generator
    or edit get one group each. Different folders of the same name (the ``real/`` of two DATA
    arguments) are never merged: they are named with as many of their parent folders as it takes to
    tell them apart (``a/real`` and ``b/real``). Any other ``by`` is a regular expression searched in
    the path (with ``/`` separators): the group is its first capture group, or the whole match when it
    has none; images it does not match (or whose group is empty) are in ``(other)``. Raises
    :class:`UsageError` for an invalid expression, and for one that matches no path, before anything
    is computed.
    """
    if by == BY_FOLDER:
        parents = [os.path.dirname(os.path.abspath(p)) for p in paths]
        names = _shortest_unique_suffixes(list(dict.fromkeys(parents)))
        return [names[p] or OTHER for p in parents]
    try:
        pattern = re.compile(by)
    except re.error as exc:
        raise UsageError(f"--by {by!r} is neither 'folder' nor a valid regular expression: {exc}") from None
    groups = []
    for p in paths:
        m = pattern.search(Path(p).as_posix())
        name = (m.group(1) if pattern.groups else m.group(0)) if m else None
        groups.append(name or OTHER)
    if paths and all(g == OTHER for g in groups):
        raise UsageError(f"--by {by!r} matches none of the {len(paths)} image paths (e.g. {Path(paths[0]).as_posix()})")
    return groups


def _shortest_unique_suffixes(folders: list[str]) -> dict[str, str]:
    """Each distinct folder's name, with as many of its parents' names before it (``/``-joined) as it
    takes for no two folders to share one; the root folder's name is ``""``."""
    parts = {f: PurePath(f).parts[1:] if PurePath(f).anchor else PurePath(f).parts for f in folders}
    depth = dict.fromkeys(folders, 1)
    while True:
        label = {f: "/".join(parts[f][-depth[f]:]) if parts[f] else "" for f in folders}
        seen = Counter(label.values())
        grow = [f for f in folders if seen[label[f]] > 1 and depth[f] < len(parts[f])]
        if not grow:
            return label
        for f in grow:
            depth[f] += 1


def group_metrics(y, scores, groups, threshold: float) -> dict:
    """Per group (in order of first appearance): how many real and fake images it holds with a score
    (``n_real``, ``n_fake``) and without (``n_failed``), the accuracy on each class at ``threshold``
    (``acc_real``, ``acc_fake``), the mean score, and an AUC: within the group when it holds both
    classes (``auc_against`` ``"group"``); a group of fakes only against all the real images
    (``"all real"``), and of real images only against all the fakes (``"all fake"``), so that each
    kind of fake, or each source of real photos, is measured against the rest. A group none of whose
    images has a score gets its counts, NaN figures and ``auc_against`` ``None``."""
    y = np.asarray(y).astype(int)
    s = np.asarray(scores, dtype=float)
    groups = np.asarray(groups, dtype=object)
    ok = np.isfinite(s)
    out = {}
    for g in dict.fromkeys(groups.tolist()):
        member = groups == g
        real, fake = member & ok & (y == 0), member & ok & (y == 1)
        if real.any() and fake.any():
            keep, against = member & ok, "group"
        elif fake.any():
            keep, against = fake | (ok & (y == 0)), "all real"
        elif real.any():
            keep, against = real | (ok & (y == 1)), "all fake"
        else:  # nothing in the group was scored
            keep, against = real, None
        m = detection_metrics(y[keep], s[keep], threshold)
        out[g] = {
            "n_real": int(real.sum()),
            "n_fake": int(fake.sum()),
            "n_failed": int((member & ~ok).sum()),
            "acc_real": float((s[real] < threshold).mean()) if real.any() else math.nan,
            "acc_fake": float((s[fake] >= threshold).mean()) if fake.any() else math.nan,
            "mean_prob_fake": float(s[member & ok].mean()) if (member & ok).any() else math.nan,
            "auc": m["auc"],
            "auc_ci_low": m["auc_ci_low"],
            "auc_ci_high": m["auc_ci_high"],
            "auc_against": against,
        }
    return out


def evaluate(
    model,
    data,
    perturbations: list[Perturbation] = (),
    *,
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    cache_dir=None,
    by: str | None = None,
) -> tuple[dict, Counter]:
    """Metrics of ``model`` on the labelled ``data`` (folders with real/ and fake/, CSV manifests),
    clean and under each perturbation.

    Returns ``{condition: metrics}`` with conditions ``clean`` then each perturbation's name (as
    given, e.g. ``jpeg:75``); metrics are those of :func:`~forensics.pipelines.metrics.detection_metrics`
    at the model's threshold plus ``n_failed`` (images without a score in that condition, left out).
    Also returns the distinct errors (``condition: message``) with their counts. ``cache_dir``: the
    feature cache folder, read and written for the clean images and the perturbed copies (``None``:
    compute everything, store nothing). ``by``: also the metrics of each group of images
    (:func:`image_groups`: ``"folder"`` or a regular expression on the paths), under ``"groups"`` in
    every condition's metrics (:func:`group_metrics`).
    """
    items = collect_labelled([str(d) for d in data])
    if not items:
        raise UsageError(f"no image files found in {', '.join(map(str, data))}")
    groups = image_groups([i.path for i in items], by) if by is not None else None
    y = np.array([i.label for i in items])
    if len(np.unique(y)) < 2:
        logger.warning("only one class in the evaluation data: AUC, AP and EER are undefined")
    perturbations = list(perturbations)
    scores, errors = condition_scores(model, [i.path for i in items], perturbations, jobs=jobs, progress=progress,
                                      cache_dir=cache_dir)
    names = [CLEAN] + [p.name for p in perturbations]
    out: dict = {}
    for j, name in enumerate(names):
        s = scores[:, j]
        m = detection_metrics(y, s, model.threshold)
        m["n_failed"] = int((~np.isfinite(s)).sum())
        if groups is not None:
            m["groups"] = group_metrics(y, s, groups, model.threshold)
        out[name] = m
    problems: Counter = Counter()
    for errs in errors:
        if errs[0] and all(e == errs[0] for e in errs):  # unreadable file: one message, not one per condition
            problems[errs[0]] += 1
            continue
        for name, e in zip(names, errs):
            if e:
                problems[f"{name}: {e}"] += 1
    return out, problems


def json_ready(obj):
    """NaN and infinities to ``None`` (strict JSON), recursively."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
