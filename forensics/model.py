"""Model files: the fitted pipeline plus a model card, stored with skops.

Loading never executes code from the file: skops rebuilds objects only from an explicit allow-list of
types (scikit-learn's own, which skops trusts, plus the few listed in :data:`TRUSTED_TYPES`); a file
holding anything else is refused before any object is built. Pickle and joblib are never used.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forensics import __version__
from forensics.errors import ModelFileError
from forensics.extraction import FeatureSpec

logger = logging.getLogger(__name__)

MODEL_FORMAT = "forensics-model"
#: 2: a calibrator maps the pipeline's scores to ``prob_fake`` (the threshold is on that scale).
MODEL_FORMAT_VERSION = 2

#: Types, beyond what skops trusts by default, that a model file may contain.
TRUSTED_TYPES = frozenset(
    {
        "numpy.dtype",
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "forensics.pipelines.blend.BlendClassifier",
        "forensics.pipelines.blend.HybridClassifier",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.isotonic.IsotonicRegression",
    }
)


@dataclass
class ForensicModel:
    """A trained detector: feature spec, fitted pipeline, decision threshold and model card.

    ``calibrator`` (see :mod:`forensics.pipelines.calibration`) maps the pipeline's scores to
    calibrated probabilities; ``None`` leaves them as they are. The threshold is on the calibrated scale.
    """

    pipeline: object
    spec: FeatureSpec
    threshold: float = 0.5
    card: dict = field(default_factory=dict)
    calibrator: object = None

    @property
    def feature_names(self) -> list[str]:
        return list(self.card.get("feature_names") or self.spec.feature_names())

    def predict_proba(self, X) -> np.ndarray:
        """Fake probability for a feature matrix (rows with all features NaN give NaN)."""
        X = np.asarray(X, dtype=np.float64)
        out = np.full(X.shape[0], np.nan)
        ok = ~np.all(np.isnan(X), axis=1) if X.size else np.zeros(X.shape[0], bool)
        if ok.any():
            out[ok] = self.pipeline.predict_proba(X[ok])[:, 1]
        if self.calibrator is not None:
            from forensics.pipelines.calibration import apply_calibrator

            out = apply_calibrator(self.calibrator, out)
        return out

    def label(self, probs) -> list[str | None]:
        """``real``/``fake`` at the model's threshold; ``None`` where there is no score."""
        return [None if not np.isfinite(p) else ("fake" if p >= self.threshold else "real") for p in probs]

    # ----------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the model file (skops), atomically."""
        import skops.io as sio

        path = Path(path)
        payload = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "card": _plain(self.card),
            "spec": {"blocks": list(self.spec.blocks), "settings": _plain(self.spec.settings), "max_pixels": self.spec.max_pixels,
                     "face_crop": bool(self.spec.face_crop)},
            "threshold": float(self.threshold),
            "pipeline": self.pipeline,
            "calibrator": self.calibrator,
        }
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            sio.dump(payload, tmp, compression=zipfile.ZIP_DEFLATED)  # the card's score lists compress ~50x
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ForensicModel":
        """Read a model file written by :meth:`save`; :class:`ModelFileError` for anything else."""
        import skops.io as sio

        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"model file not found: {path}")
        try:
            untrusted = sio.get_untrusted_types(file=path)
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, UnicodeDecodeError, TypeError) as exc:
            raise ModelFileError(f"{path} is not a forensics model file (not a skops file: {type(exc).__name__})") from None
        except Exception as exc:  # noqa: BLE001 - skops raises various things on garbage
            raise ModelFileError(f"{path} is not a forensics model file ({type(exc).__name__}: {exc})") from None
        bad = sorted(set(untrusted) - TRUSTED_TYPES)
        if bad:
            raise ModelFileError(
                f"{path} holds types this tool does not trust ({', '.join(bad[:5])}); refusing to load it"
            )
        try:
            payload = sio.load(path, trusted=list(untrusted))
        except Exception as exc:  # noqa: BLE001
            raise ModelFileError(f"{path} could not be read as a forensics model ({type(exc).__name__}: {exc})") from None
        if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
            raise ModelFileError(f"{path} is a skops file but not a forensics model")
        if payload.get("format_version", 0) > MODEL_FORMAT_VERSION:
            raise ModelFileError(
                f"{path} was written by a newer forensics (model format {payload.get('format_version')}); "
                f"this is forensics {__version__}: upgrade to use it"
            )
        spec_d = payload["spec"]
        from forensics.errors import UsageError
        from forensics.features.base import all_blocks

        known = all_blocks()
        missing = [b for b in spec_d["blocks"] if b not in known]
        if missing:
            raise ModelFileError(
                f"{path} needs feature block(s) {', '.join(missing)}, which this installation does not provide"
            )
        try:
            for b in spec_d["blocks"]:
                known[b].check_available()
                known[b].resolve_settings(spec_d["settings"].get(b))
            if spec_d.get("face_crop"):
                from forensics.faces import check_available

                check_available()
        except UsageError as exc:
            raise ModelFileError(f"{path} cannot be used here: {exc}") from None
        spec = FeatureSpec(blocks=list(spec_d["blocks"]), settings=dict(spec_d["settings"]), max_pixels=spec_d.get("max_pixels"),
                           face_crop=bool(spec_d.get("face_crop", False)))
        card = payload.get("card", {})
        saved_names = card.get("feature_names")
        if saved_names is not None and list(saved_names) != spec.feature_names():
            raise ModelFileError(
                f"{path} was trained with forensics {card.get('forensics_version', '?')} whose feature names differ "
                f"from this installation's ({__version__}); retrain the model"
            )
        return cls(pipeline=payload["pipeline"], spec=spec, threshold=float(payload["threshold"]), card=card,
                   calibrator=payload.get("calibrator"))


def _plain(obj):
    """Make a card JSON-like (tuples to lists, numpy scalars to Python)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def make_card(*, spec: FeatureSpec, classifier: str, training: dict, cv_metrics: dict, threshold: float,
              threshold_rule: str, extra: dict | None = None) -> dict:
    """The model card recorded inside the model file."""
    import sklearn

    try:
        import xgboost

        xgb_version = xgboost.__version__
    except ImportError:  # pragma: no cover
        xgb_version = None
    card = {
        "forensics_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "classifier": classifier,
        "blocks": list(spec.blocks),
        "block_settings": spec.settings,
        "face_crop": bool(spec.face_crop),
        "feature_names": spec.feature_names(),
        "n_features": len(spec.feature_names()),
        "training_data": training,
        "cv_metrics": cv_metrics,
        "threshold": float(threshold),
        "threshold_rule": threshold_rule,
        "versions": {"scikit-learn": sklearn.__version__, "xgboost": xgb_version, "numpy": np.__version__},
    }
    from forensics.features.base import get_block

    # Blocks with a ``card_info`` hook (e.g. a CNN backbone and its weights' SHA-256) describe themselves.
    block_info = {b: get_block(b).card_info(**spec.settings.get(b, {})) for b in spec.blocks if get_block(b).card_info}
    if block_info:
        card["block_info"] = block_info
    if extra:
        card.update(extra)
    return _plain(card)
