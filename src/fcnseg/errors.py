"""Errors a person can act on; the CLI prints them as one line and exits non-zero."""


class FcnsegError(ValueError):
    """Base class for user-facing errors (bad input, missing weights, bad checkpoints)."""


class WeightsError(FcnsegError):
    """Backbone weights are missing, unreadable or of the wrong architecture."""


class DataError(FcnsegError):
    """A dataset file or folder is missing or malformed."""


class CheckpointError(FcnsegError):
    """A checkpoint is unreadable, truncated, untrusted or not written by fcnseg."""
