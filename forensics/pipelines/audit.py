"""The shortcut audit: can the label be predicted from provenance alone?

A data set where real photos are large JPEGs and fakes small PNGs lets any classifier score well
without looking at a single forensic trace, and the resulting detector fails in the wild. The audit
measures how well the ``diag`` columns (width, height, aspect ratio, container format, estimated JPEG
quality, file size) predict the label:

- each column alone: the AUC of the column's value as a score, folded to ``max(auc, 1 - auc)`` (a
  column that separates the classes in either direction is a shortcut);
- all together: the cross-validated AUC of a shallow decision tree on every column (stratified k-fold).

Columns (and ``all``) whose AUC exceeds the flag level (0.75) are flagged.

The framing audit (``forensics audit --framing``, needs the optional face detector) asks the same of
where the largest face sits in the picture and how it is turned: its box centre and size and its eye
line as fractions of the picture, the distance between the eyes, the roll of the eye line and how far
the nose tip sits off the eyes' midpoint (a head turn). A set whose fakes were cropped differently from
its reals lets a classifier that knows where things are (``layout``, ``hog``, ``faceparts``' geometry)
score without finding a splice: on faces-photoshop the largest face's framing alone reaches a CV AUC of
0.63 (the face's height alone 0.655). :func:`framing_strata` groups the images that the framing cannot tell apart, and
:func:`~forensics.pipelines.metrics.stratified_auc` then scores a model only on pairs framed alike.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.tree import DecisionTreeClassifier

logger = logging.getLogger(__name__)

#: AUC above which a provenance column (or all of them together) is flagged as a shortcut.
FLAG_AUC = 0.75
#: Numeric diag columns the audit looks at (``aspect`` is derived: width / height).
AUDIT_NUMERIC = ("width", "height", "aspect", "jpeg_quality", "file_size")
#: Framing AUC from which ``forensics audit --framing`` says, unflagged, that the framing is not chance.
NOTABLE_AUC = 0.6
#: Framing columns (see :func:`framing_record`), in order.
FRAMING_COLUMNS = ("face_found", "face_x", "face_y", "face_w", "face_h", "eyes_x", "eyes_y", "eye_distance", "roll", "turn")
#: Pictures smaller than this on either side are not searched for a face (``face_found = 0``).
FRAMING_MIN_SIDE = 32


def shortcut_columns(diag) -> "pd.DataFrame":  # noqa: F821
    """The audit's columns from diag records (a list of dicts or a frame with ``width``... or
    ``diag__width``... columns): width, height, aspect, jpeg_quality (-1 when not a JPEG), file_size,
    and one 0/1 column ``format=X`` per container format present. Rows without a width (unreadable
    files) are NaN throughout."""
    import pandas as pd

    frame = pd.DataFrame(diag) if not isinstance(diag, pd.DataFrame) else diag.copy()
    frame.columns = [c[len("diag__"):] if str(c).startswith("diag__") else c for c in frame.columns]
    w = pd.to_numeric(frame.get("width"), errors="coerce").astype(float)
    h = pd.to_numeric(frame.get("height"), errors="coerce").astype(float)
    readable = w.notna() & h.notna() & (h > 0)
    out = pd.DataFrame(index=frame.index)
    out["width"] = w
    out["height"] = h
    out["aspect"] = w / h.where(h > 0)
    q = pd.to_numeric(frame.get("jpeg_quality"), errors="coerce").astype(float)
    out["jpeg_quality"] = q.fillna(-1.0)
    out["file_size"] = pd.to_numeric(frame.get("file_size"), errors="coerce").astype(float)
    fmt = frame.get("format")
    if fmt is not None:
        for value in sorted({str(v) for v in fmt[readable] if v is not None and v == v}):
            out[f"format={value}"] = (fmt.astype(str) == value).astype(float)
    out.loc[~readable, :] = np.nan
    return out


def column_auc(values, y, *, fold: bool = True) -> float:
    """``max(auc, 1 - auc)`` of a column used as a score over its finite rows (0.5 for a constant
    column); with ``fold=False`` the AUC itself (below 0.5: the column is higher on class 0)."""
    v = np.asarray(values, dtype=float)
    y = np.asarray(y).astype(int)
    ok = np.isfinite(v)
    v, y = v[ok], y[ok]
    if len(np.unique(y)) < 2 or np.unique(v).size < 2:
        return 0.5
    auc = float(roc_auc_score(y, v))
    return max(auc, 1.0 - auc) if fold else auc


def combined_auc(X, y, *, n_splits: int = 5, random_state: int = 0) -> float:
    """Cross-validated AUC of a shallow decision tree on all the audit columns."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y).astype(int)
    counts = np.bincount(y, minlength=2)
    k = int(min(n_splits, counts.min()))
    if k < 2:
        return math.nan
    leaf = max(1, min(20, len(y) // 50))
    tree = DecisionTreeClassifier(max_depth=3, min_samples_leaf=leaf, random_state=random_state)
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=random_state)
    p = cross_val_predict(tree, np.nan_to_num(X, nan=-1.0), y, cv=cv, method="predict_proba")[:, 1]
    if np.unique(p).size < 2:
        return 0.5
    return float(roc_auc_score(y, p))


def _audit_table(cols, y, *, flag_auc: float, n_splits: int, random_state: int) -> dict:
    """Per-column AUC, the tree's CV AUC on all columns and the flags, for a frame of readable rows."""
    columns = {c: round(column_auc(cols[c], y), 4) for c in cols.columns}
    counts = np.bincount(y, minlength=2)
    all_auc = combined_auc(cols.to_numpy(), y, n_splits=n_splits, random_state=random_state) if len(y) else math.nan
    flagged = [c for c, a in columns.items() if a > flag_auc]
    if np.isfinite(all_auc) and all_auc > flag_auc:
        flagged.append("all")
    return {
        "columns": columns,
        "all": round(all_auc, 4) if np.isfinite(all_auc) else None,
        "flagged": flagged,
        "flag_auc": flag_auc,
        "n": int(len(y)),
        "n_real": int(counts[0]),
        "n_fake": int(counts[1]),
        "cv_folds": int(min(n_splits, counts.min())),
        "model": "decision tree, depth 3, stratified k-fold",
    }


def shortcut_audit(diag, labels, *, flag_auc: float = FLAG_AUC, n_splits: int = 5, random_state: int = 0) -> dict:
    """Audit provenance shortcuts. ``diag``: diag records per image; ``labels``: 0 real / 1 fake.

    Returns a JSON-ready dict: ``columns`` (per-column AUC), ``all`` (CV AUC of all columns together),
    ``flagged`` (columns, and ``all``, above ``flag_auc``), ``flag_auc``, ``n``, ``n_real``, ``n_fake``,
    ``n_skipped`` (unreadable images left out), ``cv_folds`` and ``model``.
    """
    cols = shortcut_columns(diag)
    y = np.asarray(labels).astype(int)
    if len(y) != len(cols):
        raise ValueError(f"diag has {len(cols)} rows but labels has {len(y)}")
    ok = cols["width"].notna().to_numpy()
    result = _audit_table(cols[ok], y[ok], flag_auc=flag_auc, n_splits=n_splits, random_state=random_state)
    result["n_skipped"] = int((~ok).sum())
    if result["flagged"]:
        logger.warning("provenance shortcut: %s predict the label (AUC > %.2f)", ", ".join(result["flagged"]), flag_auc)
    return result


def framing_record(rgb: np.ndarray, *, min_score: float | None = None, max_side: int | None = None) -> dict:
    """Where the largest face sits in an RGB picture, and how it is turned (:data:`FRAMING_COLUMNS`).

    ``face_x``, ``face_y``: the face box's centre, and ``face_w``, ``face_h``: its size, as fractions of
    the picture's width and height; ``eyes_x``, ``eyes_y``: the eyes' midpoint, likewise;
    ``eye_distance``: the distance between the eyes over the picture's width; ``roll``: the angle of the
    eye line in degrees (positive: the face's left eye, on the picture's right, lower); ``turn``: how far
    the nose tip sits along the eye line from the eyes' midpoint, in eye distances (a head turn).
    No face, or a picture under :data:`FRAMING_MIN_SIDE` pixels a side: ``face_found = 0`` and NaN.
    ``min_score`` and ``max_side`` default to those of ``--face-crop`` (see :mod:`forensics.faces`).
    """
    from forensics.faces import DETECT_MAX_SIDE, MIN_SCORE, detect_faces_landmarks

    rgb = np.asarray(rgb)
    out = dict.fromkeys(FRAMING_COLUMNS, math.nan)
    out["face_found"] = 0.0
    h, w = rgb.shape[:2]
    if min(h, w) < FRAMING_MIN_SIDE:
        return out
    faces = detect_faces_landmarks(rgb, min_score=MIN_SCORE if min_score is None else min_score,
                                   max_side=DETECT_MAX_SIDE if max_side is None else max_side)
    if not faces:
        return out
    x, y, bw, bh, _score, points = faces[0]
    eye_r, eye_l, nose = (np.asarray(p, dtype=np.float64) for p in points[:3])
    mid, line = (eye_r + eye_l) / 2.0, eye_l - eye_r
    iod = float(np.hypot(*line))
    out.update(
        face_found=1.0, face_x=(x + bw / 2.0) / w, face_y=(y + bh / 2.0) / h, face_w=bw / w, face_h=bh / h,
        eyes_x=float(mid[0]) / w, eyes_y=float(mid[1]) / h, eye_distance=iod / w,
        roll=math.degrees(math.atan2(line[1], line[0])),
        turn=float((nose - mid) @ line) / iod**2 if iod > 0 else math.nan,
    )
    return out


def _framing_frame(records) -> "pd.DataFrame":  # noqa: F821
    import pandas as pd

    frame = records if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    if frame.empty and not len(frame.columns):
        frame = pd.DataFrame(columns=list(FRAMING_COLUMNS))
    missing = [c for c in FRAMING_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"framing records lack the columns {', '.join(missing)}")
    return frame[list(FRAMING_COLUMNS)].astype(float)


def framing_audit(records, labels, *, flag_auc: float = FLAG_AUC, n_splits: int = 5, random_state: int = 0) -> dict:
    """Audit the framing shortcut. ``records``: :func:`framing_record` dicts per image (``None`` for an
    unreadable image, left out); ``labels``: 0 real / 1 fake.

    Returns what :func:`shortcut_audit` returns, for :data:`FRAMING_COLUMNS`, plus ``n_faces_real`` and
    ``n_faces_fake`` (images where a face was found).
    """
    records = list(records)
    y = np.asarray(labels).astype(int)
    if len(y) != len(records):
        raise ValueError(f"{len(records)} framing records but {len(y)} labels")
    ok = np.array([r is not None for r in records], dtype=bool)
    cols = _framing_frame([r for r in records if r is not None])
    y = y[ok]
    result = _audit_table(cols, y, flag_auc=flag_auc, n_splits=n_splits, random_state=random_state)
    found = cols["face_found"].to_numpy() == 1.0
    result.update(n_skipped=int((~ok).sum()), n_faces_real=int((found & (y == 0)).sum()), n_faces_fake=int((found & (y == 1)).sum()))
    if result["flagged"]:
        logger.warning("framing shortcut: %s predict the label (AUC > %.2f)", ", ".join(result["flagged"]), flag_auc)
    return result


def framing_strata(records, labels, *, max_depth: int = 3, min_leaf: int | None = None, random_state: int = 0) -> np.ndarray:
    """A group number per image such that the framing tells the images of one group apart no better
    than chance on the training data: the leaves of a decision tree (depth ``max_depth``, the audit's)
    fitted to predict the label from :data:`FRAMING_COLUMNS` on all the images.

    Score a model with :func:`~forensics.pipelines.metrics.stratified_auc` over these groups to count
    only pairs of a real and a fake image framed alike. The tree is fitted in-sample on purpose: the
    groups describe the data set, they are not a model to be validated.
    """
    cols = _framing_frame(records)
    y = np.asarray(labels).astype(int)
    if len(y) != len(cols):
        raise ValueError(f"{len(cols)} framing records but {len(y)} labels")
    leaf = max(1, min(20, len(y) // 50)) if min_leaf is None else int(min_leaf)
    tree = DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=leaf, random_state=random_state)
    X = np.nan_to_num(cols.to_numpy(), nan=-1.0)
    return tree.fit(X, y).apply(X).astype(np.int64)


def strongest(result: dict) -> tuple[str, float]:
    """The audit's column (or ``all``) with the highest AUC, and that AUC (0.5 when there is none)."""
    aucs = dict(result.get("columns") or {})
    if result.get("all") is not None:
        aucs["all"] = result["all"]
    if not aucs:
        return "all", 0.5
    name = max(aucs, key=aucs.get)
    return name, float(aucs[name])


def _flagged_text(result: dict) -> str | None:
    """``column (AUC 0.xx), ..., all together (CV AUC 0.xx)`` for an audit's flags, ``None`` without any."""
    flagged = result.get("flagged") or []
    if not flagged:
        return None
    return ", ".join(f"{c} (AUC {result['columns'][c]:.2f})" if c in result["columns"] else f"all together (CV AUC {result['all']:.2f})"
                     for c in flagged)


def audit_message(result: dict) -> str | None:
    """One-line warning text for flagged columns (``None`` when nothing is flagged)."""
    parts = _flagged_text(result)
    if parts is None:
        return None
    return (f"shortcut audit: provenance alone predicts the label: {parts}; the classifier may learn "
            f"image size or format instead of forensic traces (see 'forensics audit')")


def framing_message(framing: dict) -> str | None:
    """One-line warning text for flagged framing columns (``None`` when nothing is flagged)."""
    parts = _flagged_text(framing)
    if parts is None:
        return None
    return (f"framing audit: where the face sits predicts the label: {parts}; a classifier may learn how the "
            f"pictures were cropped instead of forensic traces, most easily one that knows positions (layout, hog, faceparts)")


def _framing_of_path(path, max_pixels):
    """:func:`framing_record` of an image file, ``None`` when it cannot be read."""
    from forensics.loading import load_image

    try:
        rgb = load_image(path, max_pixels=max_pixels).rgb
    except Exception as exc:  # noqa: BLE001 - an unreadable image is left out, not fatal
        logger.debug("framing: cannot read %s: %s", path, exc)
        return None
    return framing_record(rgb)


def framing_records(paths, *, jobs: int = 1, max_pixels=None, progress=None) -> list:
    """:func:`framing_record` of every image file (``None`` for unreadable ones), in order; ``jobs``
    processes; ``progress(done, total)`` after each image."""
    from joblib import Parallel, delayed

    from forensics.faces import check_available
    from forensics.loading import DEFAULT_MAX_PIXELS

    check_available()
    paths = [str(p) for p in paths]
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    out = []
    if progress:
        progress(0, len(paths))
    run = Parallel(n_jobs=max(1, int(jobs)), return_as="generator", batch_size=16 if jobs > 1 else 1)
    for record in run(delayed(_framing_of_path)(p, limit) for p in paths):
        out.append(record)
        if progress:
            progress(len(out), len(paths))
    return out


def audit_data(data, *, jobs: int = 1, cache_dir=None, max_pixels=None, progress=None, framing: bool = False) -> dict:
    """Run :func:`shortcut_audit` on labelled DATA arguments (folders with real/ and fake/, manifests).

    Only the ``diag`` record of each image is read (through the batch runner and its cache); no feature
    block is computed. With ``framing``, also :func:`framing_audit` (needs the optional face detector,
    checked before any image is read), under the result's ``framing`` key; ``progress(stage, done,
    total)`` then sees both stages.
    """
    from forensics.datasets import collect_labelled
    from forensics.errors import UsageError
    from forensics.extraction import FeatureSpec, iter_features
    from forensics.loading import DEFAULT_MAX_PIXELS

    if framing:
        from forensics.faces import faces_available, INSTALL_HINT

        if not faces_available():
            raise UsageError(f"the framing audit needs the optional face detector yuface, which is not installed: {INSTALL_HINT}")
    items = collect_labelled([str(d) for d in data])
    if not items:
        raise UsageError(f"no image files found in {', '.join(map(str, data))}")
    if len({i.label for i in items}) < 2:
        raise UsageError(f"the audit needs both real and fake images ({len(items)} images of one class)")
    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    spec = FeatureSpec(blocks=[], settings={}, max_pixels=limit)
    stage = (lambda name: (lambda d, t: progress(name, d, t))) if progress else (lambda name: None)
    rows = list(iter_features([i.path for i in items], spec, jobs=jobs, cache_dir=cache_dir, progress=stage("reading images")))
    labels = [i.label for i in items]
    result = shortcut_audit([r.diag for r in rows], labels)
    if framing:
        records = framing_records([i.path for i in items], jobs=jobs, max_pixels=limit, progress=stage("finding faces"))
        result["framing"] = framing_audit(records, labels)
    result["data"] = [str(d) for d in data]
    return result
