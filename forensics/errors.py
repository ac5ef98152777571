"""Exceptions raised by the library. The CLI turns them into one-line messages."""


class ForensicsError(Exception):
    """Base class of every error this package raises on purpose."""


class UsageError(ForensicsError, ValueError):
    """A caller asked for something that cannot be done (bad block name, empty input, one class only)."""


class ImageLoadError(ForensicsError):
    """A file could not be turned into an RGB image."""


class DecompressionBombError(ImageLoadError):
    """The image header declares more pixels than the configured limit; nothing was decoded."""


class ModelFileError(ForensicsError):
    """A file is not a model file of this package, or cannot be used by this installation."""
