"""Segment a video: an overlay video of the same size and frame rate, and label maps per frame.

Decoding and encoding go through PyAV (``pip install 'fcnseg[video]'``), whose wheels carry their
own FFmpeg, so no system codecs are needed. Frames are segmented in batches, in order, with
memory bounded by one batch whatever the video's length.

Example:
    >>> import fcnseg
    >>> from fcnseg.video import segment_video
    >>> seg = fcnseg.load("camvid_lite0")  # doctest: +SKIP
    >>> segment_video(seg, "clip.mp4", "out/clip_overlay.mp4")  # doctest: +SKIP
    VideoInfo(frames=300, rate=Fraction(30, 1), width=640, height=360)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fcnseg.checkpoint import atomic_write
from fcnseg.errors import DataError, FcnsegError

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg"})


def is_video(path: str | os.PathLike[str]) -> bool:
    """True for a file name with a video suffix (``.mp4``, ``.mov``, ``.mkv``...)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds: frames (0 when the container does not say), frame rate, size."""

    frames: int
    rate: Fraction
    width: int
    height: int

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
    av = _av()
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise DataError(f"{path}: not a readable video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: no video stream in it")
    return container


def _rate(stream: Any) -> Fraction:
    return Fraction(stream.average_rate or stream.guessed_rate or stream.base_rate or 25)


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Frame count, frame rate and size of a video file; DataError when it cannot be read."""
    with _open(Path(path)) as container:
        stream = container.streams.video[0]
        return VideoInfo(int(stream.frames), _rate(stream), stream.width, stream.height)


def read_frames(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """The video's frames, in order, as RGB ``(H, W, 3)`` uint8."""
    av = _av()
    with _open(Path(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            raise DataError(f"{path}: damaged video ({exc})") from exc


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
    """Write the overlay video of ``src`` to ``out`` (MP4, H.264, same size and frame rate).

    Args:
        seg: a :class:`fcnseg.api.Segmenter` (from :func:`fcnseg.load`).
        src: the video to segment.
        out: the MP4 file to write (replaced atomically once complete).
        frames_dir: if given, each frame's class ids are written there losslessly as
            ``000000.png``, ``000001.png``... (``(H, W)`` uint8, like ``fcnseg predict``'s
            ``_label.png``).
        alpha: weight of the colours in the overlay, 0 (frame only) to 1.
        tta_scales, tta_flip: test-time augmentation, as in :meth:`Segmenter.predict`.
        batch_size: frames segmented together.
            (``None``, for these three: the Segmenter's own, from :func:`fcnseg.load`.)
        on_frame: called with the number of frames done after each frame (a progress bar).

    Returns:
        The input's :class:`VideoInfo`, with ``frames`` the number of frames written.
    """
    src, out = Path(src), Path(out)
    info = probe(src)
    frames = read_frames(src)
    labelled = seg.predict_iter(
        frames, batch_size=batch_size, tta_scales=tta_scales, tta_flip=tta_flip
    )
    if frames_dir is not None:
        Path(frames_dir).mkdir(parents=True, exist_ok=True)
    done = 0

    def write(tmp: str) -> None:
        nonlocal done
        with _Encoder(tmp, info) as encoder:
            for rgb, labels in labelled:
                encoder.add(seg.overlay(rgb, labels, alpha=alpha))
                if frames_dir is not None:
                    Image.fromarray(labels).save(Path(frames_dir) / f"{done:06d}.png")
                done += 1
                if on_frame is not None:
                    on_frame(done)

    atomic_write(out, write)
    return VideoInfo(done, info.rate, info.width, info.height)


class _Encoder:
    """H.264 in MP4 at the input's frame rate; 4:2:0 colour where the size allows it (even
    sides, which every player supports), else 4:4:4."""

    def __init__(self, path: str, info: VideoInfo) -> None:
        av = _av()
        self.container = av.open(path, mode="w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=info.rate)
        self.stream.width, self.stream.height = info.width, info.height
        even = info.width % 2 == 0 and info.height % 2 == 0
        self.stream.pix_fmt = "yuv420p" if even else "yuv444p"
        self.stream.options = {"crf": "18", "preset": "veryfast"}
        self._av, self._index = av, 0

    def add(self, rgb: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self._index
        self._index += 1
        self.container.mux(self.stream.encode(frame))

    def __enter__(self) -> _Encoder:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self.container.mux(self.stream.encode(None))  # flush the encoder
        finally:
            self.container.close()
