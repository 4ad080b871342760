"""fcnseg predict: tiling equals untiled, options checked up front, unique output names,
missing masks warned about and skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from agreement import assert_labels_agree
from PIL import Image
from torch import nn

from fcnseg.cli import main
from fcnseg.inference import predict_labels, prepare


class LocalModel(nn.Module):
    """Scores at a pixel from the pixels within ``radius`` (two 5x5 convolutions: 4) only.

    Integer weights on integer inputs in float64 make every score exact, and a per-class offset
    of a quarter breaks ties the same way everywhere, so tiling cannot change a single label.
    """

    radius = 4

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv1 = nn.Conv2d(3, 6, 5, padding=2).double()
        self.conv2 = nn.Conv2d(6, num_classes, 5, padding=2).double()
        for conv in (self.conv1, self.conv2):
            conv.weight.data = torch.randint(-1, 2, conv.weight.shape, generator=g).double()
            conv.bias.data = torch.randint(-20, 21, conv.bias.shape, generator=g).double()
        self.register_buffer("offset", torch.arange(num_classes).double().view(1, -1, 1, 1) / 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.round(x.double() * 255)
        return self.conv2(F.relu(self.conv1(x))) + self.offset


SIZES = [(1, 1), (9, 40), (33, 33), (70, 90), (64, 200), (101, 37)]
TILINGS = [(16, 8), (17, 9), (32, 8), (40, 30), (64, 12), (9, 8)]


@pytest.fixture
def one_thread():
    """Thousands of tiny convolutions: threads only add synchronisation (50x slower when the
    machine is busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_tiled_equals_untiled_exactly_for_a_local_model(one_thread) -> None:
    model = LocalModel().eval()
    rng = np.random.default_rng(0)
    checked = 0
    for h, w in SIZES:
        image = torch.from_numpy(rng.integers(0, 256, (3, h, w)).astype(np.float32) / 255)
        whole = predict_labels(model, image, tile=10_000)
        assert len(np.unique(whole)) >= min(2, h * w)  # labels vary: equality means something
        for tile, overlap in TILINGS:
            assert overlap // 2 >= LocalModel.radius  # the kept centre sees all it needs
            if (tile, overlap) == (9, 8) and h * w > 1100:
                continue  # one-pixel steps: tens of thousands of windows; small images only
            tiled = predict_labels(model, image, tile=tile, overlap=overlap, flip=True)
            np.testing.assert_array_equal(
                tiled, predict_labels(model, image, tile=10_000, flip=True), err_msg=f"{tile}"
            )
            np.testing.assert_array_equal(
                predict_labels(model, image, tile=tile, overlap=overlap), whole
            )
            checked += 1
    assert checked >= 30


@pytest.fixture(scope="module")
def fitted_lite0() -> nn.Module:
    """FCN-8s on Lite0's ImageNet backbone (offline weights), its head fitted in a few seconds to
    the synthetic shapes: a real FCN whose labels come from real features and a trained head."""
    from fcnseg.data.synthetic import render
    from fcnseg.models import build_model

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pairs = [render(rng, 64, 80) for _ in range(8)]
    x = torch.from_numpy(np.stack([p[0] for p in pairs])).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(np.stack([p[1] for p in pairs])).long()
    model = build_model("fcn8s_efficientnet_lite0", num_classes=4, weights_backbone="imagenet")
    with torch.no_grad():
        feats = model.eval().encode(x)  # the frozen backbone runs once
    head = [p for n, p in model.named_parameters() if not n.startswith("backbone")]
    opt = torch.optim.Adam(head, lr=0.01)
    for _ in range(30):
        loss = F.cross_entropy(model.decode(feats, (64, 80)), y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3, loss.item()
    return prepare(model, torch.device("cpu"))


def test_tiled_agrees_with_untiled_for_a_real_fcn(fitted_lite0: nn.Module) -> None:
    from fcnseg.data.synthetic import render

    rng = np.random.default_rng(1)
    agreement = {}
    for h, w in [(120, 170), (97, 211)]:
        rgb, mask = render(rng, h, w)
        image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255
        whole = predict_labels(fitted_lite0, image, tile=10_000)
        valid = mask != 255
        assert (whole == mask)[valid].mean() > 0.9  # the head really segments
        assert len(np.unique(whole)) >= 2
        for tile, overlap in [(48, 16), (64, 32), (97, 33), (128, 0), (100, 64)]:
            tiled = predict_labels(fitted_lite0, image, tile=tile, overlap=overlap)
            agreement[(h, w, tile, overlap)] = (tiled == whole).mean()
    # Windows of 48-128 pixels see far less context than the whole image (Lite0's receptive
    # field is hundreds of pixels), yet at least 97% of the labels agree (measured: 0.985-0.999
    # with a 150-step head; the CamVid Lite0 recipe gives 0.92-0.98 on 360x480 at these tiles).
    assert min(agreement.values()) > 0.97, agreement


def _ckpt_args(ckpt: Path, inputs: list[Path], out: Path, *extra: str) -> list[str]:
    return [
        "predict",
        "--checkpoint",
        str(ckpt),
        "--input",
        *[str(p) for p in inputs],
        "--out",
        str(out),
        "--device",
        "cpu",
        *extra,
    ]


def _image(path: Path, h: int = 24, w: int = 32, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--tile", "100"], "--tile (100) must be larger than --overlap (128)"),
        (["--tile", "128"], "--tile (128) must be larger than --overlap (128)"),
        (["--tile", "0"], "--tile must be >= 64, got 0"),
        (["--tile", "1", "--overlap", "0"], "--tile must be >= 64, got 1"),
        (["--tile", "-5", "--overlap", "0"], "--tile must be >= 64"),
        (["--overlap", "-200"], "--overlap must be >= 0"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--resize", "huge"], "--resize must be auto"),
        (["--alpha", "1.5"], "--alpha must be from 0 to 1"),
        (["--alpha", "-0.1"], "--alpha must be from 0 to 1"),
        (["--alpha", "nan"], "--alpha must be from 0 to 1"),
        (["--tta-scales", "0"], "--tta-scales must be positive"),
        (["--device", "gpu7"], "unknown device 'gpu7'"),
    ],
)
def test_bad_options_fail_before_anything_is_loaded(
    tmp_path: Path, capsys, extra: list[str], expected: str
) -> None:
    image = _image(tmp_path / "in.png")
    out = tmp_path / "out"
    # The checkpoint does not exist: an error about it would mean the options came too late.
    assert main(_ckpt_args(tmp_path / "absent.pt", [image], out, *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fcnseg predict: error: "), err
    assert expected in err[0], err
    assert not out.exists()


def test_out_that_is_a_file_is_refused(lite0_checkpoint: Path, tmp_path: Path, capsys) -> None:
    image = _image(tmp_path / "in.png")
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    assert main(_ckpt_args(lite0_checkpoint, [image], notes)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file; the output folder (--out) must be a folder" in err[0]
    assert notes.read_text() == "keep me"


def test_output_names_are_unique_per_input(lite0_checkpoint: Path, tmp_path: Path, capsys) -> None:
    day, night = tmp_path / "day", tmp_path / "night"
    inputs = [
        _image(day / "a.jpg", seed=1),
        _image(day / "a.png", seed=2),
        _image(night / "a.png", 30, 20, seed=3),
        _image(day / "b.png", seed=4),
    ]
    out = tmp_path / "out"
    # Folders and files mixed, and day/b.png named twice (given, and inside day/).
    assert main(_ckpt_args(lite0_checkpoint, [day, night, day / "b.png"], out)) == 0
    printed = capsys.readouterr().out
    labels = sorted(p.name for p in out.glob("*_label.png"))
    assert labels == [
        "a.jpg_label.png",
        "b_label.png",
        "day_a.png_label.png",
        "night_a.png_label.png",
    ]
    assert "4 image(s)" in printed
    assert len(list(out.iterdir())) == 3 * 4  # predict, label, overlay for each: none lost
    # Each output is the prediction of its own input (not overwritten by a namesake).
    from fcnseg.api import load

    seg = load(lite0_checkpoint, device="cpu")
    for src, name in zip(inputs, ["a.jpg", "day_a.png", "night_a.png", "b"], strict=True):
        got = np.asarray(Image.open(out / f"{name}_label.png"))  # predicted in a batch
        assert_labels_agree(got, seg.predict(src), seg.probabilities(src), err_msg=name)


def test_truth_with_a_missing_mask_warns_and_finishes(
    lite0_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    images, masks = tmp_path / "images", tmp_path / "masks"
    for i in range(3):
        _image(images / f"im{i}.png", seed=i)
    masks.mkdir()
    for i in (0, 2):
        Image.fromarray(np.full((24, 32), i % 4, np.uint8)).save(masks / f"im{i}.png")
    out = tmp_path / "out"
    assert main(_ckpt_args(lite0_checkpoint, [images], out, "--truth", str(masks))) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and str(images / "im1.png") in warnings[0], warnings
    assert "3 image(s)" in captured.out and "2 with truth" in captured.out
    for i in range(3):
        for kind in ("predict", "label", "overlay"):
            assert (out / f"im{i}_{kind}.png").is_file()
    triplets = sorted(p.name for p in out.glob("*_triplet.png"))
    assert triplets == ["im0_triplet.png", "im2_triplet.png"]
    assert not (out / "im1_true.png").exists()
    # Namesakes from two folders share one mask: said once, both triplets written.
    _image(tmp_path / "more" / "im0.png", seed=7)
    out3 = tmp_path / "out3"
    argv = _ckpt_args(lite0_checkpoint, [images, tmp_path / "more"], out3, "--truth", str(masks))
    assert main(argv) == 0
    shared = [line for line in capsys.readouterr().err.splitlines() if "named alike" in line]
    assert len(shared) == 1 and str(masks / "im0.png") in shared[0] and "2 inputs" in shared[0]
    assert {p.name for p in out3.glob("*_triplet.png")} == {
        "images_im0.png_triplet.png",
        "more_im0.png_triplet.png",
        "im2_triplet.png",
    }
    # A truth folder that matches no input at all is a mistake: refused before any work.
    empty = tmp_path / "empty"
    empty.mkdir()
    out2 = tmp_path / "out2"
    assert main(_ckpt_args(lite0_checkpoint, [images], out2, "--truth", str(empty))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no mask named like any input" in err[0]
    assert not out2.exists()


def _top(picture: np.ndarray, h: int, w: int) -> np.ndarray:
    """The ``h x w`` picture above a legend strip (centred when the legend is wider)."""
    x0 = (picture.shape[1] - w) // 2
    return picture[:h, x0 : x0 + w]


def test_alpha_sets_the_overlay_weight(lite0_checkpoint: Path, tmp_path: Path) -> None:
    image = _image(tmp_path / "in.png", 40, 56)
    rgb = np.asarray(Image.open(image))
    for alpha in ("0", "1"):
        out = tmp_path / alpha
        assert main(_ckpt_args(lite0_checkpoint, [image], out, "--alpha", alpha)) == 0
        picture = _top(np.asarray(Image.open(out / "in_overlay.png")), 40, 56)
        colours = _top(np.asarray(Image.open(out / "in_predict.png")), 40, 56)
        np.testing.assert_array_equal(picture, rgb if alpha == "0" else colours)


def test_prediction_pictures_have_a_legend(lite0_checkpoint: Path, tmp_path: Path) -> None:
    from fcnseg.api import load

    seg = load(lite0_checkpoint, device="cpu")
    labels = np.zeros((60, 300), np.uint8)
    labels[:, 200:] = 1  # background and disk; box and bar absent
    for picture in (
        seg.colorize(labels, legend=True),
        seg.overlay(labels * 0, labels, 1, legend=True),
    ):
        assert picture.shape[1] == 300 and picture.shape[0] > 60
        np.testing.assert_array_equal(picture[:60], seg.colorize(labels))  # untouched above
        strip = picture[60:].reshape(-1, 3)
        count = {c: int((strip == seg.palette[c]).all(1).sum()) for c in range(4)}
        assert count[0] >= 81 and count[1] >= 81, count  # a swatch per present class...
        assert count[2] == 0 and count[3] == 0, count  # ...and none for absent ones
    # The command's pictures carry it; the label map stays raw.
    image = _image(tmp_path / "in.png", 30, 40)
    assert main(_ckpt_args(lite0_checkpoint, [image], tmp_path / "o")) == 0
    label = np.asarray(Image.open(tmp_path / "o" / "in_label.png"))
    assert label.shape == (30, 40) and label.dtype == np.uint8
    for kind in ("predict", "overlay"):
        picture = np.asarray(Image.open(tmp_path / "o" / f"in_{kind}.png"))
        assert picture.shape[0] > 30 and picture.shape[1] >= 40, kind
    predict = np.asarray(Image.open(tmp_path / "o" / "in_predict.png"))
    np.testing.assert_array_equal(_top(predict, 30, 40), seg.colorize(label))
