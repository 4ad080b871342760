"""Writing files safely: atomic replacement, durable on power loss, readable by the group.

Every file fcnseg writes goes through :func:`atomic_write`: the content goes to a temporary file
in the same folder, is flushed to disk (``fsync``), then renamed over the target, and the folder
entry is flushed too. A reader (or a resumed run) sees the old file or the new one, never a
partial or empty one. Temporary names start with a dot and end in ``.tmp`` so that a run folder
can recognise and remove the leftovers of a kill (:func:`remove_temporaries`).
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path

from fcnseg.errors import FcnsegError

TMP_SUFFIX = ".tmp"


class OutputError(FcnsegError):
    """An output path cannot be written (a file where a folder is needed, no permission, full disk)."""


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see a partial file.

    The file gets the usual ``0666 & ~umask`` permissions (``-rw-r--r--`` under the common umask
    022), unlike ``tempfile.mkstemp``'s private ``0600``.

    Raises:
        OutputError: the folder cannot be created or the file cannot be written (the message
            says when the disk is full); nothing is left behind.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}{TMP_SUFFIX}"
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({_reason(exc, path)})") from exc
    try:
        write(str(tmp))
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) or _is_write_failure(exc):
            raise OutputError(f"{path}: cannot write ({_reason(exc, path)})") from exc
        raise


def remove_temporaries(folder: str | Path, names: tuple[str, ...]) -> list[Path]:
    """Delete the temporary files that a kill during :func:`atomic_write` of ``names`` left."""
    removed = []
    for name in names:
        for tmp in Path(folder).glob(f".{name}.*{TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def check_writable_file(path: str | Path, what: str = "output file") -> Path:
    """OutputError unless ``path`` can be created or replaced as a file (checked before any work)."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; the {what} must be a file path")
    parent = _existing_parent(path.parent)
    if not parent.is_dir():
        raise OutputError(f"{path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: no permission to write in {parent}")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{path}: exists and is not writable")
    return path


def check_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """OutputError unless ``path`` is or can become a writable folder (checked before any work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file; the {what} must be a folder")
    parent = _existing_parent(path)
    if not parent.is_dir():
        raise OutputError(f"{path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: no permission to write in {parent}")
    return path


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_write_failure(exc: BaseException) -> bool:
    """torch.save reports a full disk as a RuntimeError from its zip writer: "file write failed",
    or, when a write was cut short, "[enforce fail at inline_container.cc] unexpected pos"."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and (
        ("write" in text and "fail" in text) or "unexpected pos" in text
    )


def _reason(exc: BaseException, path: Path) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or _disk_full(path):
        return "no space left on the device"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if "unexpected pos" in str(exc):  # torch's zip writer lost a write, and with it the errno
        return "the write was cut short: is the disk full, or a quota or file-size limit reached?"
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return first[:200]


def _disk_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(_existing_parent(path.parent)).free < 1 << 20
    except OSError:
        return False
