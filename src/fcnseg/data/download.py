"""Fetch a public dataset into the layout fcnseg reads: a resumable HTTP download with a progress
bar, checksums, and an extraction that either completes or leaves no dataset folder at all.

Files, in the target folder ``DIR``:
    ``NAME.zip.part``: the download in progress; the next run resumes it (an HTTP Range request;
        from the start when the server does not support ranges).
    ``NAME.zip``: the complete download (kept; a zip put there by hand is used as it is).
    ``.NAME.extracting.XXXX/``: the extraction in progress, renamed to ``NAME/`` once checked.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fcnseg.errors import DataError
from fcnseg.files import file_digest
from fcnseg.progress import progress_bar

CHUNK = 1 << 16
TIMEOUT_S = 30


@dataclass(frozen=True)
class Source:
    """A dataset's public zip and what its extracted folder must hold.

    ``sha256``: of the zip, where known. ``content_sha256``: of the extracted files, as
    :func:`content_digest` computes it over ``folders``; None skips that check.
    """

    name: str
    url: str
    folders: tuple[str, ...]
    sha256: str | None = None
    content_sha256: str | None = None
    files: int | None = None


DATASET1_FOLDERS = (
    "annotations_prepped_test",
    "annotations_prepped_train",
    "images_prepped_test",
    "images_prepped_train",
)
SOURCES = {
    # image-segmentation-keras' README links this zip. The zip's own sha256 is not published;
    # the content digest is that of the 936 files (367 + 101 images and masks) that the README's
    # dataset1 results were measured on, so a changed upload is caught after extraction.
    "dataset1": Source(
        name="dataset1",
        url="https://github.com/divamgupta/datasets/releases/download/seg/dataset1.zip",
        folders=DATASET1_FOLDERS,
        content_sha256="fbba21fd02ab013bfa779c33fd2f189bddecb4ee2061f933c210d656ec5b7ada",
        files=936,
    ),
}


def fetch(source: Source, to: Path, *, progress: bool = True, say=print) -> Path:
    """Download (or resume), check and extract ``source`` into ``to / source.name``.

    Returns the dataset folder. DataError, in one line, when the server cannot be reached
    (saying where to put the zip by hand), the download is cut short (run again to resume), a
    checksum differs (a download of ours is removed) or the zip is not the expected dataset.
    """
    dest = to / source.name
    if dest.exists():
        if _complete(dest, source):
            say(f"{dest}: already there and complete")
            return dest
        raise DataError(
            f"{dest}: exists but is not a complete {source.name}; move it away or choose "
            f"another --to (nothing was changed)"
        )
    archive = to / f"{source.name}.zip"
    if archive.is_file():
        say(f"using {archive} (already downloaded)")
        _check_sha256(archive, source, ours=False)
    else:
        part = archive.with_name(archive.name + ".part")
        if part.is_symlink() or part.exists() and not part.is_file():
            # A write would go through the link (or into a device): never fcnseg's own part.
            raise DataError(
                f"{part}: a link or not a regular file where the partial download goes; move it "
                "away and run again (nothing was changed)"
            )
        resumed = part.is_file()  # an earlier run's part (or a file of that name): kept on failure
        _download(source, part, archive, progress)
        _check_sha256(part, source, ours=not resumed)
        part.replace(archive)
    _extract(archive, to, source)
    return dest


def _download(source: Source, part: Path, archive: Path, progress: bool) -> None:
    """Append the rest of ``source.url`` to ``part``; DataError when unreachable or cut short."""
    start = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "fcnseg", **({"Range": f"bytes={start}-"} if start else {})}
    try:
        response = urllib.request.urlopen(  # noqa: S310 (an https URL, or the user's --url)
            urllib.request.Request(source.url, headers=headers), timeout=TIMEOUT_S
        )
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing left to send: the part is whole
            return
        raise DataError(f"{source.url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(
            f"cannot download {source.url} ({reason}); offline? Fetch that file by hand, put "
            f"it at {archive} and run this command again (or unzip it there yourself: unzip "
            f"{archive.name} -d {archive.parent})"
        ) from exc
    with response:
        if start and response.status != 206:
            start = 0  # the server ignored the range: start over
        length = response.headers.get("Content-Length")
        total = start + int(length) if length and length.isdigit() else None
        part.parent.mkdir(parents=True, exist_ok=True)  # only now: offline leaves nothing
        with (
            open(part, "ab" if start else "wb") as out,
            progress_bar(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                desc=source.name,
                enabled=progress,
            ) as bar,
        ):
            while chunk := _read(response):
                out.write(chunk)  # a full disk raises here, as itself
                bar.update(len(chunk))
    got = part.stat().st_size
    if total is not None and got < total:
        raise DataError(
            f"{source.url}: download interrupted at {got:,} of {total:,} bytes; run the same "
            f"command again to resume ({part} is kept)"
        )


def _read(response: http.client.HTTPResponse) -> bytes:
    """The next chunk; b"" at the end or when the connection breaks (the caller compares the
    byte count with Content-Length and says how far it got)."""
    try:
        return response.read(CHUNK)
    except (http.client.IncompleteRead, OSError):
        return b""


def _check_sha256(path: Path, source: Source, *, ours: bool) -> None:
    if source.sha256 is None:
        return
    got = file_digest(path)
    if got != source.sha256.lower():
        if ours:
            path.unlink()  # a download of ours that cannot be right; resuming it cannot help
        fate = "the download was removed" if ours else "the file was left as it is"
        raise DataError(
            f"{path}: sha256 {got} is not the expected {source.sha256} ({fate}; a changed "
            f"upload, a proxy's error page, or the wrong --sha256?)"
        )


def content_digest(root: Path, folders: tuple[str, ...]) -> tuple[str, int]:
    """sha256 over the sorted lines ``FOLDER/NAME FILE_SHA256`` of every file in ``folders``,
    and the number of files: the same for the same files, however they were zipped."""
    lines = [
        f"{folder}/{p.name} {file_digest(p)}\n"
        for folder in sorted(folders)
        if (root / folder).is_dir()
        for p in sorted((root / folder).iterdir())
        if p.is_file()
    ]
    return hashlib.sha256("".join(lines).encode()).hexdigest(), len(lines)


def _complete(folder: Path, source: Source) -> bool:
    if not all((folder / f).is_dir() for f in source.folders):
        return False
    if source.content_sha256 is None:
        return True
    return content_digest(folder, source.folders)[0] == source.content_sha256


MARK = ".fcnseg-download"  # inside a staging folder: fcnseg made it, a later run may remove it
MAX_UNZIPPED = 4 << 30  # a dataset zip that claims more is refused before anything is written


def _extract(archive: Path, to: Path, source: Source) -> None:
    """Unzip into a staging folder of our own, find the dataset in it, check it, rename it into
    place. The staging folder has a fresh name and a mark, so a folder of the user's is never
    taken for it; leftovers of an interrupted run are removed only when they carry the mark."""
    for old in to.glob(f".{source.name}.extracting.*"):
        if old.is_dir() and not old.is_symlink() and (old / MARK).is_file():
            shutil.rmtree(old, ignore_errors=True)
    staging = None
    try:
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            for info in infos:
                parts = PurePosixPath(info.filename).parts
                if info.filename.startswith("/") or ".." in parts:
                    raise DataError(
                        f"{archive}: refusing a member outside the folder: {info.filename}"
                    )
            if sum(i.file_size for i in infos) > MAX_UNZIPPED:
                raise DataError(
                    f"{archive}: unzips to more than {MAX_UNZIPPED >> 30} GiB; not a dataset "
                    "fcnseg knows (nothing was extracted)"
                )
            staging = Path(tempfile.mkdtemp(prefix=f".{source.name}.extracting.", dir=to))
            (staging / MARK).write_text("fcnseg download\n")
            zf.extractall(staging)
        inside = _dataset_root(staging, source, archive)
        if source.content_sha256 is not None:
            digest, count = content_digest(inside, source.folders)
            if digest != source.content_sha256:
                raise DataError(
                    f"{archive}: the extracted files ({count}, expected {source.files}) differ "
                    f"from the {source.name} fcnseg knows (content sha256 {digest}); nothing "
                    f"was extracted"
                )
        (inside / MARK).unlink(missing_ok=True)
        inside.rename(to / source.name)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive}: not a readable zip ({exc}); delete it and run again") from exc
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _dataset_root(staging: Path, source: Source, archive: Path) -> Path:
    """The extracted folder holding ``source.folders``: the staging folder or one level down."""
    for candidate in [staging, *sorted(p for p in staging.iterdir() if p.is_dir())]:
        if all((candidate / f).is_dir() for f in source.folders):
            return candidate
    raise DataError(f"{archive}: no folder with {', '.join(source.folders)} in the zip")
