"""Segment a video: an overlay video of the same size and timing, and label maps per frame.

Decoding and encoding go through PyAV (``pip install 'fcnseg[video]'``), whose wheels carry their
own FFmpeg, so no system codecs are needed. Frames are segmented in batches, in order, with
memory bounded by one batch whatever the video's length.

Videos are read as a player shows them: a phone stores a portrait clip sideways with a rotation
(the display matrix in the stream's side data, or an older ``rotate`` tag), and the frames are
turned upright before they are segmented, so the overlay plays upright with no tag. Each overlay
frame keeps its input frame's timestamp, so a variable-frame-rate video stays in sync. A video
whose frames are over ``FCNSEG_MAX_IMAGE_PIXELS`` is refused before any frame is decoded, as an
image is.

Example:
    >>> import fcnseg
    >>> from fcnseg.inference.video import segment_video
    >>> seg = fcnseg.load("camvid_lite2")  # doctest: +SKIP
    >>> segment_video(seg, "clip.mp4", "out/clip_overlay.mp4")  # doctest: +SKIP
    VideoInfo(frames=300, rate=Fraction(30, 1), width=640, height=360)
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from fcnseg.data.io import MAX_PIXELS_ENV, max_image_pixels
from fcnseg.errors import DataError, FcnsegError
from fcnseg.files import OutputError, atomic_write, check_writable_file

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg"})
FRAME_NAME = re.compile(r"\d{6}\.png")
# Every label frame carries this PNG text chunk: a later run replaces a frames folder only when
# each file in it carries it, so nothing fcnseg did not write is ever deleted.
FRAME_MARK = ("Software", "fcnseg video labels")
Orientation = tuple[int, int, int, int]  # the display matrix's (a, b, c, d), each -1, 0 or 1
UPRIGHT: Orientation = (1, 0, 0, 1)


def is_video(path: str | os.PathLike[str]) -> bool:
    """True for a file name with a video suffix (``.mp4``, ``.mov``, ``.mkv``...)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds: frames (0 when the container does not say), frame rate, and the size
    of its frames as shown (upright: a portrait phone clip stored sideways is taller than wide).
    """

    frames: int
    rate: Fraction
    width: int
    height: int
    # The stream's clock (timestamps are multiples of it) and how to turn frames upright.
    time_base: Fraction = field(default=Fraction(1, 90000), repr=False, compare=False)
    orientation: Orientation = field(default=UPRIGHT, repr=False, compare=False)

    @property
    def fps(self) -> float:
        """Frames per second."""
        return float(self.rate)


def _av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise FcnsegError(
            "videos need PyAV: pip install 'fcnseg[video]' (or pip install av)"
        ) from exc
    return av


def _open(path: Path) -> Any:
    """The container, its first video stream's frame size checked against the pixel limit from
    the header alone (an MJPEG bomb of a few MB can hold frames of gigabytes)."""
    av = _av()
    limit = max_image_pixels()
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise DataError(f"{path}: not a readable video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: no video stream in it")
    stream = container.streams.video[0]
    try:
        _check_pixels(path, stream.width or 0, stream.height or 0, limit)
    except DataError:
        container.close()
        raise
    return container


def _check_pixels(path: Path, width: int, height: int, limit: int | None) -> None:
    if limit is not None and width * height > limit:
        raise DataError(
            f"{path}: {width}x{height} video frames have {width * height:,} pixels, more than "
            f"the limit of {limit:,} (a decompression bomb?); set {MAX_PIXELS_ENV} to allow more"
        )


def _rate(stream: Any) -> Fraction:
    return Fraction(stream.average_rate or stream.guessed_rate or stream.base_rate or 25)


def _orientation(frame: Any, stream: Any) -> Orientation:
    """How the player turns this stream's frames: the display matrix a decoded frame carries
    (phones, and FFmpeg for any container that has one), else a ``rotate`` tag (degrees
    clockwise, as older tools wrote it into MKV and MP4 tags), else upright."""
    sides = frame.side_data
    for entry in sides:
        side = entry if hasattr(entry, "type") else sides[entry]  # PyAV >= 18.1.1 yields keys
        if getattr(side.type, "name", "") == "DISPLAYMATRIX":
            m = np.frombuffer(bytes(side), dtype=np.int32)[[0, 1, 3, 4]].astype(np.float64)
            a, b, c, d = (int(v) for v in np.rint(m / (np.abs(m).max() or 1)))
            if abs(a) == abs(d) and abs(b) == abs(c) and abs(a) + abs(b) == 1:
                return a, b, c, d  # a quarter turn, maybe mirrored
            return _turn(frame.rotation)  # another angle: the nearest quarter turn
    tags = {k.lower(): v for k, v in stream.metadata.items()}
    try:
        return _turn(-float(tags.get("rotate", 0)))
    except ValueError:
        return UPRIGHT  # a tag that is not a number: as players do, ignore it


def _turn(degrees_ccw: float) -> Orientation:
    """The display matrix of a counter-clockwise turn, rounded to a quarter turn."""
    quarter = round(degrees_ccw / 90) % 4
    cos, sin = ((1, 0), (0, 1), (-1, 0), (0, -1))[quarter]
    return (cos, -sin, sin, cos)  # FFmpeg's av_display_rotation_set, for this angle


def _upright(rgb: np.ndarray, orientation: Orientation) -> np.ndarray:
    """The frame as displayed. FFmpeg's display matrix maps a stored pixel (x, y) to
    (a*x + c*y, b*x + d*y); with a quarter turn, a = d = 0 and the axes swap."""
    if orientation == UPRIGHT:
        return rgb
    a, b, c, d = orientation
    if a == 0:
        rgb, flip_rows, flip_cols = rgb.transpose(1, 0, 2), b < 0, c < 0
    else:
        flip_rows, flip_cols = d < 0, a < 0
    return np.ascontiguousarray(rgb[:: -1 if flip_rows else 1, :: -1 if flip_cols else 1])


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Frame count, frame rate and upright size of a video file.

    The size is checked against the pixel limit before anything is decoded; then the first
    frame is decoded, for the rotation a phone stores with it (FFmpeg attaches it to frames).

    Raises:
        DataError: the file is not a readable video, its frames are over the pixel limit, or it
            holds no frame at all.
    """
    path = Path(path)
    av = _av()
    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            first = next(iter(container.decode(stream)), None)
        except av.error.FFmpegError as exc:
            raise DataError(f"{path}: damaged video ({exc})") from exc
        if first is None:
            raise DataError(f"{path}: the video has no frames")
        _check_pixels(path, first.width, first.height, max_image_pixels())
        orientation = _orientation(first, stream)
        width, height = (
            (first.height, first.width) if orientation[0] == 0 else (first.width, first.height)
        )
        time_base = Fraction(stream.time_base or first.time_base or Fraction(1, 90000))
        return VideoInfo(int(stream.frames), _rate(stream), width, height, time_base, orientation)


def read_frames(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """The video's frames, in order, as RGB ``(H, W, 3)`` uint8, upright (rotation applied)."""
    return (rgb for rgb, _ in _decode(Path(path), probe(path)))


def _decode(path: Path, info: VideoInfo) -> Iterator[tuple[np.ndarray, Fraction | None]]:
    """Each frame upright, with its time in seconds (None when the container gives none)."""
    av = _av()
    stored = (info.height, info.width) if info.orientation[0] == 0 else (info.width, info.height)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if (frame.width, frame.height) != stored:  # also bounds memory: one frame
                    raise DataError(
                        f"{path}: frame size changes from {stored[0]}x{stored[1]} to "
                        f"{frame.width}x{frame.height} mid-video; not supported"
                    )
                time = None
                if frame.pts is not None and frame.time_base:
                    time = frame.pts * Fraction(frame.time_base)
                yield _upright(frame.to_ndarray(format="rgb24"), info.orientation), time
        except av.error.FFmpegError as exc:
            raise DataError(f"{path}: damaged video ({exc})") from exc


def check_outputs(
    out: str | os.PathLike[str],
    frames_dir: str | os.PathLike[str] | None = None,
    inputs: Iterable[str | os.PathLike[str]] = (),
) -> None:
    """OutputError unless the overlay ``out`` and ``frames_dir`` can be written without loss.

    ``out`` may be absent or a regular file (it is replaced atomically), never a folder, a link,
    a FIFO or a device, nor one of ``inputs`` (an input video is never written over). An
    existing ``frames_dir`` must hold only label frames a previous run wrote.
    """
    out = Path(out)
    try:
        mode = os.lstat(out).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a link, FIFO or device)"
        raise OutputError(f"{out}: exists and is {kind}; fcnseg writes only over its own files")
    if mode is not None and any(_same_file(out, Path(i)) for i in inputs):
        raise OutputError(f"{out}: is one of the inputs; choose another --out")
    check_writable_file(out, "overlay video")
    if frames_dir is not None:
        check_frames_dir(Path(frames_dir))


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_frames_dir(folder: Path) -> None:
    """OutputError unless ``folder`` is absent, or a real folder holding only label frames
    (``000000.png``...) that fcnseg wrote: those a new run may replace."""
    try:
        mode = os.lstat(folder).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        raise OutputError(f"{folder}: exists and is not a folder (the label frames go there)")
    for entry in sorted(folder.iterdir()):
        if not _is_our_frame(entry):
            raise OutputError(
                f"{folder}: holds {entry.name}, which fcnseg did not write; move it (or the "
                "folder) away, or choose another --out"
            )


def _is_our_frame(path: Path) -> bool:
    if not FRAME_NAME.fullmatch(path.name) or not stat.S_ISREG(os.lstat(path).st_mode):
        return False
    try:
        with Image.open(path) as img:  # the header and the chunks before the pixels only
            return img.format == "PNG" and img.info.get(FRAME_MARK[0]) == FRAME_MARK[1]
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return False


class _FramesFolder:
    """The label frames go to a fresh hidden folder beside ``target``, which replaces
    ``target`` only once every frame is written: a damaged video or Ctrl-C leaves the old
    folder (or none) and no partial one, and the result holds exactly this run's frames."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.tmp.mkdir()  # fails if it exists: the folder is ours alone
        except OSError as exc:
            raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from exc
        self.info = PngImagePlugin.PngInfo()
        self.info.add_text(*FRAME_MARK)

    def save(self, index: int, labels: np.ndarray) -> None:
        try:
            Image.fromarray(labels).save(self.tmp / f"{index:06d}.png", pnginfo=self.info)
        except OSError as exc:
            raise OutputError(f"{self.target}: cannot write ({exc.strerror or exc})") from exc

    def commit(self) -> None:
        """Swap the new folder in; the old one's frames (all ours, checked again) go."""
        check_frames_dir(self.target)  # again: something may have appeared since the check
        old = None
        if self.target.exists():
            old = self.target.parent / f".{self.target.name}.{secrets.token_hex(4)}.old.tmp"
            os.rename(self.target, old)
        try:
            os.rename(self.tmp, self.target)
        except BaseException as exc:  # Ctrl-C included: the earlier folder goes back
            if old is not None:
                os.rename(old, self.target)
            if isinstance(exc, OSError):
                raise OutputError(f"{self.target}: cannot write ({exc.strerror or exc})") from exc
            raise
        if old is not None:
            try:
                for frame in old.iterdir():
                    frame.unlink()
                old.rmdir()
            except OSError:
                pass  # the new frames are in place; a hidden leftover of ours does no harm

    def discard(self) -> None:
        """Remove the new folder if it was not swapped in (it holds only this run's frames)."""
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)


def segment_video(
    seg: Any,
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    frames_dir: str | os.PathLike[str] | None = None,
    alpha: float = 0.5,
    tta_scales: Sequence[float] | None = None,
    tta_flip: bool | None = None,
    batch_size: int | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> VideoInfo:
    """Write the overlay video of ``src`` to ``out`` (MP4, H.264, upright, same size and
    timestamps as the frames shown).

    Args:
        seg: a :class:`fcnseg.api.Segmenter` (from :func:`fcnseg.load`).
        src: the video to segment.
        out: the MP4 file to write (replaced atomically once complete; see
            :func:`check_outputs` for what it may not replace).
        frames_dir: if given, each frame's class ids are written there losslessly as
            ``000000.png``, ``000001.png``... (``(H, W)`` uint8, like ``fcnseg predict``'s
            ``_label.png``). The folder appears whole once every frame is done, holding exactly
            this video's frames; an earlier one is replaced only if fcnseg wrote all of it.
        alpha: weight of the colours in the overlay, 0 (frame only) to 1.
        tta_scales, tta_flip: test-time augmentation, as in :meth:`Segmenter.predict`.
        batch_size: frames segmented together.
            (``None``, for these three: the Segmenter's own, from :func:`fcnseg.load`.)
        on_frame: called with the number of frames done after each frame (a progress bar).

    Returns:
        The input's :class:`VideoInfo`, with ``frames`` the number of frames written.

    Raises:
        DataError: ``src`` is not a readable video, has no frames or is damaged part-way.
        OutputError: ``out`` or ``frames_dir`` may not be written (nothing is written then).
    """
    src, out = Path(src), Path(out)
    check_outputs(out, frames_dir, inputs=(src,))
    info = probe(src)
    times: deque[Fraction | None] = deque()  # the timestamps of frames read, not yet written

    def frames() -> Iterator[np.ndarray]:
        for rgb, time in _decode(src, info):
            times.append(time)
            yield rgb

    folder = _FramesFolder(Path(frames_dir)) if frames_dir is not None else None
    done = 0

    def write(tmp: str) -> None:
        nonlocal done
        labelled = seg.predict_iter(
            frames(), batch_size=batch_size, tta_scales=tta_scales, tta_flip=tta_flip
        )
        with _Encoder(tmp, info) as encoder:
            for rgb, labels in labelled:
                encoder.add(seg.overlay(rgb, labels, alpha=alpha), times.popleft())
                if folder is not None:
                    folder.save(done, labels)
                done += 1
                if on_frame is not None:
                    on_frame(done)
        if done == 0:  # probe saw a frame; guard anyway against an unplayable empty file
            raise DataError(f"{src}: the video has no frames")

    try:
        atomic_write(out, write)
        if folder is not None:
            folder.commit()
    finally:
        if folder is not None:
            folder.discard()
    return VideoInfo(done, info.rate, info.width, info.height, info.time_base)


class _Encoder:
    """H.264 in MP4 on the input's clock (each frame keeps its time, so a variable frame rate
    stays in sync); 4:2:0 colour where the size allows it (even sides, which every player
    supports), else 4:4:4."""

    def __init__(self, path: str, info: VideoInfo) -> None:
        av = _av()
        self.container = av.open(path, mode="w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=info.rate)
        self.stream.width, self.stream.height = info.width, info.height
        even = info.width % 2 == 0 and info.height % 2 == 0
        self.stream.pix_fmt = "yuv420p" if even else "yuv444p"
        self.stream.options = {"crf": "18", "preset": "veryfast"}
        self.time_base = info.time_base
        self.stream.codec_context.time_base = self.stream.time_base = info.time_base
        # A frame without a time comes one frame period after the one before.
        self._period = max(1, round(1 / (info.rate * info.time_base)))
        self._av, self._start, self._last = av, None, None

    def add(self, rgb: np.ndarray, time: Fraction | None) -> None:
        """Encode one frame shown at ``time`` seconds (times count from the first frame's)."""
        if self._last is None and time is not None:
            self._start = time
        if time is not None and self._start is not None:
            pts = round((time - self._start) / self.time_base)
        else:
            pts = 0 if self._last is None else self._last + self._period
        if self._last is not None and pts <= self._last:
            pts = self._last + 1  # the encoder needs increasing times; keep the order
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base, self._last = pts, self.time_base, pts
        self.container.mux(self.stream.encode(frame))

    def __enter__(self) -> _Encoder:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.container.mux(self.stream.encode(None))  # flush the encoder
        finally:
            self.container.close()
