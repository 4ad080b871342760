"""``fcnseg predict`` on video files: the options and the loop, kept apart from the image path."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fcnseg.inference.video import VideoInfo, check_outputs, is_video, probe
from fcnseg.progress import progress_bar

if TYPE_CHECKING:
    from fcnseg.api import Segmenter


def add_video_arguments(p: argparse.ArgumentParser) -> None:
    """``--save-frames`` (the overlay video itself is always written)."""
    p.add_argument(
        "--save-frames",
        action="store_true",
        help="for video inputs (.mp4, .mov, .mkv, .avi, .webm...): also write each frame's "
        "class ids as {name}_labels/000000.png, ... (lossless; the folder appears whole once "
        "the video is done and holds exactly its frames; an earlier one is replaced only if "
        "fcnseg wrote everything in it). The overlay video {name}_overlay.mp4 is always "
        "written: upright (a phone's rotation applied), same size and frame times. Videos, "
        "like images, are refused when their frames are over the pixel limit",
    )


def split_videos(files: list[Path]) -> tuple[list[Path], list[tuple[Path, VideoInfo]]]:
    """``(images, videos)``; each video is opened now, so a bad one fails before any work."""
    videos = [(f, probe(f)) for f in files if is_video(f)]
    return [f for f in files if not is_video(f)], videos


def check_video_outputs(
    args: argparse.Namespace,
    videos: list[tuple[Path, VideoInfo]],
    out: Path,
    names: dict[Path, str],
) -> None:
    """Every video's outputs checked before any work: ``{name}_overlay.mp4`` is absent or a
    regular file that is none of the inputs (``names``' keys), and an existing
    ``{name}_labels/`` (with ``--save-frames``) holds only frames fcnseg wrote."""
    for path, _ in videos:
        name = names[path]
        frames_dir = out / f"{name}_labels" if args.save_frames else None
        check_outputs(out / f"{name}_overlay.mp4", frames_dir, inputs=names)


def predict_videos(
    seg: Segmenter,
    args: argparse.Namespace,
    videos: list[tuple[Path, VideoInfo]],
    out: Path,
    tta: dict,
    names: dict[Path, str] | None = None,
) -> None:
    """Segment each video into ``out``, with a progress bar and the frames per second.

    ``names``: each input's output name (unique among all inputs), else its stem.
    """
    from fcnseg.inference.video import segment_video

    for path, info in videos:
        name = names[path] if names else path.stem
        target = out / f"{name}_overlay.mp4"
        frames_dir = out / f"{name}_labels" if args.save_frames else None
        start = time.perf_counter()
        with progress_bar(total=info.frames or None, desc=path.name, unit="frame") as bar:
            done = segment_video(
                seg,
                path,
                target,
                frames_dir=frames_dir,
                alpha=getattr(args, "alpha", 0.5),
                tta_scales=tta["scales"],
                tta_flip=tta["flip"],
                batch_size=max(1, args.batch_size),
                on_frame=lambda _: bar.update(1),
            )
        seconds = time.perf_counter() - start
        print(
            f"{path}: {done.frames} frames {done.width}x{done.height} at {done.fps:g} fps in "
            f"{seconds:.1f} s ({done.frames / max(seconds, 1e-9):.1f} frames/s) -> {target}"
            + (f" and {frames_dir}/" if frames_dir else "")
        )
