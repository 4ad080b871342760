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


def shown(value: object, limit: int = 80) -> str:
    """``repr(value)`` for a message, in bounded work and about ``limit`` characters.

    A value from a user's file can be huge, or small but deep with shared parts (YAML aliases,
    pickle references) that a plain ``repr`` expands into billions of items: reprlib stops after
    a few items per level and a few levels.
    """
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother = 3, limit, limit
    r.maxlist = r.maxtuple = r.maxdict = r.maxset = r.maxfrozenset = r.maxdeque = 6
    text = r.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
