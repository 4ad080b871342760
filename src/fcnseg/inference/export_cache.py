"""Trust rules for the exports cached beside a checkpoint (ONNX, OpenVINO int8).

An export is slow to make (tens of seconds to minutes for VGG16), so it is cached beside the
checkpoint, or in the user's cache folder where that is not writable. A cached file is used only
when it says what it was made from, and that is what is asked for:

- Its name carries a key over the checkpoint's digest and the exporting code (plus, for int8, the
  calibration images); the key is computed from the digest of the very bytes the model was loaded
  from (:func:`fcnseg.checkpoint.load_checkpoint`), so a checkpoint replaced while it is exported
  names the export after what was exported, never after the new file.
- Inside, a :func:`stamp` records the checkpoint path, its digest and the key; :func:`check_onnx`
  and the int8 reader compare it before use. A file copied in under the expected name, an empty,
  corrupt or unreadable one, or an ONNX file whose weights live in external files (fcnseg never
  writes those) is not used: it is rebuilt, with one line saying why.
- A kill during an export leaves ``.NAME.XXXX.tmp`` (:func:`fcnseg.files.atomic_write`; for
  int8 a folder holding ``m.xml`` and ``m.bin``); such leftovers of this checkpoint's caches are
  removed on the next use once an hour old (no export runs that long, so none still being
  written is touched); a folder holding anything else is left.
- Older exports of the same checkpoint path, identified by their stamp, are removed when a new one
  is written; nothing without fcnseg's stamp for that path is ever removed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

import torch

from fcnseg.files import TMP_SUFFIX

STAMP_KEY = "fcnseg_cache"
# Files whose code decides the exported graph: a change in any of them means a new cache key.
_EXPORT_SOURCES = ("inference/export.py", "models")
STALE_TMP_SECONDS = 3600
INT8_TMP_PARTS = ("m.xml", "m.bin")  # what the int8 export writes in its temporary folder


@functools.lru_cache(maxsize=1)
def export_digest() -> str:
    """SHA-256 over the fcnseg sources that shape the exported graph, and torch's version."""
    root = Path(__file__).resolve().parents[1]  # the fcnseg package
    h = hashlib.sha256(f"torch {torch.__version__}".encode())
    for name in _EXPORT_SOURCES:
        paths = sorted((root / name).rglob("*.py")) if (root / name).is_dir() else [root / name]
        for path in paths:
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def cache_key(checkpoint_sha256: str, *extra: str) -> str:
    """The key naming a cached export: the checkpoint's digest, the exporting code, ``extra``."""
    return hashlib.sha256(
        "\n".join((checkpoint_sha256, export_digest(), *extra)).encode()
    ).hexdigest()


def cache_folder(checkpoint: Path, kind: str) -> Path:
    """Beside ``checkpoint``, or, for a built-in model (inside the installed package) or a
    read-only folder, ``$XDG_CACHE_HOME/fcnseg/KIND`` (default ``~/.cache/fcnseg/KIND``)."""
    from fcnseg import zoo

    folder = checkpoint.resolve().parent
    if folder == zoo.ZOO_DIR or not os.access(folder, os.W_OK):
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        folder = base / "fcnseg" / kind
    return folder


def cacheable(path: Path) -> bool:
    """True when ``path`` exists or can be written (its nearest existing folder is writable)."""
    if path.is_file():
        return True
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK)


def stamp(checkpoint: Path, checkpoint_sha256: str, key: str, **extra: Any) -> dict[str, str]:
    """What a cached export records about its origin, as ``{STAMP_KEY: JSON}``."""
    record = {
        "checkpoint": str(checkpoint.resolve()),
        "checkpoint_sha256": checkpoint_sha256,
        "key": key,
        **extra,
    }
    return {STAMP_KEY: json.dumps(record, sort_keys=True)}


def parse_stamp(text: str | None) -> dict[str, Any] | None:
    """The record of :func:`stamp`, or None for a missing or malformed one."""
    try:
        record = json.loads(text) if text else None
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def onnx_stamp(path: Path) -> tuple[dict[str, Any] | None, str]:
    """The stamp inside an ONNX file and ``""``, or None and why the file cannot be trusted."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # empty, truncated, not protobuf, unreadable
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"unreadable ({first[:120]})"
    from onnx.external_data_helper import _get_all_tensors  # initialisers and attributes

    external = [
        t.name for t in _get_all_tensors(proto) if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        # fcnseg writes every weight inside the file; a reference to another file may point
        # anywhere on the disk, so it is not opened at all.
        return None, f"its weights refer to external files ({external[0]}, ...)"
    props = {p.key: p.value for p in proto.metadata_props}
    record = parse_stamp(props.get(STAMP_KEY))
    return (record, "") if record else (None, "no fcnseg cache stamp")


def check_record(record: dict[str, Any] | None, checkpoint_sha256: str, key: str) -> str:
    """``""`` when ``record`` is the stamp of the export keyed ``key``, else why not."""
    if record is None:
        return "no fcnseg cache stamp"
    if record.get("checkpoint_sha256") != checkpoint_sha256:
        return "made from another checkpoint"
    if record.get("key") != key:
        return "made by other code or settings"
    return ""


def remove_stale_temporaries(folder: Path, stem: str, now: float | None = None) -> list[Path]:
    """Remove the leftovers of killed exports of checkpoint ``stem`` in ``folder``: temporaries
    of :func:`fcnseg.files.atomic_write` named after a cached export
    (``.STEM.KEY.onnx.XXXXXXXX.tmp``, likewise ``.int8.xml``/``.int8.bin``), over an hour old."""
    now = time.time() if now is None else now
    name = re.compile(
        rf"^\.{re.escape(stem)}\.[0-9a-f]{{16}}\.(onnx|int8\.xml|int8\.bin)\.[0-9a-f]{{8}}"
        rf"{re.escape(TMP_SUFFIX)}$"
    )
    removed = []
    if not folder.is_dir():
        return removed
    for tmp in folder.glob(f".{stem}.*{TMP_SUFFIX}"):
        try:
            st = tmp.lstat()
            if not name.match(tmp.name) or now - st.st_mtime <= STALE_TMP_SECONDS:
                continue
            if stat.S_ISDIR(st.st_mode):  # the int8 export's folder (quantize.py): m.xml, m.bin
                parts = os.listdir(tmp)
                if not set(parts) <= set(INT8_TMP_PARTS):
                    continue  # something else is inside: not only ours, left alone
                for part in parts:
                    (tmp / part).unlink()
                tmp.rmdir()
            else:
                tmp.unlink()
            removed.append(tmp)
        except OSError:
            continue  # another process removed it, no permission, or not only ours: leave it
    return removed


def remove_older_exports(current: Path, checkpoint: Path, pattern: str, read_stamp) -> list[Path]:
    """Remove the files matching ``pattern`` beside ``current`` that fcnseg stamped as exports of
    the same checkpoint path with another key; ``read_stamp(path)`` gives a file's record."""
    target = str(checkpoint.resolve())
    # Only names fcnseg gives its caches (STEM.<16 hex>.onnx): a copy the user named is theirs.
    own = re.compile(
        re.escape(checkpoint.stem) + r"\.[0-9a-f]{16}" + re.escape(pattern.split("*", 1)[1])
    )
    removed = []
    for path in current.parent.glob(pattern):
        if (
            path == current
            or path.is_symlink()
            or not path.is_file()
            or not own.fullmatch(path.name)
        ):
            continue
        record = read_stamp(path)
        if record and record.get("checkpoint") == target and path.name != current.name:
            for part in (path, *_companions(path)):
                part.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _companions(path: Path) -> list[Path]:
    """Files that belong to a cached export (an OpenVINO IR's ``.bin`` beside its ``.xml``)."""
    return [path.with_suffix(".bin")] if path.suffix == ".xml" else []
