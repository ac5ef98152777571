"""Figures of the report, drawn with matplotlib's Agg backend and returned as ``data:`` URIs (PNG),
so that the HTML file needs nothing from outside.

Every function takes plain arrays and returns a URI string; none touches files or global state
beyond matplotlib's figure it closes.
"""

from __future__ import annotations

import base64
import io

import numpy as np

#: Colours per class (colour-blind safe: blue / orange) and for secondary series.
REAL_C, FAKE_C, OTHER_C = "#1f77b4", "#ff7f0e", "#7f7f7f"
DPI = 90


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def fig_to_uri(fig) -> str:
    """PNG ``data:`` URI of a figure (which is closed)."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _finite(y, s):
    y = np.asarray(y).astype(int)
    s = np.asarray(s, dtype=float)
    ok = np.isfinite(s)
    return y[ok], s[ok]


def roc_pr(series: list[tuple[str, np.ndarray, np.ndarray]]) -> str:
    """ROC and precision-recall curves (fake = positive), one line per ``(label, y, scores)``."""
    from sklearn.metrics import auc as _auc
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    styles = ["-", "--", ":"]
    for i, (label, y, s) in enumerate(series):
        y, s = _finite(y, s)
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, s)
        ax1.plot(fpr, tpr, styles[i % 3], lw=2, label=f"{label} (AUC {_auc(fpr, tpr):.3f})")
        prec, rec, _ = precision_recall_curve(y, s)
        ax2.plot(rec, prec, styles[i % 3], lw=2, label=f"{label} (AP {average_precision_score(y, s):.3f})")
        base = y.mean()
        ax2.axhline(base, color=OTHER_C, lw=0.8, ls=":")
    ax1.plot([0, 1], [0, 1], color=OTHER_C, lw=0.8, ls=":")
    ax1.set(xlabel="false-positive rate (real called fake)", ylabel="true-positive rate (fake detected)", title="ROC",
            xlim=(0, 1), ylim=(0, 1.01))
    ax2.set(xlabel="recall (fake detected)", ylabel="precision", title="precision-recall", xlim=(0, 1), ylim=(0, 1.01))
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right" if ax is ax1 else "lower left", fontsize=8)
    return fig_to_uri(fig)


def score_histograms(series: list[tuple[str, np.ndarray, np.ndarray]], threshold: float) -> str:
    """Histograms of ``prob_fake`` per class, one panel per ``(label, y, scores)``, threshold marked."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(series), figsize=(5 * len(series), 3.6), squeeze=False)
    bins = np.linspace(0, 1, 41)
    for ax, (label, y, s) in zip(axes[0], series):
        y, s = _finite(y, s)
        ax.hist(s[y == 0], bins=bins, alpha=0.6, color=REAL_C, label=f"real ({(y == 0).sum()})")
        ax.hist(s[y == 1], bins=bins, alpha=0.6, color=FAKE_C, label=f"fake ({(y == 1).sum()})")
        ax.axvline(threshold, color="k", lw=1, ls="--", label=f"threshold {threshold:.3f}")
        ax.set(xlabel="prob_fake", ylabel="images", title=label, xlim=(0, 1))
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return fig_to_uri(fig)


def reliability(series: list[tuple[str, np.ndarray, np.ndarray]], n_bins: int = 10) -> str:
    """Reliability diagram: observed share of fakes per bin of ``prob_fake`` (equal-width bins), with
    the Brier score in the legend, above a histogram of the scores."""
    plt = _plt()
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(5.6, 5.6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    edges = np.linspace(0, 1, n_bins + 1)
    for i, (label, y, s) in enumerate(series):
        y, s = _finite(y, s)
        if not len(y):
            continue
        idx = np.clip(np.digitize(s, edges[1:-1]), 0, n_bins - 1)
        xs, ys = [], []
        for b in range(n_bins):
            m = idx == b
            if m.sum():
                xs.append(s[m].mean())
                ys.append(y[m].mean())
        brier = float(np.mean((s - y) ** 2))
        ax.plot(xs, ys, "o-" if i == 0 else "s--", lw=2, label=f"{label} (Brier {brier:.4f})")
        axh.hist(s, bins=edges, alpha=0.5, label=label)
    ax.plot([0, 1], [0, 1], color=OTHER_C, lw=0.8, ls=":", label="perfect calibration")
    ax.set(ylabel="observed share of fakes", title="reliability", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    axh.set(xlabel="prob_fake", ylabel="images")
    axh.grid(alpha=0.3)
    return fig_to_uri(fig)


def confusion(series: list[tuple[str, np.ndarray, np.ndarray]], threshold: float) -> str:
    """Confusion matrices at ``threshold`` (rows: truth, columns: prediction) with counts and row
    shares, one panel per ``(label, y, scores)``."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(series), figsize=(4.4 * len(series), 3.8), squeeze=False)
    for ax, (label, y, s) in zip(axes[0], series):
        y, s = _finite(y, s)
        pred = (s >= threshold).astype(int)
        cm = np.array([[((y == t) & (pred == p)).sum() for p in (0, 1)] for t in (0, 1)])
        share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for t in (0, 1):
            for p in (0, 1):
                ax.text(p, t, f"{cm[t, p]}\n{share[t, p]:.1%}", ha="center", va="center",
                        color="white" if share[t, p] > 0.6 else "black", fontsize=11)
        ax.set_xticks([0, 1], ["real", "fake"])
        ax.set_yticks([0, 1], ["real", "fake"])
        ax.set(xlabel="predicted", ylabel="true", title=f"{label}\nthreshold {threshold:.3f}")
    fig.tight_layout()
    return fig_to_uri(fig)


def bars(panels: list[tuple[str, list[str], np.ndarray]], *, top: int = 20, xlabel: str = "") -> str:
    """Horizontal bar charts side by side, one per ``(title, names, values)``; the ``top`` largest."""
    plt = _plt()
    n = max(min(top, max((len(p[1]) for p in panels), default=1)), 1)
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 0.28 * n + 1.4), squeeze=False)
    for ax, (title, names, values) in zip(axes[0], panels):
        values = np.asarray(values, dtype=float)
        order = np.argsort(-np.nan_to_num(values, nan=-np.inf))[:top][::-1]
        ax.barh(range(len(order)), values[order], color=FAKE_C)
        ax.set_yticks(range(len(order)), [names[i] for i in order], fontsize=8)
        ax.set(title=title, xlabel=xlabel)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig_to_uri(fig)


def ablation(blocks: list[str], alone: list[float], without: list[float], all_auc: float) -> str:
    """CV AUC of each block alone and of all blocks but it, with all blocks as reference."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.55 * len(blocks) + 1.5))
    yy = np.arange(len(blocks))
    ax.barh(yy - 0.2, alone, height=0.38, color=REAL_C, label="block alone")
    ax.barh(yy + 0.2, without, height=0.38, color=FAKE_C, label="all but this block")
    ax.axvline(all_auc, color="k", ls="--", lw=1, label=f"all blocks ({all_auc:.3f})")
    ax.set_yticks(yy, blocks)
    lo = np.nanmin(np.r_[alone, without, all_auc, 0.5])
    ax.set(xlabel="CV AUC", xlim=(max(0.0, lo - 0.05), 1.0), title="block ablation")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18 - 0.3 / len(blocks)), ncol=3, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return fig_to_uri(fig)


def mean_spectrum(radius: np.ndarray, real: np.ndarray, fake: np.ndarray, source: str) -> str:
    """Mean luminance log-power profile (shape) of real and fake images against radius, and their
    difference."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(radius, real, "-", color=REAL_C, lw=2, label="real")
    ax1.plot(radius, fake, "-", color=FAKE_C, lw=2, label="fake")
    ax1.set(xlabel="radius (1 = Nyquist)", ylabel="log power (minus its mean)", title=f"mean spectrum ({source})")
    ax1.legend(fontsize=8)
    ax2.plot(radius, np.asarray(fake) - np.asarray(real), "-", color="k", lw=2)
    ax2.axhline(0, color=OTHER_C, lw=0.8, ls=":")
    ax2.set(xlabel="radius (1 = Nyquist)", ylabel="fake - real", title="difference")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    return fig_to_uri(fig)


def thumbnail_uri(rgb: np.ndarray, size: int = 128, quality: int = 80) -> str:
    """Small JPEG ``data:`` URI of an RGB array (longest side ``size``)."""
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(rgb))
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
