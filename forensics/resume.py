"""Resumable scoring: rows go to a partial file as they are computed; a rerun reuses them.

``forensics score ... --out scores.csv`` writes every finished chunk of rows to
``.scores.csv.partial`` (JSON lines, flushed and fsync'ed per chunk) next to the output. When the run
completes, the CSV is written atomically and the partial file removed. When it is interrupted (Ctrl-C,
a crash, ``kill -9``, a power cut), the next run with the same output reads the partial file and
reuses each row whose **path, file SHA-256 and model fingerprint** all match; it computes only the
other files. A line cut short by the interruption is ignored (that file is simply scored again), so
the output always holds exactly one row per input file.

The feature cache (:mod:`forensics.cache`) complements this across complete runs: scoring a folder
again computes features only for files that are new or changed; the model itself is cheap to apply.

Partial file format: the first line is a header ``{"format", "version", "forensics", "columns",
"dtypes"}``; every other line is ``{"path", "sha256", "model", "row"}``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from forensics import __version__

logger = logging.getLogger(__name__)

PARTIAL_FORMAT = "forensics-score-partial"
PARTIAL_VERSION = 1


def partial_path(out: str | os.PathLike) -> Path:
    """``.<name>.partial`` beside ``out``."""
    out = Path(out)
    return out.with_name(f".{out.name}.partial")


def model_fingerprint(model) -> str:
    """A hash that changes whenever the model's scores could: its card, feature spec, threshold, and
    its outputs on a fixed probe matrix (which covers the fitted pipeline and any calibrator)."""
    h = hashlib.sha256()
    spec = model.spec
    h.update(json.dumps({"blocks": spec.blocks, "settings": spec.settings, "max_pixels": spec.max_pixels,
                         "face_crop": bool(getattr(spec, "face_crop", False)), "threshold": float(model.threshold)},
                        sort_keys=True, default=str).encode())
    h.update(json.dumps(model.card, sort_keys=True, default=str).encode())
    n = len(spec.feature_names())
    probe = np.random.default_rng(12345).normal(size=(8, n)) * 3.0
    with np.errstate(all="ignore"):
        h.update(np.round(np.asarray(model.predict_proba(probe), dtype=np.float64), 12).tobytes())
    return h.hexdigest()[:32]


def _file_sha256(path: str) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return None
    return h.hexdigest()


def _plain(v):
    """JSON-ready cell value (pandas NA and numpy scalars to Python)."""
    if v is None:
        return None
    try:
        import pandas as pd

        if v is pd.NA:
            return None
    except ImportError:  # pragma: no cover
        pass
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def read_partial(path: Path) -> tuple[dict | None, dict[tuple, dict]]:
    """Header and reusable rows keyed by ``(path, sha256, model)``; lines that do not parse are skipped."""
    header, rows = None, {}
    try:
        fh = open(path, encoding="utf-8")
    except OSError:
        return None, {}
    with fh:
        for i, line in enumerate(fh):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by the interruption
            if i == 0:
                if rec.get("format") != PARTIAL_FORMAT or rec.get("version") != PARTIAL_VERSION or rec.get("forensics") != __version__:
                    return None, {}
                header = rec
                continue
            if header is None or not isinstance(rec, dict) or not rec.get("sha256"):
                continue
            rows[(rec["path"], rec["sha256"], rec["model"])] = rec["row"]
    return header, rows


def score_with_resume(model, inputs, out, *, jobs: int = 1, cache_dir=None, progress=None, chunk_size: int | None = None,
                      scheduler=None, **score_options):
    """Score ``inputs`` like :func:`forensics.api.score_frame`, writing ``out`` atomically, with a
    partial file for resuming. ``score_options`` go to :func:`forensics.api.rows_to_scores` (and into
    the reuse key). ``scheduler``: compute features on a dask.distributed cluster (see
    :mod:`forensics.distributed`). Returns ``(writer, info)``: the committed
    :class:`forensics.api.ScoreCsvWriter` (row counts for the summary) and ``info = {"n_reused",
    "n_computed"}``. The CSV is written in path order while scoring: memory does not grow with the
    number of files (beyond the rows reused from an interrupted run)."""
    import pandas as pd

    from forensics.api import ScoreCsvWriter, rows_to_scores
    from forensics.datasets import collect_inputs
    from forensics.errors import UsageError
    from forensics.extraction import iter_features

    out = Path(out)
    paths = collect_inputs([str(i) for i in inputs])
    if not paths:
        raise UsageError(f"no image files found in {', '.join(map(str, inputs))}")
    fingerprint = model_fingerprint(model)
    used = {k: v for k, v in score_options.items() if v}  # options that change the rows are part of the key
    if used:
        fingerprint += ":" + hashlib.sha256(json.dumps(used, sort_keys=True, default=str).encode()).hexdigest()[:12]
    part = partial_path(out)
    header, old = read_partial(part) if part.exists() else (None, {})
    reused: dict[int, tuple[str, dict]] = {}
    todo: list[int] = []
    if old:
        for i, p in enumerate(paths):
            sha = _file_sha256(p)
            row = old.get((p, sha, fingerprint)) if sha else None
            if row is not None:
                reused[i] = (sha, row)
            else:
                todo.append(i)
    else:
        todo = list(range(len(paths)))
    if not reused:
        header = None
    # Start a fresh partial file holding only the rows still valid (drops stale and torn lines).
    tmp = part.with_name(part.name + f".tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        if header is not None:
            fh.write(json.dumps(header) + "\n")
            for i, (sha, row) in reused.items():
                fh.write(json.dumps({"path": paths[i], "sha256": sha, "model": fingerprint, "row": row}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, part)

    total = len(paths)
    done = len(reused)
    if progress:
        progress("score", done, total)
    if chunk_size is None:
        chunk_size = 16 * max(1, jobs if jobs and jobs > 0 else (os.cpu_count() or 1))
    columns, dtypes = (header["columns"], header["dtypes"]) if header else (None, None)
    todo_paths = [paths[i] for i in todo]
    next_out = 0  # the CSV gets rows in path order: reused ones as soon as the fresh ones before them are in

    def emit(fresh: list[tuple[int, dict]], rows: list, upto: int) -> None:
        nonlocal next_out
        fresh_at = dict(fresh)
        records = []
        while next_out < upto:
            records.append(reused[next_out][1] if next_out in reused else fresh_at.pop(next_out))
            next_out += 1
        if records:
            frame = pd.DataFrame.from_records(records, columns=columns)
            for c, t in (dtypes or {}).items():
                if c in frame.columns:
                    try:
                        frame[c] = frame[c].astype(t)
                    except (TypeError, ValueError):
                        pass
            writer.write(frame, rows)

    with ScoreCsvWriter(out) as writer, open(part, "a", encoding="utf-8") as fh:
        buf = []
        rows_iter = iter_features(todo_paths, model.spec, jobs=jobs, cache_dir=cache_dir, scheduler=scheduler)
        for k, row in enumerate(rows_iter):
            buf.append((todo[k], row))
            if len(buf) >= chunk_size or k == len(todo) - 1:
                frame = rows_to_scores(model, [r for _, r in buf], **score_options)
                writer.attrs.update(frame.attrs)
                if columns is None:
                    columns = list(frame.columns)
                    dtypes = {c: str(t) for c, t in frame.dtypes.items()}
                    fh.write(json.dumps({"format": PARTIAL_FORMAT, "version": PARTIAL_VERSION, "forensics": __version__,
                                         "columns": columns, "dtypes": dtypes}) + "\n")
                lines, fresh = [], []
                for (i, r), rec in zip(buf, frame.to_dict(orient="records")):
                    rec = {c: _plain(rec.get(c)) for c in columns}
                    fresh.append((i, rec))
                    sha = r.diag.get("sha256") or None
                    lines.append(json.dumps({"path": paths[i], "sha256": sha, "model": fingerprint, "row": rec}))
                fh.write("\n".join(lines) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                emit(fresh, [r for _, r in buf], buf[-1][0] + 1)
                done += len(buf)
                buf = []
                if progress:
                    progress("score", done, total)
        emit([], [], total)  # reused rows after the last fresh one
        writer.commit()
    part.unlink(missing_ok=True)
    return writer, {"n_reused": len(reused), "n_computed": len(todo)}
