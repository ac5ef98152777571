"""Incremental learning: continue an XGBoost model with new data (``forensics train --warm-start``).

A warm start keeps everything that defines the old model's features (blocks, settings, pixel limit,
face crop) and adds trees to a copy of its booster, fitted on the new data (XGBoost's ``xgb_model``):
the new trees start from the old model's scores and correct them. The model card keeps a list of
training rounds, one per training run, each with its date, data, counts and cross-validated metrics.

Continued training only sees the new data: to keep what the old model knew, the new data should
include a replay sample of the old kind of images (see ``benchmarks/warm_start.py``).
"""

from __future__ import annotations

import logging
import os

from forensics.errors import UsageError

logger = logging.getLogger(__name__)


def load_warm_start(model, classifier: str = "xgb"):
    """The model to continue (a :class:`~forensics.model.ForensicModel` or a model file), checked:
    it must be an xgb model, and ``classifier`` must be xgb."""
    from forensics.model import ForensicModel
    from forensics.pipelines.train import xgb_booster

    if classifier != "xgb":
        raise UsageError(f"--warm-start continues an xgb model; --classifier {classifier} cannot (drop --classifier)")
    old = model if isinstance(model, ForensicModel) else ForensicModel.load(model)
    if old.card.get("classifier", "xgb") != "xgb":
        raise UsageError(f"--warm-start needs an xgb model; {model} is a {old.card.get('classifier')} model")
    xgb_booster(old.pipeline)  # raises a clear UsageError for anything else
    return old


def warm_start_spec(old, *, blocks=None, settings: dict | None = None, face_crop: bool | None = None, max_pixels=None):
    """The old model's feature spec; :class:`UsageError` when the caller asks for different features.

    ``blocks``/``settings``/``face_crop`` ``None`` (not given) take the old model's; given ones must
    describe the same features (the new trees extend a model that reads exactly those columns).
    """
    from forensics.extraction import FeatureSpec

    spec = old.spec
    what = []
    if blocks is not None:
        asked = FeatureSpec.create(blocks, {k: v for k, v in (settings or {}).items()}, spec.max_pixels)
        if asked.blocks != list(spec.blocks):
            what.append(f"--blocks {','.join(asked.blocks)} (model: {','.join(spec.blocks)})")
        elif settings and asked.settings != spec.settings:
            what.append("--set (block settings differ from the model's)")
    elif settings:
        merged = {b: {**spec.settings.get(b, {}), **s} for b, s in settings.items()}
        if any(b not in spec.blocks for b in settings) or any(merged[b] != spec.settings.get(b) for b in settings):
            what.append("--set (block settings differ from the model's)")
    if face_crop is not None and bool(face_crop) != bool(spec.face_crop):
        what.append(f"--face-crop {'on' if face_crop else 'off'} (model: {'on' if spec.face_crop else 'off'})")
    if what:
        raise UsageError(
            "a warm start keeps the old model's blocks and settings; these differ: " + "; ".join(what)
            + ". Drop them, or train a new model without --warm-start"
        )
    if max_pixels is not None and max_pixels != spec.max_pixels:
        logger.info("warm start: keeping the model's pixel limit %s", spec.max_pixels)
    return spec


def round_record(*, date: str, data, counts: dict, cv_metrics: dict, extra: dict | None = None) -> dict:
    """One entry of ``card["rounds"]``."""
    rec = {"date": date, "data": data, "counts": counts, "cv_metrics": cv_metrics}
    if extra:
        rec.update(extra)
    return rec


def rounds_of(card: dict) -> list[dict]:
    """The training rounds recorded in a card; a card from before rounds were recorded gives one round
    rebuilt from its training data and CV metrics."""
    if card.get("rounds"):
        return list(card["rounds"])
    t = card.get("training_data") or {}
    return [round_record(date=card.get("created"), data=t.get("data"),
                         counts={"real": t.get("n_real"), "fake": t.get("n_fake")},
                         cv_metrics=card.get("cv_metrics") or {})]


def describe_source(model) -> str:
    """How a warm start names the model it continued (a file path, or the in-memory model's date)."""
    if isinstance(model, (str, os.PathLike)):
        return str(model)
    return f"model created {getattr(model, 'card', {}).get('created', '?')}"
