"""fcnseg predict on videos: an overlay video of the same size and frame rate, label maps per
frame equal to predicting each decoded frame on its own."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from agreement import assert_labels_agree
from PIL import Image
from random_model import random_checkpoint

from fcnseg.cli import main

av = pytest.importorskip("av", reason="PyAV is not installed (pip install 'fcnseg[video]')")


def make_clip(path: Path, frames: int, size: tuple[int, int], rate: Fraction) -> Path:
    """A synthetic clip: a window panning over a wide synthetic scene, H.264 in MP4."""
    from fcnseg.data.synthetic import render

    h, w = size
    scene, _ = render(np.random.default_rng(0), h, w + 4 * frames)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(scene[:, 4 * i : 4 * i + w]), format="rgb24"
            )
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_checkpoint(tmp_path_factory.mktemp("video") / "random.pt")


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.mark.parametrize(
    ("size", "rate"), [((48, 64), Fraction(12)), ((45, 61), Fraction(30000, 1001))]
)
def test_video_overlay_and_label_frames(ckpt, tmp_path: Path, capsys, size, rate) -> None:
    import fcnseg

    clip = make_clip(tmp_path / "clip.mp4", 6, size, rate)
    out = tmp_path / "out"
    args = ["predict", "--checkpoint", str(ckpt), "--input", str(clip), "--out", str(out)]
    assert main([*args, "--save-frames", "--batch-size", "4", "--device", "cpu"]) == 0
    assert "frames/s" in capsys.readouterr().out
    with av.open(str(out / "clip_overlay.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (size[1], size[0])
        assert stream.average_rate == rate
        overlays = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    frames = decoded(clip)  # what was segmented: the input as decoded, not as drawn (lossy)
    assert len(overlays) == len(frames) == 6  # batches of 4 and 2
    assert sorted(p.name for p in (out / "clip_labels").iterdir()) == [
        f"{i:06d}.png" for i in range(6)
    ]
    seg = fcnseg.load(ckpt, device="cpu")
    classes_seen = set()
    for i, (rgb, shown) in enumerate(zip(frames, overlays, strict=True)):
        expected = seg.predict(rgb)
        saved = np.asarray(Image.open(out / "clip_labels" / f"{i:06d}.png"))  # in a batch of 4
        assert_labels_agree(saved, expected, seg.probabilities(rgb), err_msg=f"frame {i}")
        classes_seen |= set(np.unique(expected).tolist())
        # The overlay video is lossy (H.264): near the overlay of that frame, not equal to it,
        # and much nearer to it than to the frame without colours.
        want, shown = seg.overlay(rgb, expected).astype(np.float32), shown.astype(np.float32)
        error = np.abs(shown - want).mean()
        assert error < 10 and error < 0.5 * np.abs(shown - rgb).mean(), f"frame {i}"
    assert len(classes_seen) >= 2  # the comparison is not between constant maps


def test_bad_video_is_one_line_and_writes_nothing(ckpt, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    out = tmp_path / "out"
    args = ["predict", "--checkpoint", str(ckpt), "--input", str(bad), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith(f"fcnseg predict: error: {bad}: not a readable video")
        and err.count("\n") == 1
    )
    assert not out.exists()
