"""The working scale, the inference options declared once, and what the API takes as input.

Images run resized to the size the model was trained at (a checkpoint records it), labels come
back at the input's own size; ``resize="none"`` is the old behaviour; tiles are cut in model
pixels; memory stays bounded for phone-sized photos. The options of predict, evaluate, app, the
API and evaluate_checkpoint come from one declaration.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import fcnseg
from fcnseg.api import Segmenter
from fcnseg.cli import build_parser, main
from fcnseg.data.synthetic import CLASSES, PALETTE
from fcnseg.errors import FcnsegError
from fcnseg.inference import InferenceConfig, predict_labels, tile_starts
from fcnseg.inference.options import CALL_OPTIONS, OPTION_NAMES
from fcnseg.options import flag

INFO = fcnseg.api.DatasetInfo.from_dict({"name": "toy", "classes": CLASSES, "palette": PALETTE})


class PixelModel(nn.Module):
    """Logits from each pixel's colour alone (a 1x1 convolution), recording the input sizes it
    sees: tiles and resizing can then be checked exactly."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, num_classes, 1)
        nn.init.normal_(self.conv.weight, std=3.0)
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        return self.conv(x)


def _segmenter(working_size: int | None = 64, **options) -> Segmenter:
    return Segmenter(PixelModel(), INFO, working_size=working_size, device="cpu", **options)


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour fields (so resizing keeps the picture), uint8 ``(h, w, 3)``."""
    rng = np.random.default_rng(seed)
    small = torch.from_numpy(rng.random((1, 3, 6, 8), dtype=np.float32))
    big = F.interpolate(small, (h, w), mode="bicubic", align_corners=False)[0].clamp(0, 1)
    return (big.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _clear(scores: torch.Tensor, margin: float = 0.05) -> np.ndarray:
    """Pixels whose two best class scores ``(C, H, W)`` are apart by ``margin`` (no near-ties)."""
    top2 = scores.topk(2, dim=0).values
    return (top2[0] - top2[1] > margin).numpy()


def test_images_run_at_the_working_size_and_labels_come_back_at_theirs() -> None:
    seg = _segmenter(working_size=64)
    rgb = _photo(300, 400)
    labels = seg.predict(rgb)
    assert labels.shape == (300, 400)
    assert seg.model.seen[-1][-2:] == (48, 64)  # long side 64, aspect kept
    # The class scores (not the labels) are resampled: the reference does it with F.interpolate.
    x = torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255
    small = F.interpolate(x, (48, 64), mode="bilinear", antialias=True)
    scores = F.interpolate(seg.model.conv(small), (300, 400), mode="bilinear")[0].detach()
    clear = _clear(scores)
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(labels[clear], scores.argmax(0).numpy()[clear])
    # An explicit size, and none: the image's own size.
    seg.predict(rgb, resize=100)
    assert seg.model.seen[-1][-2:] == (75, 100)
    seg.predict(rgb, resize="none")
    assert seg.model.seen[-1][-2:] == (300, 400)
    probs = seg.probabilities(rgb)
    assert probs.shape == (4, 300, 400)
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-5)
    assert (probs.argmax(0) == labels).mean() > 0.999


def test_resize_none_is_the_old_inference() -> None:
    seg = _segmenter(working_size=64)
    rgb = _photo(90, 130)
    image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    old = seg.model.conv(image[None])[0].argmax(0).numpy()  # what inference did: native size
    np.testing.assert_array_equal(seg.predict(rgb, resize="none"), old)
    np.testing.assert_array_equal(predict_labels(seg.model, image), old)
    tiled = seg.predict(rgb, resize="none", tile=64, overlap=16)
    np.testing.assert_array_equal(tiled, old)  # a per-pixel model: tiles change nothing


def test_tiles_are_cut_after_resizing_in_model_pixels_without_seams() -> None:
    seg = _segmenter(working_size=256)
    rgb = _photo(900, 1200, seed=3)
    whole = seg.predict(rgb, tile=1024)
    seg.model.seen.clear()
    tiled = seg.predict(rgb, tile=64, overlap=16)
    assert seg.model.seen and all(max(s[-2:]) <= 64 for s in seg.model.seen)  # model pixels
    windows = len(tile_starts(192, 64, 16)) * len(tile_starts(256, 64, 16))
    assert len(seg.model.seen) == windows  # the 192x256 resized image's tiles, nothing more
    x = torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255
    small = F.interpolate(x, (192, 256), mode="bilinear", antialias=True)
    scores = F.interpolate(seg.model.conv(small), (900, 1200), mode="bilinear")[0].detach()
    clear = _clear(scores, 1e-3)
    np.testing.assert_array_equal(tiled[clear], whole[clear])
    assert (tiled == whole).mean() > 0.999


def test_tta_scales_are_relative_to_the_working_scale() -> None:
    seg = _segmenter(working_size=64)
    seg.predict(_photo(300, 400), tta_scales=(0.5, 1.0, 2.0))
    assert [s[-2:] for s in seg.model.seen[-3:]] == [(24, 32), (48, 64), (96, 128)]


def test_a_checkpoint_without_a_working_size_says_once_what_is_assumed(capsys) -> None:
    seg = _segmenter(working_size=None)
    rgb = _photo(50, 70)
    seg.predict(rgb)
    seg.predict([rgb, rgb])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "records no working size" in err[0] and "--resize" in err[0]
    assert seg.model.seen[-1][-2:] == (50, 70)  # its own size, as before
    _segmenter(working_size=None).predict(rgb, resize="none")
    assert capsys.readouterr().err == ""


def test_the_working_size_of_a_split_and_of_the_builtin_model() -> None:
    """(That training records it: tests/test_training_core.py, test_poly_schedule_ends_at_zero.)"""
    from fcnseg.data.scan import SplitScan

    scan = SplitScan([], [], __import__("collections").Counter({(360, 480): 3, (100, 90): 1}),
                     np.zeros(1), np.zeros(1), np.zeros(1))  # fmt: skip
    assert scan.median_long_side == 480
    from fcnseg.zoo import load_checkpoint

    ckpt = load_checkpoint("camvid_lite2")  # a built-in: its manifest records it
    assert ckpt["working_size"] == 480
    assert fcnseg.load("camvid_lite2", device="cpu", backend="torch").working_size == 480


def test_a_phone_sized_photo_is_labelled_with_bounded_memory(tmp_path: Path) -> None:
    """4000x3000, 11 classes: the scores at the photo's size alone would be 0.5 GB (float32);
    resampled in bands, the labels need a fraction of that."""
    code = textwrap.dedent(
        """
        import resource, sys, torch
        sys.path.insert(0, sys.argv[1])
        from test_working_scale import PixelModel, INFO
        from fcnseg.api import Segmenter
        from fcnseg.data.info import DatasetInfo
        info = DatasetInfo.from_dict({"name": "x", "classes": [f"c{i}" for i in range(11)]})
        seg = Segmenter(PixelModel(11), info, working_size=480, device="cpu")
        seg.predict(torch.rand(3, 300, 400))  # warm up
        photo = torch.rand(3, 3000, 4000)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        labels = seg.predict(photo)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert labels.shape == (3000, 4000), labels.shape
        print((after - before) / 1024)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    grown_mb = float(out.stdout.split()[-1])
    assert grown_mb < 350, f"peak memory grew by {grown_mb:.0f} MB"


# -- what the API takes ---------------------------------------------------------------------------


def test_a_folder_or_a_glob_gives_one_result_per_image_in_sorted_order(tmp_path: Path) -> None:
    seg = _segmenter(working_size=64)
    folder = tmp_path / "photos"
    folder.mkdir()
    pictures = {"c.png": _photo(40, 60, 1), "a.png": _photo(50, 50, 2), "b.jpg": _photo(30, 80, 3)}
    for name, rgb in pictures.items():
        Image.fromarray(rgb).save(folder / name, quality=95)
    (folder / "notes.txt").write_text("not an image")
    singles = {name: seg.predict(folder / name) for name in pictures}
    got = seg.predict(folder)
    assert isinstance(got, list) and len(got) == 3
    for labels, name in zip(got, ["a.png", "b.jpg", "c.png"], strict=True):
        np.testing.assert_array_equal(labels, singles[name])
    pngs = seg.predict(str(folder / "*.png"))
    assert [p.shape for p in pngs] == [(50, 50), (40, 60)]
    streamed = list(seg.predict_iter(str(folder)))
    assert [Path(p).name for p, _ in streamed] == ["a.png", "b.jpg", "c.png"]
    assert [Path(p).name for p, _ in seg.predict_iter(folder / "*.jpg")] == ["b.jpg"]
    # ** reaches into folders at any depth (it matched nothing before: glob was not recursive)
    assert len(seg.predict(str(tmp_path / "**" / "*.png"))) == 2
    with pytest.raises(FcnsegError, match="empty path"):  # '' named the current folder
        seg.predict("")


def test_a_video_is_iterated_frame_by_frame(tmp_path: Path) -> None:
    pytest.importorskip("av", reason="PyAV is not installed (pip install 'fcnseg[video]')")
    from fcnseg.inference.video import VideoInfo, _Encoder

    path = tmp_path / "clip.mp4"
    with _Encoder(str(path), VideoInfo(3, __import__("fractions").Fraction(5), 64, 48)) as enc:
        for i in range(3):
            enc.add(_photo(48, 64, seed=i), None)
    seg = _segmenter(working_size=32)
    frames = list(seg.predict_iter(path))
    assert len(frames) == 3
    assert all(f.shape == (48, 64, 3) and lab.shape == (48, 64) for f, lab in frames)
    with pytest.raises(FcnsegError, match="is a video: go through its frames with predict_iter"):
        seg.predict(path)


def test_a_url_is_one_clear_line(tmp_path: Path, capsys) -> None:
    seg = _segmenter()
    for url in ("https://example.com/street.jpg", "http://x/a.png", "s3://bucket/key.jpg"):
        with pytest.raises(FcnsegError, match=f"^{url} is a URL: download it first"):
            seg.predict(url)
        with pytest.raises(FcnsegError, match="is a URL"):
            list(seg.predict_iter([url]))
    argv = ["predict", "--checkpoint", "x.pt", "--input", "https://example.com/a.jpg"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "fcnseg predict: error: https://example.com/a.jpg is a URL: download it first " \
        "(fcnseg reads local files only)"  # fmt: skip


# -- one declaration of the options ---------------------------------------------------------------


def _subparser(name: str):
    action = next(a for a in build_parser()._actions if a.dest == "command")
    return action.choices[name]


def test_every_inference_option_reaches_the_flags_and_the_api() -> None:
    from fcnseg.app import PAGE_OPTIONS
    from fcnseg.evaluation import evaluate_checkpoint

    for command, skipped in (("predict", ()), ("evaluate", ()), ("app", PAGE_OPTIONS)):
        flags = {o for a in _subparser(command)._actions for o in a.option_strings}
        missing = [flag(n) for n in OPTION_NAMES if n not in skipped and flag(n) not in flags]
        assert not missing, (command, missing)
    assert set(PAGE_OPTIONS) <= set(OPTION_NAMES)

    def keywords(fn) -> dict:
        params = inspect.signature(fn).parameters.values()
        return {p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY}

    assert set(keywords(fcnseg.load)) == set(OPTION_NAMES)
    assert set(OPTION_NAMES) <= set(keywords(evaluate_checkpoint))
    for method in (Segmenter.predict, Segmenter.predict_iter):
        assert set(keywords(method)) == set(CALL_OPTIONS), method
    assert set(keywords(Segmenter.probabilities)) == set(CALL_OPTIONS) - {"batch_size"}
    for fn in (fcnseg.load, evaluate_checkpoint, Segmenter.predict, Segmenter.probabilities):
        defaults = {k: v for k, v in keywords(fn).items() if k in OPTION_NAMES}
        assert set(defaults.values()) == {None}, fn  # None: the declaration's default


def test_one_set_of_defaults() -> None:
    from fcnseg.commands.tta import inference_config

    required = {
        "predict": ["--checkpoint", "c", "--input", "i", "--out", "o"],
        "evaluate": ["--checkpoint", "c", "--data", "d"],
        "app": [],
    }
    for command, argv in required.items():
        args = _subparser(command).parse_args(argv)
        assert inference_config(args) == InferenceConfig(), command
    seg = _segmenter()
    assert seg.config == InferenceConfig(device="cpu")
    assert InferenceConfig().batch_size == 4 and InferenceConfig().backend == "auto"
    text = _subparser("predict").format_help()
    assert "(default 1024)" in text and "(default auto)" in text and "camvid_lite2" in text
    assert "camvid_lite2" in _subparser("export").format_help()


def test_bad_inference_options_are_one_line() -> None:
    cases = {
        "tile": (1, "--tile must be >= 64"),
        "overlap": (-1, "--overlap must be >= 0"),
        "resize": ("big", "--resize must be auto"),
        "tta_scales": ((0,), "--tta-scales must be positive"),
        "batch_size": (0, "--batch-size must be >= 1"),
        "precision": ("fp8", "--precision must be one of"),
        "backend": ("tensorrt", "--backend must be one of"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(FcnsegError, match=message):
            InferenceConfig(**{name: value})
    with pytest.raises(FcnsegError, match="did you mean 'tile'"):
        InferenceConfig().replace(tiles=64)


def test_a_mistyped_builtin_name_gets_a_suggestion(tmp_path: Path, capsys) -> None:
    argv = ["predict", "--checkpoint", "camvid_lite", "--input", str(tmp_path), "--out"]
    Image.fromarray(_photo(20, 20)).save(tmp_path / "a.png")
    assert main([*argv, str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("checkpoint not found; did you mean camvid_lite2? (fcnseg models lists "
                        "the built-in models)"), err  # fmt: skip
    with pytest.raises(FcnsegError, match="did you mean camvid_lite2"):
        fcnseg.load("camvid-lite2.pt")


def test_evaluate_on_a_dataset_without_test_suggests_val(tmp_path: Path, capsys) -> None:
    from random_model import random_checkpoint

    from fcnseg.data.synthetic import make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "d", counts={"train": 2, "val": 1}, size=(32, 32))
    ckpt = random_checkpoint(tmp_path / "m.pt")
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no 'test' split (found: train, val); evaluate another with --split val" in err


@pytest.mark.parametrize(
    ("small", "big"), [((37, 53), (370, 531)), ((48, 64), (30, 41)), ((1, 5), (7, 9))]
)
def test_labels_at_is_the_argmax_of_the_resampled_scores(small, big) -> None:
    """Only the pixels between differently labelled model pixels are interpolated: the result
    must still be the argmax of ``F.interpolate``'s scores everywhere but at near-ties."""
    from fcnseg.inference.resize import labels_at, probabilities_at

    torch.manual_seed(0)
    smooth = F.interpolate(torch.randn(1, 5, 4, 6), small, mode="bilinear")[0] * 4
    for scores in (smooth, smooth + torch.randn(5, *small)):  # smooth fields, then noisy ones
        reference = F.interpolate(scores[None], big, mode="bilinear")[0]
        clear = _clear(reference, 1e-4)
        got = labels_at(scores, big)
        assert got.shape == big and got.dtype == np.uint8
        np.testing.assert_array_equal(got[clear], reference.argmax(0).numpy()[clear])
        probs = probabilities_at(scores, big, softmax=True)
        np.testing.assert_allclose(probs, reference.softmax(0).numpy(), atol=1e-3)


def test_windows_that_barely_advance_are_refused_not_run_for_hours() -> None:
    """--tile 64 --overlap 63 advances one pixel at a time: millions of windows for a photo (a
    hostile pass waited minutes at 0%); more than MAX_TILES windows is one line."""
    from fcnseg.inference.core import MAX_TILES, predict_labels

    model = torch.nn.Conv2d(3, 2, 1)
    image = torch.rand(3, 1, 20000)
    with pytest.raises(FcnsegError, match="windows of 64 pixels advancing by 1: raise --tile"):
        predict_labels(model, image, tile=64, overlap=63)
    assert predict_labels(model, torch.rand(3, 8, 3000), tile=64, overlap=32).shape == (8, 3000)
    assert MAX_TILES >= 1000
