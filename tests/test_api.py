"""The Python API: fcnseg.load(...).predict(x) for every input type, and its refusals."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from agreement import assert_labels_agree
from PIL import Image

import fcnseg
from fcnseg.cli import main
from fcnseg.errors import FcnsegError

CLASSES = ("background", "disk", "box", "bar")


@pytest.fixture(scope="module")
def ckpt(lite0_checkpoint: Path) -> Path:
    return lite0_checkpoint


@pytest.fixture(scope="module")
def seg(ckpt: Path) -> fcnseg.Segmenter:
    return fcnseg.load(ckpt, device="cpu")


def _picture(h: int = 61, w: int = 83, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgb[h // 4 : h // 2, w // 3 : w // 2] = (240, 30, 20)  # a flat patch: a region to segment
    return rgb


def test_import_fcnseg_is_light_and_exports_the_api() -> None:
    code = (
        "import sys, fcnseg; assert 'torch' not in sys.modules, 'torch imported'; "
        "print(fcnseg.__version__, 'load' in dir(fcnseg), callable(fcnseg.load))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == [fcnseg.__version__, "True", "True"]


def test_load_describes_the_model(seg: fcnseg.Segmenter, ckpt: Path) -> None:
    assert seg.classes == CLASSES and seg.num_classes == 4
    assert len(seg.palette) == 4 and all(len(c) == 3 for c in seg.palette)
    assert seg.ignore_index == 255 and seg.info.class_names == CLASSES
    assert seg.device == torch.device("cpu") and seg.precision == "fp32"
    text = repr(seg)
    assert "fcn8s_efficientnet_lite0" in text and "4 classes" in text and str(ckpt) in text


def test_every_input_type_gives_the_same_labels(seg: fcnseg.Segmenter, tmp_path: Path) -> None:
    rgb = _picture()
    png = tmp_path / "p.png"
    Image.fromarray(rgb).save(png)
    ref = seg.predict(png)
    assert ref.shape == (61, 83) and ref.dtype == np.uint8
    assert len(np.unique(ref)) >= 2  # varied labels, so the comparisons below can fail
    chw = torch.from_numpy(rgb).permute(2, 0, 1)
    alpha = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    same = {
        "str path": str(png),
        "PIL image": Image.open(png),
        "uint8 HWC array": rgb,
        "RGBA array": alpha,
        "float32 HWC array": rgb.astype(np.float32) / np.float32(255),
        "uint8 tensor": chw,
        "float tensor": chw.float() / 255,
        "uint16 array": rgb.astype(np.uint16) * 257,
    }
    for name, x in same.items():
        np.testing.assert_array_equal(seg.predict(x), ref, err_msg=name)
    readonly = np.asarray(Image.open(png))
    assert not readonly.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns about non-writable arrays: not from us
        np.testing.assert_array_equal(seg.predict(readonly), ref)
    gray = rgb[..., 1]
    Image.fromarray(gray).save(tmp_path / "g.png")
    ref_gray = seg.predict(tmp_path / "g.png")
    assert (ref_gray != ref).any()  # grayscale is another picture...
    for x in (gray, gray[..., None], torch.from_numpy(gray), torch.from_numpy(gray)[None]):
        np.testing.assert_array_equal(seg.predict(x), ref_gray)  # ...read the same every way


def test_lists_run_in_batches_and_keep_order(seg: fcnseg.Segmenter) -> None:
    pics = [_picture(seed=s) for s in range(5)] + [_picture(40, 50, seed=9), _picture(seed=1)]
    singles = [seg.predict(p) for p in pics]
    for batch_size in (1, 3, 8):
        got = seg.predict(pics, batch_size=batch_size)
        assert isinstance(got, list) and len(got) == len(pics)
        for a, b, p in zip(got, singles, pics, strict=True):
            assert_labels_agree(a, b, seg.probabilities(p), err_msg=f"batch {batch_size}")
    assert seg.predict([]) == []
    assert isinstance(seg.predict(tuple(pics[:2])), list)


def test_predict_iter_reads_lazily(seg: fcnseg.Segmenter) -> None:
    taken = []

    def images():
        for s in range(10):
            taken.append(s)
            yield _picture(32, 32, seed=s)

    it = seg.predict_iter(images(), batch_size=3)
    first_input, first = next(it)
    assert first.shape == (32, 32) and first_input.shape == (32, 32, 3)
    assert len(taken) <= 4  # one batch read ahead (and the next image that closes it), not all
    assert len(list(it)) == 9


def test_predict_equals_the_cli_label_png(seg, ckpt: Path, tmp_path: Path) -> None:
    png = tmp_path / "street.png"
    Image.fromarray(_picture(97, 131)).save(png)
    argv = ["predict", "--checkpoint", str(ckpt), "--input", str(png), "--out", str(tmp_path)]
    assert main([*argv, "--device", "cpu"]) == 0
    cli = np.asarray(Image.open(tmp_path / "street_label.png"))
    assert_labels_agree(cli, seg.predict(png), seg.probabilities(png))
    tiled = ["--tile", "64", "--overlap", "16", "--tta-flip", "--out", str(tmp_path / "t")]
    assert main([*argv[:-2], *tiled]) == 0
    cli = np.asarray(Image.open(tmp_path / "t" / "street_label.png"))
    options = {"tile": 64, "overlap": 16, "tta_flip": True}
    assert_labels_agree(cli, seg.predict(png, **options), seg.probabilities(png, **options))


def test_probabilities(seg: fcnseg.Segmenter) -> None:
    rgb = _picture(70, 90)
    for kw in ({}, {"tile": 64, "overlap": 16}, {"tta_flip": True, "tta_scales": (0.75, 1.0)}):
        p = seg.probabilities(rgb, **kw)
        assert p.shape == (4, 70, 90) and p.dtype == np.float32, kw
        np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-5)
        agree = (p.argmax(0) == seg.predict(rgb, **kw)).mean()
        assert agree > 0.999, (kw, agree)  # equal up to float ties
    with pytest.raises(FcnsegError, match="one image"):
        seg.probabilities([rgb, rgb])


def test_large_images_are_tiled_at_the_input_size(seg: fcnseg.Segmenter) -> None:
    rgb = _picture(150, 170)
    tiled = seg.predict(rgb, tile=64, overlap=32)
    assert tiled.shape == (150, 170)
    from fcnseg.inference import predict_labels

    image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
    np.testing.assert_array_equal(tiled, predict_labels(seg.model, image, tile=64, overlap=32))
    assert (tiled != seg.predict(rgb)).any()  # the tiles were really used


def test_colorize_and_overlay(seg: fcnseg.Segmenter) -> None:
    rgb = _picture()
    labels = seg.predict(rgb)
    colors = seg.colorize(labels)
    assert colors.shape == (61, 83, 3) and colors.dtype == np.uint8
    for c in np.unique(labels):
        assert (colors[labels == c] == seg.palette[c]).all()
    np.testing.assert_array_equal(seg.overlay(rgb, labels, alpha=0), rgb)
    np.testing.assert_array_equal(seg.overlay(rgb, labels, alpha=1), colors)
    half = seg.overlay(torch.from_numpy(rgb).permute(2, 0, 1), labels)
    expected = np.round(0.5 * rgb.astype(np.float32) + 0.5 * colors).astype(np.uint8)
    np.testing.assert_array_equal(half, expected)


def test_bad_inputs_raise_one_line(seg: fcnseg.Segmenter, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    rgb = _picture(20, 30)
    cases = {
        "not an image file": (lambda: seg.predict(text), "unreadable or truncated image"),
        "missing file": (lambda: seg.predict(tmp_path / "none.png"), "file not found"),
        "2-channel array": (lambda: seg.predict(rgb[..., :2]), "expected (H, W, 3)"),
        "float above 1": (lambda: seg.predict(rgb.astype(np.float32)), "expected [0, 1]"),
        "negative float": (lambda: seg.predict(-np.ones((5, 5, 3))), "expected [0, 1]"),
        "NaN": (lambda: seg.predict(np.full((5, 5, 3), np.nan)), "expected [0, 1]"),
        "int64 array": (lambda: seg.predict(rgb.astype(np.int64)), "int64"),
        "channels-first array": (lambda: seg.predict(rgb.transpose(2, 0, 1)), "channels-first"),
        "channels-last tensor": (lambda: seg.predict(torch.from_numpy(rgb)), "channels-last"),
        "batch tensor": (lambda: seg.predict(torch.rand(2, 3, 8, 8)), "list(t)"),
        "empty array": (lambda: seg.predict(np.zeros((0, 4, 3), np.uint8)), "empty"),
        "a dict": (lambda: seg.predict({"image": rgb}), "got dict"),
        "bad item in a list": (lambda: seg.predict([rgb, rgb[..., :2]]), "input 1"),
        "tile <= overlap": (lambda: seg.predict(rgb, tile=100, overlap=128), "larger than"),
        "tile 0": (lambda: seg.predict(rgb, tile=0), "--tile must be >= 64"),
        "tile 1": (lambda: seg.predict(rgb, tile=1), "--tile must be >= 64"),
        "negative overlap": (lambda: seg.predict(rgb, overlap=-200), "--overlap must be >= 0"),
        "negative scale": (lambda: seg.predict(rgb, tta_scales=(-1,)), "positive"),
        "batch size 0": (lambda: seg.predict([rgb], batch_size=0), "--batch-size"),
        "bad resize": (lambda: seg.predict(rgb, resize="huge"), "--resize must be"),
        "mistyped option": (lambda: seg.config.replace(tiles=64), "did you mean 'tile'?"),
        "a URL": (lambda: seg.predict("https://example.com/a.jpg"), "is a URL: download it"),
        "an s3 URL": (lambda: seg.predict("s3://bucket/a.jpg"), "s3://bucket/a.jpg is a URL"),
        "empty folder": (lambda: seg.predict(tmp_path / "empty"), "no images in this folder"),
        "empty glob": (lambda: seg.predict(str(tmp_path / "*.tif")), "matches no images"),
        "overlay size": (lambda: seg.overlay(rgb, np.zeros((5, 5), np.uint8)), "W x H"),
        "alpha 2": (lambda: seg.overlay(rgb, seg.predict(rgb), alpha=2), "from 0 to 1"),
        "float labels": (lambda: seg.colorize(np.zeros((5, 5))), "integer"),
        "bad device": (lambda: fcnseg.load(text, device="gpu7"), "unknown device"),
        "bad precision": (lambda: fcnseg.load(text, precision="fp8"), "fp32, bf16, int8"),
        "mistyped built-in": (lambda: fcnseg.load("camvid_lite"), "did you mean camvid_lite2?"),
        "not a checkpoint": (lambda: fcnseg.load(text), "checkpoint"),
    }
    for name, (call, expected) in cases.items():
        with pytest.raises(FcnsegError) as info:
            call()
        message = str(info.value)
        assert expected in message and "\n" not in message, (name, message)
    assert str(text) in str(pytest.raises(FcnsegError, seg.predict, str(text)).value)
