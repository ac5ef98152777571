"""Per-file feature cache, keyed by the file's content hash and each block's settings.

One SQLite file under the cache folder (default: the user cache folder, e.g. ``~/.cache/forensics``).
Renaming or moving a file keeps its cache entries; changing one byte, a block's settings or a block's
version invalidates them. Only the batch runner's parent process writes; workers only read.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

logger = logging.getLogger(__name__)

_SCHEMA = "CREATE TABLE IF NOT EXISTS features (key TEXT PRIMARY KEY, value BLOB NOT NULL)"
_FILENAME = "features-v1.sqlite"


def default_cache_dir() -> Path:
    """``$FORENSICS_CACHE_DIR`` if set, else the platform's user cache folder for ``forensics``."""
    env = os.environ.get("FORENSICS_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("forensics", appauthor=False))


class FeatureCache:
    """A key-value store of feature vectors (float64) and diag records (JSON).

    Parameters
    ----------
    directory : path-like
        Folder holding the cache file; created if needed.
    readonly : bool
        Open for lookups only (what worker processes do).
    """

    def __init__(self, directory: str | os.PathLike, *, readonly: bool = False):
        self.directory = Path(directory)
        self.readonly = readonly
        if not readonly:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / _FILENAME
        self._conn: sqlite3.Connection | None = None
        self._broken = False  # the file could not be opened: run without the cache

    # sqlite connections cannot cross processes: open lazily, drop on pickling.
    def __getstate__(self):
        return {"directory": self.directory, "readonly": self.readonly, "path": self.path, "_conn": None,
                "_broken": self._broken}

    @property
    def conn(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if self._broken or (self.readonly and not self.path.exists()):
                return None
            conn = None
            try:
                conn = sqlite3.connect(self.path, timeout=60)
                if not self.readonly:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute(_SCHEMA)
                    conn.commit()
            except sqlite3.Error as exc:  # a broken cache only costs recomputation
                logger.warning("feature cache %s is unusable (%s); running without it", self.path, exc)
                if conn is not None:
                    conn.close()
                self._broken = True
                return None
            self._conn = conn
        return self._conn

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        conn = self.conn
        if conn is None or not keys:
            return {}
        out: dict[str, bytes] = {}
        try:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                q = f"SELECT key, value FROM features WHERE key IN ({','.join('?' * len(chunk))})"
                out.update(conn.execute(q, chunk).fetchall())
        except sqlite3.Error as exc:  # a broken cache only costs recomputation
            logger.warning("feature cache lookup failed (%s); recomputing", exc)
            return {}
        return out

    def put_many(self, items: dict[str, bytes]) -> None:
        if self.readonly or not items:
            return
        conn = self.conn
        if conn is None:
            return
        try:
            conn.executemany("INSERT OR REPLACE INTO features (key, value) VALUES (?, ?)", items.items())
            conn.commit()
        except sqlite3.Error as exc:
            logger.warning("could not write to the feature cache at %s: %s", self.path, exc)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __len__(self) -> int:
        conn = self.conn
        return 0 if conn is None else conn.execute("SELECT COUNT(*) FROM features").fetchone()[0]


@contextmanager
def run_cache(cache_dir: str | os.PathLike | None) -> Iterator[FeatureCache | None]:
    """The feature cache of one run, opened by the process that writes it (``None`` without a folder).
    Its file is created up front, so that worker processes can open it read-only; it is closed when
    the run ends, also on an error or when a generator using it is abandoned."""
    if cache_dir is None:
        yield None
        return
    cache = FeatureCache(cache_dir)
    try:
        cache.conn  # noqa: B018 - creates the file (or marks the cache unusable)
        yield cache
    finally:
        cache.close()


def encode_vector(vec: np.ndarray) -> bytes:
    return np.ascontiguousarray(vec, dtype="<f8").tobytes()


def decode_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f8").copy()


def encode_record(record: dict) -> bytes:
    return json.dumps(record, allow_nan=True).encode()


def decode_record(blob: bytes) -> dict:
    return json.loads(blob.decode())
