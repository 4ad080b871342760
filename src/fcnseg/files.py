"""Writing files safely: atomic replacement, durable on power loss, readable by the group.

Every file fcnseg writes whole (checkpoints, pictures, metrics, configs, JSON, videos) goes
through :func:`atomic_write`: the content goes to a temporary file in the same folder, is flushed
to disk (``fsync``), then renamed over the target, and the folder entry is flushed too. A reader
(or a resumed run) sees the old file or the new one, never a partial or empty one. Temporary
names start with a dot and end in ``.tmp`` so that a run folder can recognise and remove the
leftovers of a kill (:func:`remove_temporaries`).

The exceptions are written under a temporary name and renamed into place by their own modules:
folders (a video's label frames, :mod:`fcnseg.video`; an unzipped dataset,
:mod:`fcnseg.data.download`), a download's ``.part`` file (appended to, so that a broken
download resumes), and a model being shipped (:mod:`fcnseg.zoo.ship`: evaluated under its
temporary name before it replaces the old one). The demo's synthetic dataset
(:mod:`fcnseg.data.synthetic`) is written file by file into a folder of its own.

The output rule (:func:`check_output_file`, checked before any work): fcnseg writes only
regular files; it never writes over one of the command's own inputs (the same file by any name:
symlink, hard link, relative path, another case), nor over a file that it did not write itself
(:func:`written_by_fcnseg`: PNGs carry a ``Software: fcnseg`` text chunk, see :data:`PNG_MARK`).
A symlink given as an output is written through, as a shell redirection would.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import pickle
import secrets
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from fcnseg.errors import FcnsegError, first_line

TMP_SUFFIX = ".tmp"
PNG_MARK = "fcnseg"  # the ``Software`` text chunk of every PNG fcnseg writes: "this one is ours"
_METRICS_KEYS = {"pixel_acc", "mean_iu", "per_class_iu", "num_images"}  # evaluate --json's
MAX_OWNED_JSON = 50 << 20  # a metrics JSON is kilobytes; a larger file is not ours (not read)


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
    path = _through_links(Path(path))
    check_regular(path)
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


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (``algorithm``: a :mod:`hashlib` name), read in chunks:
    the one file hash of the toolkit (shipped models, downloads, duplicate images)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def load_tensors(
    source: str | Path | io.BytesIO,
    error: type[FcnsegError],
    what: str,
    name: str | Path | None = None,
) -> object:
    """``torch.load(source, map_location="cpu", weights_only=True)``: the one way fcnseg reads a
    PyTorch file (checkpoints, weight files), from a path or from bytes already read (``name``
    then says which file). No pickled code runs; any failure (a truncated zip, code in the
    pickle, not a torch file) is ``error("NAME: WHAT (why)")``."""
    import torch  # here: the rest of this module is needed where torch is not

    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise error(f"{name if name is not None else source}: {what} ({_why(exc)})") from exc


def _why(exc: Exception) -> str:
    """The point of torch.load's message: its first line is boilerplate for pickled code."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if isinstance(exc, pickle.UnpicklingError) and "weights only" in str(exc).lower():
        # PyTorch's own wording names the culprit on a later line ("... GLOBAL posix.system ...").
        detail = next((line for line in lines if "GLOBAL" in line or "nsupported" in line), "")
        return f"it contains pickled code (not allowed: weights_only){': ' if detail else ''}{detail[:200]}"
    return (lines or [type(exc).__name__])[0][:200]


def save_png(array, path: str | Path) -> None:
    """Write ``array`` (``(H, W)`` or ``(H, W, 3)`` uint8) as a PNG marked as fcnseg's, atomically."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", PNG_MARK)
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG", pnginfo=info))


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
        raise OutputError(f"{path}: is {_kind(path.stat().st_mode)}; the {what} must be a folder")
    parent = _existing_parent(path)
    if not parent.is_dir():
        raise OutputError(f"{path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{path}: no permission to write in {parent}")
    return path


def check_outside_data(out: str | Path, data: str | Path | None, what: str) -> None:
    """OutputError when the folder ``out`` lies inside the dataset folder ``data``: what is
    written there would be read as images or masks by the next run."""
    if data and Path(data).is_dir() and Path(out).resolve().is_relative_to(Path(data).resolve()):
        raise OutputError(
            f"{out}: the {what} is inside the dataset (--data {data}); its pictures would be "
            "read as images or masks next time: choose another --out"
        )


def check_regular(path: str | Path) -> None:
    """OutputError if ``path`` exists (through symlinks) as anything but a regular file or folder.

    A rename over a device (``/dev/full``), a FIFO or a socket would replace it with a regular
    file, so fcnseg writes only regular files; this covers ``/dev/null`` and ``/dev/stdout`` too
    (leave the option out instead).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # absent (or a dangling link): created as a regular file
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise OutputError(f"{path}: is {_kind(mode)}, not a regular file; fcnseg writes only files")


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a file"
    return "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` both exist and are one file (symlinks, hard links, case...)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def written_by_fcnseg(path: str | Path) -> bool:
    """Whether the existing file ``path`` is one fcnseg wrote, so that it may be replaced.

    Told by content, not by name: a PNG carries ``Software: fcnseg`` (:data:`PNG_MARK`; an
    editor that re-saves it drops the mark, and the file is the user's from then on); a JSON is
    fcnseg's metrics (a mapping with ``pixel_acc``, ``mean_iu``, ``per_class_iu`` and
    ``num_images``); an ONNX model carries
    fcnseg's ``fcnseg_version`` metadata. Only a PNG's header or a small JSON is read.
    """
    path = Path(path)
    if not path.is_file():  # a FIFO would block the read below; devices are nobody's output
        return False
    try:
        with path.open("rb") as f:
            head = f.read(8)
        if head == b"\x89PNG\r\n\x1a\n":
            from PIL import Image

            with Image.open(path) as img:
                return str(getattr(img, "text", {}).get("Software", "")).startswith(PNG_MARK)
        if head.lstrip()[:1] == b"{":
            import json

            if path.stat().st_size > MAX_OWNED_JSON:
                return False
            data = json.loads(path.read_text())
            return isinstance(data, dict) and _METRICS_KEYS <= data.keys()
        if head[:1] == b"\x08":  # an ONNX ModelProto starts with its ir_version field
            import onnx

            model = onnx.load(str(path), load_external_data=False)
            return any(p.key == "fcnseg_version" for p in model.metadata_props)
    except Exception:  # noqa: BLE001 (unreadable, foreign or damaged: not ours)
        return False
    return False


class Inputs:
    """A command's input files, to tell whether an output path is one of them (the same file by
    any name: device and inode, as :func:`os.path.samefile` compares)."""

    def __init__(self, pairs: Iterable[tuple[str, str | Path]] = ()) -> None:
        """``pairs``: ``(what it is, path)``, e.g. ``("the checkpoint (--checkpoint)", path)``."""
        self._index: dict[tuple[int, int], tuple[str, Path]] = {}
        for role, source in pairs:
            self.add(role, source)

    def add(self, role: str, source: str | Path) -> None:
        try:
            st = os.stat(source)
        except OSError:
            return  # absent inputs are reported by the command that reads them
        self._index.setdefault((st.st_dev, st.st_ino), (role, Path(source)))

    def find(self, path: str | Path) -> tuple[str, Path] | None:
        """``(what it is, path)`` of the input that ``path`` is, or None."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        return self._index.get((st.st_dev, st.st_ino))


def check_output_file(
    path: str | Path,
    what: str = "output file",
    *,
    inputs: Inputs | Iterable[tuple[str, str | Path]] = (),
    replace: str = "own",
) -> Path:
    """OutputError unless fcnseg may write ``path`` (checked before any work).

    Besides :func:`check_writable_file`: ``path`` is not a device, FIFO or socket; it is none of
    ``inputs`` (compared as files: symlinks, hard links, relative paths all count); and where it
    exists, it is a file fcnseg wrote (``replace="own"``, :func:`written_by_fcnseg`), or any
    regular file with ``replace="any"``.
    """
    path = Path(path)
    check_regular(path)
    check_writable_file(path, what)
    found = (inputs if isinstance(inputs, Inputs) else Inputs(inputs)).find(path)
    if found is not None:
        role, source = found
        raise OutputError(
            f"{path}: the {what} would replace {role} {source}; fcnseg never writes over its input"
        )
    target = _through_links(path)
    if replace == "own" and target.is_file() and not written_by_fcnseg(target):
        raise OutputError(
            f"{path}: exists and was not written by fcnseg; move it away or choose another path "
            f"for the {what}"
        )
    return path


def _through_links(path: Path) -> Path:
    """Where a write to ``path`` lands: a symlink's target (kept as a link, like ``>``)."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


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
    return first_line(exc, 200)


def _disk_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(_existing_parent(path.parent)).free < 1 << 20
    except OSError:
        return False
