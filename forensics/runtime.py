"""Process-level tuning for batch feature extraction (used by worker processes and the CLI).

Feature blocks allocate and free a few image-sized float32 arrays per image. glibc's default
malloc returns every freed block above 128 KiB to the operating system and maps it again on the next
allocation, so each image pays for hundreds of page faults: measured here, all default blocks on a
256 px face took about 1.6x longer than with the thresholds raised. :func:`tune_process` raises them
(64 MiB mmap threshold, 256 MiB trim threshold) and pins OpenCV to one thread per process, since
parallelism comes from worker processes. The library never calls it on import: a program embedding
``forensics`` keeps its own settings unless it asks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Callable, Iterator

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def tune_process(*, opencv_threads: int | None = 1) -> bool:
    """Raise glibc's malloc thresholds (Linux) and set OpenCV's thread count; True if malloc was tuned."""
    global _done
    if opencv_threads is not None:
        import cv2

        cv2.setNumThreads(opencv_threads)
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 64 * 1024 * 1024) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024) == 1
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        ok = False
    _done = ok
    logger.debug("malloc thresholds tuned: %s", ok)
    return ok


def _start_worker(initializer, initargs) -> None:
    tune_process()
    if initializer is not None:
        initializer(*initargs)


def worker_pool(jobs: int, initializer=None, initargs: tuple = ()) -> ProcessPoolExecutor:
    """``jobs`` worker processes, started the same way for every parallel runner of the package:
    forkserver on POSIX (forking a parent that runs threads can deadlock), spawn elsewhere; each runs
    :func:`tune_process`, then ``initializer(*initargs)`` (a module-level function: it is pickled)."""
    ctx = get_context("forkserver" if os.name == "posix" else "spawn")
    return ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_start_worker,
                               initargs=(initializer, tuple(initargs)))


def map_chunks_cache_first(chunks: list[list], read_cached: Callable | None, jobs: int, work: Callable,
                           initializer=None, initargs: tuple = ()) -> Iterator[list]:
    """Each chunk's list of results, in order. Leading chunks whose every item ``read_cached(item)``
    answers (anything but ``None``: a cache hit, or an error that costs nothing) are answered here; from
    the first chunk with something to compute on, ``jobs`` worker processes (:func:`worker_pool`) run
    ``work(chunk)`` on the rest, that chunk included. Starting workers costs more than reading a cache,
    so a fully cached run starts none. ``read_cached`` ``None``: every chunk goes to the workers."""
    start = 0
    while read_cached is not None and start < len(chunks):
        results = [read_cached(item) for item in chunks[start]]
        if any(r is None for r in results):
            break
        yield results
        start += 1
    if start < len(chunks):
        with worker_pool(jobs, initializer, initargs) as pool:
            yield from pool.map(work, chunks[start:])
