"""forensics: classical image forensics for telling real photographs from generated and edited ones.

Handcrafted forensic feature blocks (Fourier spectra, LBP texture, noise residuals, colour statistics,
error level analysis) feed scikit-learn pipelines with XGBoost, SVM or logistic-regression classifiers.
"""

__version__ = "0.1.0"

from forensics.errors import (  # noqa: E402
    ForensicsError,
    ImageLoadError,
    DecompressionBombError,
    ModelFileError,
    UsageError,
)

__all__ = [
    "__version__",
    "ForensicsError",
    "ImageLoadError",
    "DecompressionBombError",
    "ModelFileError",
    "UsageError",
]
