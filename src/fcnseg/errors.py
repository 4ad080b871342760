"""Errors a person can act on; the CLI prints them as one line and exits non-zero."""


class FcnsegError(ValueError):
    """Base class for user-facing errors (bad input, missing weights, bad checkpoints)."""


class WeightsError(FcnsegError):
    """Backbone weights are missing, unreadable or of the wrong architecture."""


class DataError(FcnsegError):
    """A dataset file or folder is missing or malformed."""


class CheckpointError(FcnsegError):
    """A checkpoint is unreadable, truncated, untrusted or not written by fcnseg."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first non-empty line of an exception's message (its type name when it has none), cut
    to ``limit`` characters: what a one-line error quotes of a library's multi-line message."""
    line = next((s.strip() for s in str(exc).splitlines() if s.strip()), type(exc).__name__)
    return line if len(line) <= limit else line[: limit - 3] + "..."
