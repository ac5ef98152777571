"""Feature blocks: one module per block, all registered in one registry (:mod:`forensics.features.base`).

Importing this package registers every block. Use :func:`resolve_blocks` to expand ``--blocks`` values,
:func:`get_block` for one block's metadata and :func:`feature_names` for column names.
"""

from forensics.features.base import (
    PRESETS,
    FeatureBlock,
    ImageViews,
    all_blocks,
    as_views,
    feature_names,
    get_block,
    register_block,
    resolve_blocks,
)

# Registration order is column order: keep it stable (the committed name list checks it).
from forensics.features import diag  # noqa: F401,E402
from forensics.features import spectrum  # noqa: F401,E402
from forensics.features import texture  # noqa: F401,E402
from forensics.features import noise  # noqa: F401,E402
from forensics.features import color  # noqa: F401,E402
from forensics.features import ela  # noqa: F401,E402
from forensics.features import cooc  # noqa: F401,E402
from forensics.features import layout  # noqa: F401,E402
from forensics.features import hog  # noqa: F401,E402
from forensics.features import faceparts  # noqa: F401,E402  (optional: needs yuface)
from forensics.features import cnn  # noqa: F401,E402  (optional: torch imported on first use only)

__all__ = [
    "PRESETS",
    "FeatureBlock",
    "ImageViews",
    "all_blocks",
    "as_views",
    "feature_names",
    "get_block",
    "register_block",
    "resolve_blocks",
]
