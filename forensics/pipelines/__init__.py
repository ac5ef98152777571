"""scikit-learn pipelines, training, cross-validation and metrics."""

from forensics.pipelines.metrics import choose_threshold, detection_metrics, equal_error_rate
from forensics.pipelines.train import CLASSIFIERS, build_pipeline, train_classifier

__all__ = ["CLASSIFIERS", "build_pipeline", "choose_threshold", "detection_metrics", "equal_error_rate", "train_classifier"]
