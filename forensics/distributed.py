"""Running the batch runner on a dask.distributed cluster (the optional extra ``forensics[dask]``).

The batch runner (:func:`forensics.extraction.iter_features`) calls :func:`dask_client` and
:func:`map_chunks` when it is given ``scheduler=``; nothing else in the package knows about Dask. As
with tsfresh's ``Distributor``, the extractors are unchanged: a cluster only decides *where* chunks of
paths go through :func:`forensics.extraction.process_one`.

- ``scheduler`` is the address of a running scheduler (``tcp://host:8786``, started with
  ``dask scheduler``; workers with ``dask worker tcp://host:8786 --nworkers N --nthreads 1``), the
  word ``local`` (a :class:`distributed.LocalCluster` of ``jobs`` single-threaded worker processes on
  this machine, closed at the end), or an existing :class:`distributed.Client` (used as it is, not
  closed).
- Workers read the image files themselves, at their absolute paths: the files must be visible to
  every worker under the same path (a shared or replicated folder). Every worker must have the same
  forensics version installed; this is checked before any work is sent.
- The feature cache stays with the caller. A worker opens the cache folder read-only when it exists
  on its machine (same machine, or a shared folder) and otherwise computes everything; the entries it
  computed travel back with the rows and the caller writes them, as with local worker processes.
- Rows come back in input order. At most ``window`` chunks (default: 4 per worker thread) are in
  flight, so memory stays bounded whatever the number of files.
- A chunk whose task fails on the cluster (a worker killed while processing it, say) gives its files
  rows with the error ``cluster task failed: ...``; losing the scheduler stops the run with an error.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import deque
from contextlib import contextmanager
from typing import Iterable, Iterator

import numpy as np

from forensics.errors import ForensicsError, UsageError

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'forensics[dask]'"
#: Seconds to wait for the first worker to join the scheduler.
WORKER_WAIT = float(os.environ.get("FORENSICS_DASK_WORKER_WAIT", 60))
#: Chunks in flight per worker thread.
WINDOW_PER_THREAD = 4


def check_available() -> None:
    """:class:`UsageError` with the install hint when dask.distributed is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise UsageError(f"--scheduler needs dask.distributed, which is not installed: {INSTALL_HINT}") from None


@contextmanager
def dask_client(scheduler, *, jobs: int = 1):
    """A :class:`distributed.Client` for ``scheduler`` (address, ``"local"`` or a Client), workers checked.

    ``jobs`` is the number of worker processes of a ``local`` cluster (``-1``: one per CPU).
    """
    check_available()
    from distributed import Client

    if isinstance(scheduler, Client):
        _check_workers(scheduler, getattr(scheduler.scheduler, "address", "?"))
        yield scheduler
        return
    address = str(scheduler).strip()
    if not address:
        raise UsageError("--scheduler is empty: give a scheduler address (tcp://host:8786) or 'local'")
    cluster = None
    try:
        if address == "local":
            from distributed import LocalCluster

            from forensics.extraction import _effective_jobs

            cluster = LocalCluster(n_workers=_effective_jobs(jobs), threads_per_worker=1, processes=True,
                                   dashboard_address=":0")
            client = Client(cluster)
        else:
            try:
                client = Client(address)
            except (OSError, TimeoutError, ValueError) as exc:
                raise UsageError(f"cannot connect to the dask scheduler at {address}: {exc}") from None
        try:
            _check_workers(client, address)
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _check_workers(client, address: str) -> None:
    from forensics import __version__

    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT)
    except TimeoutError:
        raise ForensicsError(f"no dask worker joined the scheduler at {address} within {WORKER_WAIT:.0f} s "
                             f"(start some with: dask worker {address} --nthreads 1)") from None
    try:
        versions = client.run(_worker_version)
    except Exception as exc:  # noqa: BLE001 - e.g. ModuleNotFoundError raised on a worker
        raise UsageError(f"the dask workers at {address} cannot run forensics ({type(exc).__name__}: {exc}); "
                         f"install forensics {__version__} on every worker") from None
    wrong = sorted({v for v in versions.values() if v != __version__})
    if wrong:
        raise UsageError(f"dask workers at {address} run forensics {', '.join(wrong)}, this is {__version__}: "
                         f"features would differ; install the same version on every worker")


def _worker_version() -> str:
    from forensics import __version__

    return __version__


# --------------------------------------------------------------------------------------------------
# Worker side
# --------------------------------------------------------------------------------------------------

_LOCAL = threading.local()  # per worker thread: sqlite connections do not cross threads
_SETUP = {"done": False}


def _worker_cache(cache_dir: str | None):
    if cache_dir is None:
        return None
    caches = getattr(_LOCAL, "caches", None)
    if caches is None:
        caches = _LOCAL.caches = {}
    if cache_dir not in caches:
        from forensics.cache import FeatureCache

        # Read-only: no folder is created; a cache folder this machine does not have means no cache.
        caches[cache_dir] = FeatureCache(cache_dir, readonly=True) if os.path.isdir(cache_dir) else None
    return caches[cache_dir]


def run_chunk(paths: list[str], spec, cache_dir: str | None) -> list:
    """What a worker does with one chunk: ``[process_one(p, spec, cache) for p in paths]``."""
    from forensics.extraction import process_one

    if not _SETUP["done"]:
        from forensics.runtime import tune_process

        tune_process()  # one OpenCV thread (parallelism comes from the workers), as local worker processes do
        _SETUP["done"] = True
    cache = _worker_cache(cache_dir)
    return [process_one(p, spec, cache) for p in paths]


# --------------------------------------------------------------------------------------------------
# Client side
# --------------------------------------------------------------------------------------------------


def map_chunks(client, chunks: Iterable[list[str]], spec, cache_dir=None, *, window: int | None = None) -> Iterator[list]:
    """Yield ``run_chunk(chunk, ...)`` results for ``chunks``, in order, from the cluster of ``client``.

    Paths are sent as absolute paths and given back as they came. At most ``window`` chunks are
    submitted and not yet yielded (default: :data:`WINDOW_PER_THREAD` per worker thread).
    """
    from concurrent.futures import CancelledError

    if window is None:
        window = max(2, WINDOW_PER_THREAD * sum(client.nthreads().values()))
    cache_dir = os.path.abspath(cache_dir) if cache_dir is not None else None
    spec_future = client.scatter(spec, broadcast=True, hash=False)
    token = uuid.uuid4().hex[:12]
    pending: deque = deque()
    source = enumerate(chunks)

    def fill():
        for i, chunk in source:
            absolute = [os.path.abspath(p) for p in chunk]
            fut = client.submit(run_chunk, absolute, spec_future, cache_dir, key=f"forensics-features-{token}-{i}",
                                retries=1)
            pending.append((chunk, fut))
            if len(pending) >= window:
                return

    try:
        fill()
        while pending:
            chunk, fut = pending.popleft()
            try:
                results = fut.result()
            except (CancelledError, TimeoutError) as exc:
                raise ForensicsError(f"lost the dask cluster while extracting features ({type(exc).__name__}: {exc})") from None
            except Exception as exc:  # noqa: BLE001 - a task that failed remotely: its files get error rows
                if client.status not in ("running", "connecting"):
                    raise ForensicsError(f"lost the dask cluster while extracting features ({type(exc).__name__}: {exc})") from None
                logger.warning("a chunk of %d files failed on the cluster: %s: %s", len(chunk), type(exc).__name__, exc)
                results = [_failed(p, spec, f"cluster task failed: {type(exc).__name__}: {exc}") for p in chunk]
            else:
                for (row, _), original in zip(results, chunk):
                    row.path = original
            fut.release()
            fill()
            yield results
    finally:
        for _, fut in pending:
            fut.cancel()
        spec_future.release()


def _failed(path: str, spec, message: str):
    from forensics.extraction import Row, _empty_diag

    return Row(path, np.full(len(spec.feature_names()), np.nan), _empty_diag(), message), {}
