"""fcnseg predict on videos: an overlay video of the same size and frame rate, label maps per
frame equal to predicting each decoded frame on its own."""

from __future__ import annotations

import os
import stat
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from agreement import assert_labels_agree
from PIL import Image
from random_model import random_checkpoint

from fcnseg.cli import main

av = pytest.importorskip("av", reason="PyAV is not installed (pip install 'fcnseg[video]')")


def scene(frames: int, size: tuple[int, int]) -> list[np.ndarray]:
    """Upright frames ``(H, W, 3)``: a window panning over a wide synthetic scene."""
    from fcnseg.data.synthetic import render

    h, w = size
    wide, _ = render(np.random.default_rng(0), h, w + 4 * frames)
    return [np.ascontiguousarray(wide[:, 4 * i : 4 * i + w]) for i in range(frames)]


def write_clip(
    path: Path,
    frames: list[np.ndarray],
    rate: Fraction,
    *,
    codec: str = "libx264",
    pts: list[int] | None = None,
    rotation: int | None = None,
    tags: dict[str, str] | None = None,
) -> Path:
    """Store ``frames`` as they are (H.264 unless ``codec`` says otherwise), at ``pts`` in
    units of 1/rate (0, 1, 2... by default), with a display matrix turning them ``rotation``
    degrees counter-clockwise for display, and stream ``tags``."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height = w, h
        if codec == "mjpeg":
            stream.pix_fmt = "yuvj420p"
        else:
            stream.pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        stream.metadata.update(tags or {})
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i if pts is None else pts[i]
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def make_clip(path: Path, frames: int, size: tuple[int, int], rate: Fraction) -> Path:
    """A synthetic clip: a window panning over a wide synthetic scene, H.264 in MP4."""
    return write_clip(path, scene(frames, size), rate)


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


def predict(ckpt: Path, inputs: list[Path], out: Path, *extra: str) -> int:
    args = ["predict", "--checkpoint", str(ckpt), "--input", *map(str, inputs), "--out", str(out)]
    return main([*args, "--device", "cpu", *extra])


def one_line_error(capsys, *words: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith("fcnseg predict: error: ") and err.count("\n") == 1, err
    assert all(w in err for w in words), err
    return err


def clear_labels(seg, rgb: np.ndarray, margin: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """The labels of ``rgb`` and a mask of the pixels whose top two class probabilities are
    apart by ``margin`` (where two ways of computing them must agree)."""
    probs = seg.probabilities(rgb)
    top2 = np.sort(probs, axis=0)[-2:]
    return probs.argmax(0), top2[1] - top2[0] > margin


# -- videos as phones record them: stored sideways, shown upright ---------------------------------


@pytest.mark.parametrize(
    ("suffix", "stored_turn", "how"),
    [
        (".mp4", -1, {"rotation": 90}),  # a display matrix: turn 90° counter-clockwise to show
        (".mkv", 1, {"tags": {"rotate": "90"}}),  # an older rotate tag: 90° clockwise
    ],
)
def test_sideways_clip_comes_out_upright(ckpt, tmp_path, capsys, suffix, stored_turn, how) -> None:
    import fcnseg
    from fcnseg.inference.video import probe, read_frames

    upright = scene(4, (64, 48))  # portrait, as the phone was held
    stored = [np.ascontiguousarray(np.rot90(f, stored_turn)) for f in upright]  # 48 high, 64 wide
    clip = write_clip(tmp_path / f"phone{suffix}", stored, Fraction(12), **how)
    info = probe(clip)
    assert (info.width, info.height) == (48, 64)
    frames = list(read_frames(clip))
    # Exactly the stored frames as decoded, turned back; and (H.264 is lossy) near the upright
    # scene, much nearer than to the scene upside down: the turn goes the right way.
    for got, raw, want in zip(frames, decoded(clip), upright, strict=True):
        np.testing.assert_array_equal(got, np.rot90(raw, -stored_turn))
        error = np.abs(got.astype(np.float32) - want).mean()
        assert (
            error < 20 and error < 0.5 * np.abs(np.rot90(got, 2).astype(np.float32) - want).mean()
        )

    out = tmp_path / "out"
    assert predict(ckpt, [clip], out, "--save-frames") == 0
    assert "48x64" in capsys.readouterr().out
    with av.open(str(out / "phone_overlay.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (48, 64)
        shown = list(container.decode(stream))
    assert [f.rotation for f in shown] == [0] * 4  # plays upright with no tag
    seg = fcnseg.load(ckpt, device="cpu")
    for i, rgb in enumerate(frames):
        saved = np.asarray(Image.open(out / "phone_labels" / f"{i:06d}.png"))
        expected, clear = clear_labels(seg, rgb)
        assert saved.shape == (64, 48) and clear.mean() > 0.9
        np.testing.assert_array_equal(saved[clear], expected[clear], err_msg=f"frame {i}")
        overlay = shown[i].to_ndarray(format="rgb24").astype(np.float32)
        assert np.abs(overlay - seg.overlay(rgb, saved)).mean() < 10, f"frame {i}"


@pytest.mark.parametrize(
    ("degrees", "hflip"), [(90, False), (180, False), (-90, False), (0, True), (90, True)]
)
def test_every_quarter_turn_and_mirror_is_undone(tmp_path: Path, degrees, hflip) -> None:
    from fcnseg.inference.video import probe, read_frames

    clip = tmp_path / "turned.mp4"
    frames = scene(2, (48, 64))
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.set_display_rotation(degrees, hflip=hflip)  # turn, then mirror, to show
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    shown = [np.rot90(raw, degrees // 90) for raw in decoded(clip)]
    shown = [np.fliplr(f) if hflip else f for f in shown]
    assert (probe(clip).height, probe(clip).width) == shown[0].shape[:2]
    for got, want in zip(read_frames(clip), shown, strict=True):
        np.testing.assert_array_equal(got, want)


def test_variable_frame_rate_keeps_each_frame_time(ckpt, tmp_path: Path) -> None:
    def times(path: Path) -> list[float]:
        with av.open(str(path)) as container:
            return [float(f.time) for f in container.decode(video=0)]

    pts = [0, 1, 3, 4, 8, 9]  # in 1/12 s: pauses of 2 and 4 frame periods
    clip = write_clip(tmp_path / "vfr.mp4", scene(6, (48, 64)), Fraction(12), pts=pts)
    assert times(clip) == pytest.approx([p / 12 for p in pts], abs=1e-3)
    assert predict(ckpt, [clip], tmp_path / "out") == 0
    assert times(tmp_path / "out" / "vfr_overlay.mp4") == pytest.approx(times(clip), abs=1e-3)


# -- refusals: one line, exit 2, nothing written ---------------------------------------------------


def test_video_over_the_pixel_limit_is_refused_before_decoding(
    ckpt, tmp_path: Path, capsys, monkeypatch
) -> None:
    from fcnseg.errors import DataError
    from fcnseg.inference.video import probe

    clip = write_clip(tmp_path / "bomb.avi", scene(2, (48, 64)), Fraction(12), codec="mjpeg")
    monkeypatch.setenv("FCNSEG_MAX_IMAGE_PIXELS", "3000")  # 64x48 = 3,072 pixels
    with pytest.raises(DataError, match="3,072 pixels"):
        probe(clip)
    out = tmp_path / "out"
    assert predict(ckpt, [clip], out) == 2
    one_line_error(capsys, str(clip), "64x48", "FCNSEG_MAX_IMAGE_PIXELS")
    assert not out.exists()


def test_video_without_frames_is_refused(ckpt, tmp_path: Path, capsys) -> None:
    clip = tmp_path / "empty.avi"
    with av.open(str(clip), "w") as container:  # a 64x48 MJPEG stream, no frame in it
        stream = container.add_stream("mjpeg", rate=Fraction(12))
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuvj420p"
        container.start_encoding()
    out = tmp_path / "out"
    assert predict(ckpt, [clip], out) == 2
    one_line_error(capsys, str(clip), "no frames")
    assert not out.exists()


def test_overlay_never_replaces_an_input_nor_a_fifo(ckpt, tmp_path: Path, capsys) -> None:
    a = make_clip(tmp_path / "a.mp4", 2, (48, 64), Fraction(12))
    other = make_clip(tmp_path / "a_overlay.mp4", 3, (48, 64), Fraction(12))  # a's overlay name
    before = other.read_bytes()
    assert predict(ckpt, [a, other], tmp_path) == 2  # --out: the inputs' folder
    one_line_error(capsys, str(other), "one of the inputs")
    assert other.read_bytes() == before

    fifo = tmp_path / "out" / "a_overlay.mp4"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    assert predict(ckpt, [a], fifo.parent) == 2
    one_line_error(capsys, str(fifo), "not a regular file")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(fifo.parent) == ["a_overlay.mp4"]


# -- the frames folder: exactly this run's frames, whole or not at all ----------------------------


def files_in(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def label_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_save_frames_replaces_an_earlier_longer_run(ckpt, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    make_clip(tmp_path / "clip.mp4", 5, (48, 64), Fraction(12))
    assert predict(ckpt, [tmp_path / "clip.mp4"], out, "--save-frames") == 0
    make_clip(tmp_path / "clip.mp4", 3, (48, 64), Fraction(12))  # same name, shorter
    assert predict(ckpt, [tmp_path / "clip.mp4"], out, "--save-frames") == 0
    assert label_names(out / "clip_labels") == ["000000.png", "000001.png", "000002.png"]
    assert sorted(os.listdir(out)) == ["clip_labels", "clip_overlay.mp4"]  # no temporaries
    capsys.readouterr()

    # A folder holding anything fcnseg did not write is refused, and left as it was.
    for foreign in ("notes.txt", "000003.png"):
        path = out / "clip_labels" / foreign
        Image.new("L", (4, 4)).save(path, format="PNG")  # a PNG, but not one of ours
        assert predict(ckpt, [tmp_path / "clip.mp4"], out, "--save-frames") == 2
        one_line_error(capsys, foreign, "did not write")
        assert len(label_names(out / "clip_labels")) == 4
        path.unlink()


@pytest.mark.parametrize("failure", ["damaged", "interrupted"])
def test_no_partial_frames_folder_after_a_failure(
    ckpt, tmp_path: Path, capsys, monkeypatch, failure
) -> None:
    from fcnseg.inference import video

    out = tmp_path / "out"
    clip = write_clip(tmp_path / "clip.avi", scene(6, (48, 64)), Fraction(12), codec="mjpeg")
    earlier_run = tmp_path / "earlier" / "clip.avi"  # another video of that name: other frames
    earlier_run.parent.mkdir()
    write_clip(earlier_run, scene(8, (48, 64))[::-1], Fraction(12), codec="mjpeg")
    frames_left = [1000]  # frames encoded before a Ctrl-C
    add = video._Encoder.add

    def add_or_interrupt(self, *args) -> None:
        if frames_left[0] == 0:
            raise KeyboardInterrupt
        frames_left[0] -= 1
        add(self, *args)

    monkeypatch.setattr(video._Encoder, "add", add_or_interrupt)
    if failure == "damaged":  # frame 4's JPEG overwritten: the decoder fails there
        data = bytearray(clip.read_bytes())
        starts = [i for i in range(len(data) - 1) if data[i : i + 2] == b"\xff\xd8"]
        data[starts[4] + 2 : starts[5]] = b"\xff" * (starts[5] - starts[4] - 2)
        clip.write_bytes(bytes(data))

    def failing_run() -> None:
        frames_left[0] = 3 if failure == "interrupted" else 1000
        assert predict(ckpt, [clip], out, "--save-frames") == (
            130 if failure == "interrupted" else 2
        )
        err = capsys.readouterr().err
        assert ("damaged video" in err) == (failure == "damaged"), err
        frames_left[0] = 1000

    # With no earlier results, nothing is left; with some, they stand whole and unmixed.
    failing_run()
    assert os.listdir(out) == []
    assert predict(ckpt, [earlier_run], out, "--save-frames") == 0
    earlier = files_in(out)
    assert len(earlier) == 9
    failing_run()
    assert sorted(os.listdir(out)) == ["clip_labels", "clip_overlay.mp4"]
    assert files_in(out) == earlier
