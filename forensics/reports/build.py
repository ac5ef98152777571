"""Assemble the report of a model (and, optionally, of its scores on labelled data) into one HTML file.

Without data, the report shows what the model card holds: the card itself, cross-validated metrics,
curves, histograms, reliability and confusion matrix from the out-of-fold scores stored at training
time, XGBoost gain (or logistic-regression weights), the mean spectrum per class from the stored class
means and the training set's shortcut audit. With data (folders with real/ and fake/ or CSV manifests)
it adds metrics on that data (and per group of images, with ``by``), mean |SHAP| and block
permutation importance, the block ablation, and thumbnails of the most confident and of the
misclassified images.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from forensics.pipelines.metrics import auc_interval_text
from forensics.reports import html as H
from forensics.reports import importance as imp
from forensics.reports import plots

logger = logging.getLogger(__name__)

#: Section ids of the report, in order (each is a ``<section id=...>``).
REPORT_SECTIONS = ("card", "metrics", "curves", "histograms", "calibration", "confusion", "importance",
                   "ablation", "spectrum", "examples", "audit")

_METRIC_COLUMNS = (("images", "n"), ("AUC", "auc"), ("AUC 95 % CI", "auc_ci"), ("AP", "ap"), ("bal. acc", "balanced_accuracy"),
                   ("acc real", "acc_real"), ("acc fake", "acc_fake"), ("EER", "eer"),
                   ("TPR@1%FPR", "tpr_at_fpr_1"), ("TPR@5%FPR", "tpr_at_fpr_5"), ("Brier", "brier"))


@dataclass
class _Scored:
    """Labelled data scored by the model."""

    paths: list[str]
    y: np.ndarray
    X: np.ndarray
    probs: np.ndarray
    diag: list[dict]
    errors: Counter = field(default_factory=Counter)
    groups: list[str] | None = None  # each image's group (``--by``), or None

    @property
    def ok(self) -> np.ndarray:
        return np.isfinite(self.probs)


def _score_data(model, data, *, jobs, cache_dir, progress, by=None) -> _Scored:
    from forensics.datasets import collect_labelled
    from forensics.errors import UsageError
    from forensics.extraction import iter_features, summarize_errors
    from forensics.pipelines.evaluate import image_groups

    items = collect_labelled([str(d) for d in data])
    if not items:
        raise UsageError(f"no image files found in {', '.join(map(str, data))}")
    groups = image_groups([i.path for i in items], by) if by is not None else None  # a bad --by fails here, before any work
    rows = list(iter_features([i.path for i in items], model.spec, jobs=jobs, cache_dir=cache_dir,
                              progress=(lambda d, t: progress("extract", d, t)) if progress else None))
    X = np.vstack([r.features for r in rows])
    return _Scored([r.path for r in rows], np.array([i.label for i in items]), X, model.predict_proba(X),
                   [r.diag for r in rows], summarize_errors(r.error for r in rows), groups)


def _metrics_rows(label: str, m: dict | None) -> list:
    if not m:
        return [label] + ["-"] * len(_METRIC_COLUMNS)
    return [label] + [(auc_interval_text(m) or "-") if k == "auc_ci" else m.get(k) for _, k in _METRIC_COLUMNS]


def build_report(
    model,
    data=None,
    *,
    out: str | os.PathLike,
    model_name: str | None = None,
    jobs: int = 1,
    cache_dir=None,
    ablation: bool = True,
    n_examples: int = 8,
    progress: Callable[[str, int, int], None] | None = None,
    by: str | None = None,
) -> dict:
    """Write the HTML report of ``model`` (a :class:`~forensics.model.ForensicModel`) to ``out``.

    ``data``: optional labelled DATA arguments; their features come through the batch runner (and its
    cache, ``cache_dir``). ``ablation``: retrain per block on the data's features (a few seconds to a
    minute). ``by``: also the metrics on the data per group of images (``"folder"`` or a regular
    expression on the paths, as ``forensics evaluate --by``; needs ``data``). Returns a summary: ``out``,
    ``n_images``, ``n_failed``, ``errors``, ``sections``.
    """
    from forensics.pipelines.metrics import detection_metrics
    from forensics.reports.io import write_text_atomic

    card = model.card or {}
    names = model.feature_names
    t = float(model.threshold)
    if by is not None and not data:
        from forensics.errors import UsageError

        raise UsageError("--by groups the images of DATA: give labelled DATA to 'forensics report'")
    scored = _score_data(model, data, jobs=jobs, cache_dir=cache_dir, progress=progress, by=by) if data else None
    oof = card.get("oof") or {}
    cv_series = None
    if oof.get("scores"):
        cv_series = ("cross-validation (out-of-fold)", np.asarray(oof["labels"], int), np.asarray(oof["scores"], float))
    data_label = "data: " + ", ".join(Path(str(d)).name for d in data) if data else None
    data_series = (data_label, scored.y, scored.probs) if scored is not None else None
    series = [s for s in (cv_series, data_series) if s is not None]
    held = detection_metrics(scored.y[scored.ok], scored.probs[scored.ok], t) if scored is not None else None

    sections = [
        H.Section("card", "Model card", _card_section(card, model, model_name)),
        H.Section("metrics", "Metrics", _metrics_section(card, held, data_label) + _groups_html(scored, t)),
        H.Section("curves", "ROC and precision-recall", _curves_section(series)),
        H.Section("histograms", "Score distributions", _hist_section(series, t)),
        H.Section("calibration", "Calibration", _calibration_section(series, card)),
        H.Section("confusion", "Confusion matrix", _confusion_section(series, t)),
        H.Section("importance", "Feature importance", _importance_section(model, names, scored)),
        H.Section("ablation", "Block ablation", _ablation_section(model, names, scored, ablation, progress)),
        H.Section("spectrum", "Mean spectrum", _spectrum_section(names, card, scored)),
        H.Section("examples", "Examples", _examples_section(model, scored, n_examples)),
        H.Section("audit", "Shortcut audit", _audit_section(card, scored)),
    ]
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    subtitle = (f"model {model_name or ''} ({card.get('classifier', '?')}, {card.get('n_features', len(names))} features, "
                f"trained {card.get('created', '?')})" + (f"; {data_label}" if data_label else "; model card only")
                + f"; report written {created}")
    write_text_atomic(out, H.page("forensics model report", subtitle, sections))
    return {
        "out": str(out),
        "n_images": len(scored.paths) if scored is not None else 0,
        "n_failed": int((~scored.ok).sum()) if scored is not None else 0,
        "errors": scored.errors if scored is not None else Counter(),
        "sections": [s.id for s in sections],
    }


# --------------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------------


def _card_section(card: dict, model, model_name) -> str:
    cal = card.get("calibration") or {}
    td = card.get("training_data") or {}
    items = [
        ("model file", model_name or "-"),
        ("forensics version", card.get("forensics_version")),
        ("created", card.get("created")),
        ("classifier", card.get("classifier")),
        ("blocks", ", ".join(card.get("blocks", model.spec.blocks))),
        ("features", card.get("n_features")),
        ("threshold", float(model.threshold)),
        ("threshold rule", card.get("threshold_rule")),
        ("calibration", f"{cal.get('method', 'none')} (fitted on {cal.get('n', '?')} out-of-fold scores)" if cal else "none recorded"),
        ("training images", f"{td.get('n_real', '?')} real, {td.get('n_fake', '?')} fake, {td.get('n_failed', 0)} unreadable"),
        ("cross-validation folds", td.get("cv_folds")),
        ("library versions", ", ".join(f"{k} {v}" for k, v in (card.get("versions") or {}).items())),
    ]
    if td.get("holdout"):
        h = td["holdout"]
        items.append(("held-out test split", f"{h.get('n_real', '?')} real, {h.get('n_fake', '?')} fake "
                                             f"({h.get('fraction', 0):.0%}, seed {h.get('seed', '?')})"))
    if td.get("augment"):
        a = td["augment"]
        items.append(("augmented with", f"{a.get('n_rows', '?')} perturbed copies ({', '.join(a.get('perturbations', []))}); "
                                         "the training counts and the CV metrics include them"))
    if card.get("face_crop"):
        items.append(("face crop", "yes"))
    body = H.kv_table(items)
    if card.get("tuning"):
        body += "<h3>Hyper-parameter tuning</h3>" + _tuning_html(card["tuning"])
    sources = td.get("data") or {}
    if sources:
        body += "<h3>Training data</h3>" + H.table(["source", "real", "fake", "failed"],
                                                   [[s, d.get("real"), d.get("fake"), d.get("failed")] for s, d in sources.items()])
    settings = card.get("block_settings") or {}
    if settings:
        body += "<h3>Block settings</h3>" + H.table(["block", "settings"],
                                                    [[b, json.dumps(s, sort_keys=True)] for b, s in settings.items()], numeric_from=9)
    return body


def _evaluation_label(training: dict) -> str:
    """What the card's metrics were measured on: k-fold out-of-fold scores, or a holdout (train-table)."""
    ev = training.get("evaluation") or {}
    if training.get("cv_folds") is None and ev.get("method") == "holdout":
        return f"holdout ({ev.get('n_holdout', '?')} images, {100 * float(ev.get('fraction') or 0):g} %, not trained on)"
    return f"cross-validation ({training.get('cv_folds', '?')}-fold, out-of-fold)"


def _tuning_html(tuning: dict) -> str:
    from forensics.pipelines.tuning import describe, format_params

    body = H.note(describe(tuning))
    folds = tuning.get("folds") or []
    rows = [[f"outer fold {i + 1}", format_params(f.get("params") or {}), f.get("inner_auc")] for i, f in enumerate(folds)]
    rows.append(["final model (all training images)", format_params(tuning.get("best_params") or {}), tuning.get("best_inner_auc")])
    body += H.table(["search", "chosen parameters", "inner CV AUC"], rows)
    space = tuning.get("search_space") or {}
    if space:
        body += H.table(["parameter", "values tried"], [[k, ", ".join(map(str, v))] for k, v in space.items()], numeric_from=9)
    return body


def _metrics_section(card: dict, held: dict | None, data_label: str | None) -> str:
    header = [""] + [h for h, _ in _METRIC_COLUMNS]
    td = card.get("training_data") or {}
    nested = "nested " if card.get("tuning") else ""
    rows = [_metrics_rows(nested + _evaluation_label(td), card.get("cv_metrics"))]
    if card.get("holdout_metrics"):
        fraction = (td.get("holdout") or {}).get("fraction")
        rows.append(_metrics_rows(f"held-out test split ({fraction:.0%}, untouched by training)" if fraction else
                                  "held-out test split (untouched by training)", card["holdout_metrics"]))
    if held is not None:
        rows.append(_metrics_rows(data_label, held))
    body = H.table(header, rows)
    calibrated = (card.get("calibration") or {}).get("method", "none") != "none"
    body += H.note("Accuracies at the model's threshold (prob_fake >= threshold means fake); fake is the positive class. "
                   + ("Cross-validated metrics are computed on calibrated out-of-fold scores (each calibrated by a map "
                      "fitted without it). " if calibrated else "")
                   + "TPR@1%FPR: share of fakes caught when at most 1 % of real images are flagged. "
                   + "AUC 95 % CI: DeLong's confidence interval for this many real and fake images (on the logit "
                     "scale); it does not count the variation from retraining, and a few hundred images leave it "
                     "wide.")
    if card.get("holdout_metrics"):
        body += H.note("Held-out test split: images set aside at training time before cross-validation, tuning, "
                       "calibration and the final fit, then scored once by the final model at its threshold.")
    if held is not None:
        body += H.note("Metrics on the data are held-out only if these images were not used for training.")
    elif not card.get("holdout_metrics"):
        body += H.note("Give labelled DATA to 'forensics report' for held-out metrics.")
    return body


_GROUP_COLUMNS = (("real", "n_real"), ("fake", "n_fake"), ("failed", "n_failed"), ("acc real", "acc_real"),
                  ("acc fake", "acc_fake"), ("mean prob_fake", "mean_prob_fake"), ("AUC", "auc"),
                  ("AUC 95 % CI", "auc_ci"), ("AUC against", "auc_against"))


def _groups_html(scored, t) -> str:
    """The metrics on the data per group of images (``--by``), or nothing without groups."""
    if scored is None or scored.groups is None:
        return ""
    from forensics.pipelines.evaluate import group_metrics

    groups = group_metrics(scored.y, scored.probs, scored.groups, t)
    rows = [[name] + [(auc_interval_text(g) or "-") if k == "auc_ci" else g.get(k) for _, k in _GROUP_COLUMNS]
            for name, g in groups.items()]
    return ("<h3>Per group of images</h3>" + H.table(["group"] + [h for h, _ in _GROUP_COLUMNS], rows)
            + H.note("Each group's images of the data: accuracy on each class at the model's threshold, mean prob_fake, "
                     "and an AUC with its 95 % CI. A group of fakes is measured against all the real images of the data, "
                     "a group of real images against all the fakes, a group holding both within itself."))


def _curves_section(series) -> str:
    if not series:
        return H.note("No scores: the model card holds no out-of-fold scores and no data was given.")
    return H.figure(plots.roc_pr(series), "ROC and precision-recall curves")


def _hist_section(series, t) -> str:
    if not series:
        return H.note("No scores available.")
    return H.figure(plots.score_histograms(series, t), "score histograms per class")


def _calibration_section(series, card) -> str:
    cal = (card.get("calibration") or {}).get("method", "none")
    if not series:
        return H.note("No scores available.")
    body = H.figure(plots.reliability(series), "reliability diagram")
    body += H.note(f"prob_fake calibration: {cal}. Points on the diagonal mean that among images scored p, a share p "
                   "are fake. The Brier score is the mean squared difference between prob_fake and the label "
                   "(0 is perfect, 0.25 is a constant 0.5).")
    return body


def _confusion_section(series, t) -> str:
    if not series:
        return H.note("No scores available.")
    return H.figure(plots.confusion(series, t), "confusion matrices")


def _importance_section(model, names, scored) -> str:
    pipe = model.pipeline
    body = ""
    per_feature, per_block_rows = [], {}
    gain = imp.xgb_gain(pipe, len(names))
    if gain is not None:
        per_feature.append(("XGBoost total gain (share)", names, gain))
        for b, ix in imp.block_index(names).items():
            per_block_rows.setdefault(b, {})["gain"] = float(gain[ix].sum())
    weights = imp.linear_weights(pipe)
    if weights is not None:
        per_feature.append(("|coefficient| (standardised features)", names, weights))
    if scored is not None and scored.ok.any():
        X = scored.X[scored.ok]
        shap = imp.mean_abs_contributions(pipe, X, names)
        if shap is not None:
            per_feature.append(("mean |SHAP| (log-odds)", names, shap[0]))
            for b, v in shap[1].items():
                per_block_rows.setdefault(b, {})["shap"] = v
        perm = imp.block_permutation_importance(lambda Z: pipe.predict_proba(Z)[:, 1], X, scored.y[scored.ok], names)
        for b, (m, s) in perm.items():
            per_block_rows.setdefault(b, {})["perm"] = m
            per_block_rows[b]["perm_std"] = s
    if per_feature:
        body += "<h3>Per feature (top 20)</h3>" + H.figure(plots.bars(per_feature, top=20), "feature importance")
    else:
        body += H.note("No per-feature importance without data for this classifier (svm): give labelled DATA.")
    if per_block_rows:
        blocks = list(per_block_rows)
        panels = []
        for key, title in (("gain", "XGBoost gain share"), ("shap", "mean |block SHAP sum|"), ("perm", "AUC drop, block permuted")):
            if any(key in per_block_rows[b] for b in blocks):
                panels.append((title, blocks, np.array([per_block_rows[b].get(key, np.nan) for b in blocks])))
        body += "<h3>Per block</h3>" + H.figure(plots.bars(panels, top=len(blocks)), "block importance")
        cols = [(k, h) for k, h in (("gain", "gain share"), ("shap", "mean |SHAP sum|"), ("perm", "AUC drop (permuted)"),
                                    ("perm_std", "± std")) if any(k in d for d in per_block_rows.values())]
        body += H.table(["block"] + [h for _, h in cols], [[b] + [d.get(k) for k, _ in cols] for b, d in per_block_rows.items()])
    body += H.note("Gain: share of the trees' total loss reduction from splits on the feature. SHAP: exact TreeSHAP "
                   "contributions from XGBoost (pred_contribs), or coefficient x standardised value for logistic "
                   "regression; per block, the mean absolute sum of the block's contributions. Permutation: drop in AUC "
                   "on the data when a block's columns are shuffled together across images (3 repeats).")
    return body


def _ablation_section(model, names, scored, enabled, progress) -> str:
    if scored is None:
        return H.note("The block ablation retrains on labelled data: give DATA to 'forensics report'.")
    if not enabled:
        return H.note("Skipped (--no-ablation).")
    classifier = (model.card or {}).get("classifier", "xgb")
    res = imp.block_ablation(scored.X, scored.y, names, classifier,
                             progress=(lambda d, t: progress("ablation", d, t)) if progress else None)
    if res is None:
        return H.note("Too few images of one class for a cross-validated ablation.")
    blocks = list(res["alone"])
    body = ""
    if len(blocks) > 1:
        body += H.figure(plots.ablation(blocks, [res["alone"][b] for b in blocks],
                                        [res["without"].get(b, np.nan) for b in blocks], res["all"]), "block ablation")
    body += H.table(["block", "alone (CV AUC)", "all but this block (CV AUC)"],
                    [[b, res["alone"][b], res["without"].get(b)] for b in blocks] + [["all blocks", res["all"], None]])
    trees = f"XGBoost with {res['trees']} trees (learning rate 0.1)" if res["trees"] else res["classifier"]
    body += H.note(f"Retrained on the data's features: {res['folds']}-fold stratified CV on {res['n']} images, {trees}; "
                   "lighter than the full model, so compare the bars with each other, not with the metrics above.")
    return body


def _spectrum_section(names, card, scored) -> str:
    ix = [i for i, n in enumerate(names) if n.startswith("spectrum__lum_profile__")]
    if not ix:
        return H.note("The model has no spectrum block (spectrum__lum_profile features).")
    n_bins = len(ix)
    radius = (np.arange(n_bins) + 0.5) / n_bins
    if scored is not None and scored.ok.any():
        X, y = scored.X[scored.ok][:, ix], scored.y[scored.ok]
        if (y == 0).any() and (y == 1).any():
            with np.errstate(all="ignore"):
                real, fake = np.nanmean(X[y == 0], axis=0), np.nanmean(X[y == 1], axis=0)
            return (H.figure(plots.mean_spectrum(radius, real, fake, "data"), "mean spectrum per class")
                    + H.note(f"Mean of the {n_bins} spectrum__lum_profile features (luminance log power per radial cell, "
                             "minus its mean) over the data's real and fake images."))
    means = card.get("class_means") or {}
    if means.get("real") and means.get("fake"):
        real = np.array([np.nan if means["real"][i] is None else means["real"][i] for i in ix], float)
        fake = np.array([np.nan if means["fake"][i] is None else means["fake"][i] for i in ix], float)
        return (H.figure(plots.mean_spectrum(radius, real, fake, "training data"), "mean spectrum per class")
                + H.note(f"Mean of the {n_bins} spectrum__lum_profile features over the training images of each class "
                         "(stored in the model card)."))
    return H.note("No class means in the model card and no data given.")


def _examples_section(model, scored, n) -> str:
    if scored is None:
        return H.note("Thumbnails need labelled DATA.")
    from forensics.loading import load_image

    p, y, ok, t = scored.probs, scored.y, scored.ok, float(model.threshold)
    idx = np.arange(len(p))

    def pick(mask, key):
        cand = idx[mask & ok]
        return cand[np.argsort(key(p[cand]), kind="stable")][:n]

    groups = [
        ("Most confident fakes (correct)", pick((y == 1) & (p >= t), lambda s: -s)),
        ("Most confident reals (correct)", pick((y == 0) & (p < t), lambda s: s)),
        ("Real images called fake (most confident first)", pick((y == 0) & (p >= t), lambda s: -s)),
        ("Fake images called real (most confident first)", pick((y == 1) & (p < t), lambda s: s)),
    ]
    body = ""
    for title, chosen in groups:
        body += f"<h3>{H.esc(title)}</h3>"
        if not len(chosen):
            body += H.note("none")
            continue
        items = []
        for i in chosen:
            try:
                rgb = load_image(scored.paths[i], max_pixels=model.spec.max_pixels).rgb
                uri = plots.thumbnail_uri(rgb)
            except Exception as exc:  # noqa: BLE001 - a thumbnail must not sink the report
                logger.warning("no thumbnail for %s: %s", scored.paths[i], exc)
                continue
            items.append((uri, Path(scored.paths[i]).name, f"prob_fake {p[i]:.3f}"))
        body += H.thumbs(items)
    n_wrong = int((ok & ((p >= t) != (y == 1))).sum())
    body += H.note(f"{n_wrong} of {int(ok.sum())} scored images are misclassified at threshold {t:.3f}; up to {n} shown per group.")
    return body


def _audit_rows(audit: dict) -> list:
    rows = [[c, a, "shortcut" if a > audit.get("flag_auc", 0.75) else ""] for c, a in audit.get("columns", {}).items()]
    a = audit.get("all")
    rows.append([f"all ({audit.get('cv_folds', '?')}-fold CV, tree)", a, "shortcut" if a is not None and a > audit.get("flag_auc", 0.75) else ""])
    return rows


def _audit_section(card, scored) -> str:
    from forensics.pipelines.audit import audit_message, shortcut_audit

    body = ""
    audits = []
    if card.get("shortcut_audit"):
        audits.append(("training data", card["shortcut_audit"]))
    if scored is not None:
        try:
            audits.append(("data", shortcut_audit(scored.diag, scored.y)))
        except Exception as exc:  # noqa: BLE001
            logger.warning("shortcut audit of the data failed: %s", exc)
    if not audits:
        return H.note("No shortcut audit in the model card (trained with an older version) and no data given.")
    for label, audit in audits:
        body += f"<h3>{H.esc(label)}</h3>" + H.table(["diag column", "AUC", "flag"], _audit_rows(audit))
        msg = audit_message(audit)
        body += H.note(msg, warn=True) if msg else H.note("No provenance column predicts the label above AUC "
                                                           f"{audit.get('flag_auc', 0.75)}.")
    body += H.note("AUC of each provenance column alone (max(AUC, 1 - AUC)) and cross-validated AUC of a shallow tree "
                   "on all of them: a high value means the label can be guessed without any forensic trace.")
    return body
