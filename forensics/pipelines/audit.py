"""The shortcut audit: can the label be predicted from provenance alone?

A data set where real photos are large JPEGs and fakes small PNGs lets any classifier score well
without looking at a single forensic trace, and the resulting detector fails in the wild. The audit
measures how well the ``diag`` columns (width, height, aspect ratio, container format, estimated JPEG
quality, file size) predict the label:

- each column alone: the AUC of the column's value as a score, folded to ``max(auc, 1 - auc)`` (a
  column that separates the classes in either direction is a shortcut);
- all together: the cross-validated AUC of a shallow decision tree on every column (stratified k-fold).

Columns (and ``all``) whose AUC exceeds the flag level (0.75) are flagged.
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
    cols, y = cols[ok], y[ok]
    columns = {c: round(column_auc(cols[c], y), 4) for c in cols.columns}
    counts = np.bincount(y, minlength=2)
    all_auc = combined_auc(cols.to_numpy(), y, n_splits=n_splits, random_state=random_state) if len(y) else math.nan
    flagged = [c for c, a in columns.items() if a > flag_auc]
    if np.isfinite(all_auc) and all_auc > flag_auc:
        flagged.append("all")
    result = {
        "columns": columns,
        "all": round(all_auc, 4) if np.isfinite(all_auc) else None,
        "flagged": flagged,
        "flag_auc": flag_auc,
        "n": int(len(y)),
        "n_real": int(counts[0]),
        "n_fake": int(counts[1]),
        "n_skipped": int((~ok).sum()),
        "cv_folds": int(min(n_splits, counts.min())),
        "model": "decision tree, depth 3, stratified k-fold",
    }
    if flagged:
        logger.warning("provenance shortcut: %s predict the label (AUC > %.2f)", ", ".join(flagged), flag_auc)
    return result


def audit_message(result: dict) -> str | None:
    """One-line warning text for flagged columns (``None`` when nothing is flagged)."""
    flagged = result.get("flagged") or []
    if not flagged:
        return None
    parts = [f"{c} (AUC {result['columns'][c]:.2f})" if c in result["columns"] else f"all together (CV AUC {result['all']:.2f})"
             for c in flagged]
    return (f"shortcut audit: provenance alone predicts the label: {', '.join(parts)}; the classifier may learn "
            f"image size or format instead of forensic traces (see 'forensics audit')")


def audit_data(data, *, jobs: int = 1, cache_dir=None, max_pixels=None, progress=None) -> dict:
    """Run :func:`shortcut_audit` on labelled DATA arguments (folders with real/ and fake/, manifests).

    Only the ``diag`` record of each image is read (through the batch runner and its cache); no feature
    block is computed.
    """
    from forensics.datasets import collect_labelled
    from forensics.errors import UsageError
    from forensics.extraction import FeatureSpec, iter_features
    from forensics.loading import DEFAULT_MAX_PIXELS

    items = collect_labelled([str(d) for d in data])
    if not items:
        raise UsageError(f"no image files found in {', '.join(map(str, data))}")
    if len({i.label for i in items}) < 2:
        raise UsageError(f"the audit needs both real and fake images ({len(items)} images of one class)")
    spec = FeatureSpec(blocks=[], settings={}, max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
    rows = list(iter_features([i.path for i in items], spec, jobs=jobs, cache_dir=cache_dir, progress=progress))
    result = shortcut_audit([r.diag for r in rows], [i.label for i in items])
    result["data"] = [str(d) for d in data]
    return result
