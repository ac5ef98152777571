"""Detection metrics computed from scores: AUC with its confidence interval, AP, balanced accuracy,
EER, per-class accuracy, and threshold selection on out-of-fold scores."""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit, logit
from scipy.stats import norm, rankdata
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

#: Coverage of the AUC confidence interval in :func:`detection_metrics`.
AUC_CI_LEVEL = 0.95


def auc_confidence_interval(y_true, scores, level: float = AUC_CI_LEVEL) -> tuple[float, float]:
    """Confidence interval of the ROC AUC for a finite number of scored images (fake = positive).

    DeLong's nonparametric variance (DeLong, DeLong & Clarke-Pearson 1988), computed from midranks
    (Sun & Xu 2014), with the normal interval taken on the logit scale (Pepe 2003, sec. 5.2.2) so that
    it stays inside (0, 1) and is not symmetric near 1. It counts the uncertainty from having only so
    many real and fake images, not the variation from retraining: for out-of-fold scores of
    cross-validation it is an approximation. When the scores separate the classes perfectly (AUC 0 or
    1) the variance is 0 and so is the width; with fewer than two images of a class it is NaN.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    ok = np.isfinite(s)
    y, s = y[ok], s[ok]
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    pos, neg = s[y == 1], s[y == 0]
    m, n = len(pos), len(neg)
    if m < 2 or n < 2:
        return math.nan, math.nan
    ranks = rankdata(np.concatenate([pos, neg]))
    v10 = (ranks[:m] - rankdata(pos)) / n  # per fake: share of real images scored below it (ties count half)
    v01 = 1.0 - (ranks[m:] - rankdata(neg)) / m  # per real image: share of fakes scored above it
    auc = float(v10.mean())
    se = math.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    if se == 0.0 or auc <= 0.0 or auc >= 1.0:
        return auc, auc
    half = norm.ppf(0.5 + level / 2.0) * se / (auc * (1.0 - auc))
    centre = logit(auc)
    return float(expit(centre - half)), float(expit(centre + half))


def auc_interval_text(metrics: dict) -> str | None:
    """``"low-high"`` of a metrics dict's AUC interval (3 decimals); ``None`` when it is missing, null
    or NaN (cards written before intervals were recorded, one-class data)."""
    low, high = metrics.get("auc_ci_low"), metrics.get("auc_ci_high")
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in (low, high)):
        return None
    return f"{low:.3f}-{high:.3f}"


def stratified_auc(y_true, scores, groups) -> tuple[float, int]:
    """The ROC AUC over pairs of a fake and a real image of the same group, and the number of such pairs.

    Each group with both classes contributes its own AUC, weighted by its number of (fake, real) pairs
    (ties count half, as in the AUC); groups with one class only contribute nothing. With one group
    this is the AUC. With the groups of :func:`~forensics.pipelines.audit.framing_strata` it scores a
    model on pairs of pictures framed alike, so that what the framing alone gives away does not count.
    NaN (and 0 pairs) when no group holds both classes. Rows with a non-finite score are left out.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    g = np.asarray(groups)
    if not len(y) == len(s) == len(g):
        raise ValueError(f"y_true, scores and groups differ in length: {len(y)}, {len(s)}, {len(g)}")
    ok = np.isfinite(s)
    y, s, g = y[ok], s[ok], g[ok]
    total, pairs = 0.0, 0
    for value in np.unique(g):
        m = g == value
        n_fake, n_real = int((y[m] == 1).sum()), int((y[m] == 0).sum())
        if n_fake and n_real:
            total += roc_auc_score(y[m], s[m]) * n_fake * n_real
            pairs += n_fake * n_real
    return (total / pairs if pairs else math.nan), pairs


def equal_error_rate(y_true, scores) -> float:
    """The error rate where the false-positive rate equals the false-negative rate (interpolated)."""
    y_true = np.asarray(y_true)
    if len(np.unique(y_true)) < 2:
        return math.nan
    fpr, tpr, _ = roc_curve(y_true, scores)
    fnr = 1.0 - tpr
    diff = fpr - fnr
    i = int(np.argmax(diff >= 0))  # first point where fpr >= fnr
    if i == 0:
        return float(fpr[0])
    # linear interpolation between points i-1 and i
    d0, d1 = diff[i - 1], diff[i]
    t = d0 / (d0 - d1) if d1 != d0 else 0.0
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def tpr_at_fpr(y_true, scores, max_fpr: float) -> float:
    """Share of fakes detected at the lowest threshold whose false-positive rate on real images is at
    most ``max_fpr`` (no interpolation: an operating point one could actually set)."""
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    if len(np.unique(y)) < 2:
        return math.nan
    fpr, tpr, _ = roc_curve(y, s)
    ok = fpr <= max_fpr + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def brier_score(y_true, scores) -> float:
    """Mean squared difference between the fake probability and the label (0 is perfect)."""
    y = np.asarray(y_true).astype(float)
    s = np.asarray(scores, dtype=float)
    return float(np.mean((s - y) ** 2)) if len(y) else math.nan


def detection_metrics(y_true, scores, threshold: float = 0.5) -> dict:
    """AUC with its 95 % confidence interval (:func:`auc_confidence_interval`), average precision
    (fake = positive), balanced accuracy, accuracy on real and on fake at ``threshold`` (score >=
    threshold means fake), EER, detection rate at 1 % and 5 % false positives, Brier score, and counts."""
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    ok = np.isfinite(s)
    y, s = y[ok], s[ok]
    pred = (s >= threshold).astype(int)
    real, fake = y == 0, y == 1
    acc_real = float((pred[real] == 0).mean()) if real.any() else math.nan
    acc_fake = float((pred[fake] == 1).mean()) if fake.any() else math.nan
    both = real.any() and fake.any()
    ci_low, ci_high = auc_confidence_interval(y, s)
    return {
        "auc": float(roc_auc_score(y, s)) if both else math.nan,
        "auc_ci_low": ci_low,
        "auc_ci_high": ci_high,
        "ap": float(average_precision_score(y, s)) if both else math.nan,
        "balanced_accuracy": float(np.nanmean([acc_real, acc_fake])) if both else math.nan,
        "acc_real": acc_real,
        "acc_fake": acc_fake,
        "eer": equal_error_rate(y, s) if both else math.nan,
        "tpr_at_fpr_1": tpr_at_fpr(y, s, 0.01) if both else math.nan,
        "tpr_at_fpr_5": tpr_at_fpr(y, s, 0.05) if both else math.nan,
        "brier": brier_score(y, s) if len(y) else math.nan,
        "threshold": float(threshold),
        "n": int(len(y)),
        "n_real": int(real.sum()),
        "n_fake": int(fake.sum()),
    }


def choose_threshold(y_true, scores, *, max_fpr: float | None = None) -> float:
    """Decision threshold on scores (``score >= t`` means fake).

    Without ``max_fpr``: the threshold with the best balanced accuracy (midpoint between adjacent
    scores, so it generalises rather than sitting on a training score). With ``max_fpr``: the lowest
    threshold whose false-positive rate on real images is at most ``max_fpr``.
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, dtype=float)
    ok = np.isfinite(s)
    y, s = y[ok], s[ok]
    if len(np.unique(y)) < 2:
        return 0.5
    if max_fpr is not None:
        if not 0.0 <= max_fpr < 1.0:
            raise ValueError(f"max_fpr must be in [0, 1), got {max_fpr}")
        real = np.sort(s[y == 0])[::-1]
        k = int(math.floor(max_fpr * len(real)))  # number of real images allowed above threshold
        if k >= len(real):
            return float(real[-1])
        # threshold strictly above the (k+1)-th highest real score
        return float(np.nextafter(real[k], np.inf))
    order = np.argsort(s)
    s_sorted, y_sorted = s[order], y[order]
    n_real, n_fake = (y == 0).sum(), (y == 1).sum()
    # Threshold between position i-1 and i: everything from i on is called fake.
    real_below = np.concatenate([[0], np.cumsum(y_sorted == 0)])
    fake_below = np.concatenate([[0], np.cumsum(y_sorted == 1)])
    bal = 0.5 * (real_below / n_real + (n_fake - fake_below) / n_fake)
    # only split between distinct scores
    valid = np.ones(len(bal), dtype=bool)
    valid[1:-1] = s_sorted[1:] != s_sorted[:-1]
    bal = np.where(valid, bal, -1)
    i = int(np.argmax(bal))
    if i == 0:
        return float(s_sorted[0])
    if i == len(s_sorted):
        return float(np.nextafter(s_sorted[-1], np.inf))
    return float(0.5 * (s_sorted[i - 1] + s_sorted[i]))
