"""evaluate and predict on a checkpoint from fcnseg train; tiling; bad inputs."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from agreement import assert_labels_agree
from conftest import train_args
from PIL import Image
from torch import nn

from fcnseg.cli import main
from fcnseg.inference import class_scores, predict_labels
from fcnseg.inference.precision import cpu_bf16_feature


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from fcnseg.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("trained")
    data = make_synthetic_dataset(
        root / "data", counts={"train": 8, "val": 4, "test": 4}, size=(40, 48), seed=5
    )
    assert main(train_args(data, root / "run", "--epochs", "1")) == 0
    return data, root / "run" / "checkpoint_best.pt"


def test_evaluate_json_and_pictures(trained, tmp_path: Path, capsys) -> None:
    data, ckpt = trained
    out_json = tmp_path / "m.json"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(ckpt),
                "--data",
                str(data),
                "--json",
                str(out_json),
                "--out",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    m = json.loads(out_json.read_text())
    keys = {"pixel_acc", "mean_acc", "mean_iu", "fw_iu", "per_class_iu", "num_images", "tta"}
    assert set(m) == keys and m["tta"] == {"scales": [1.0], "flip": False}
    assert m["num_images"] == 4 and all(
        0 <= m[k] <= 1 for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")
    )
    assert set(m["per_class_iu"]) == {"background", "disk", "box", "bar"}
    for name in ("confusion_matrix.png", "per_class_iou.png", "worst_images.png"):
        assert (tmp_path / "ev" / name).is_file()
    assert "frequency-weighted IU" in capsys.readouterr().out


@pytest.mark.parametrize("size", [(1, 1), (7, 3), (97, 131)])
def test_predict_any_size(trained, tmp_path: Path, size) -> None:
    _, ckpt = trained
    path = tmp_path / "in.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)).save(
        path
    )
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(ckpt),
                "--input",
                str(path),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 0
    )
    label = np.array(Image.open(tmp_path / "o" / "in_label.png"))
    assert label.shape == size and label.max() < 4
    picture = np.array(Image.open(tmp_path / "o" / "in_predict.png"))  # with a legend below
    assert picture.shape[0] > size[0] and picture.shape[1] >= size[1] and picture.shape[2] == 3
    assert (tmp_path / "o" / "in_overlay.png").is_file()


def test_predict_triplets_with_truth(trained, tmp_path: Path) -> None:
    data, ckpt = trained
    args = [
        "predict",
        "--checkpoint",
        str(ckpt),
        "--input",
        str(data / "test" / "images"),
        "--truth",
        str(data / "test" / "masks"),
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    for suffix in ("original", "true", "predict", "triplet", "label", "overlay"):
        assert (tmp_path / f"test_000_{suffix}.png").is_file(), suffix


class PixelModel(nn.Module):
    """A per-pixel 'model': its label is a function of the pixel alone, so tiling must not matter."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        return torch.stack([x[:, 0], x[:, 1], x[:, 2]], 1) * self.w


@pytest.mark.parametrize("shape", [(70, 90), (64, 200), (33, 33)])
def test_tiled_prediction_equals_untiled(shape) -> None:
    image = torch.rand(3, *shape)
    model = PixelModel()
    whole = predict_labels(model, image, tile=10_000)
    tiled = predict_labels(model, image, tile=32, overlap=8)
    np.testing.assert_array_equal(tiled, whole)


class LeftRightModel(nn.Module):
    """Scores that depend on the column: not flip-symmetric, so flip TTA has work to do."""

    def forward(self, x):
        ramp = torch.linspace(-1, 1, x.shape[-1]).expand_as(x[:, :1])
        return torch.cat([x[:, :1] + ramp, x[:, 1:2] - ramp, x[:, 2:3]], 1)


def test_flip_tta_is_mirror_equivariant_and_multiscale_keeps_the_size() -> None:
    model = LeftRightModel()
    x = torch.rand(2, 3, 37, 53)
    plain = class_scores(model, x)
    flipped = class_scores(model, x, flip=True)
    assert not torch.allclose(plain.softmax(1), flipped)  # the model is not symmetric...
    mirrored = class_scores(model, x.flip(-1), flip=True)
    torch.testing.assert_close(mirrored, flipped.flip(-1))  # ...but flip TTA is
    multi = class_scores(model, x, scales=(0.5, 1.0, 1.7), flip=True)
    assert multi.shape == (2, 3, 37, 53)
    torch.testing.assert_close(multi.sum(1), torch.ones(2, 37, 53))  # mean of probabilities
    # A per-pixel model is flip-equivariant: flip TTA and tiling change nothing.
    image = torch.rand(3, 70, 90)
    np.testing.assert_array_equal(
        predict_labels(PixelModel(), image, tile=32, overlap=8, flip=True),
        predict_labels(PixelModel(), image, tile=10_000),
    )
    with pytest.raises(ValueError, match="positive"):
        class_scores(model, x, scales=(0.0,))


def test_evaluate_and_predict_with_tta(trained, tmp_path: Path, capsys) -> None:
    data, ckpt = trained
    tta = ["--tta-scales", "0.75", "1", "1.25", "--tta-flip"]
    out_json = tmp_path / "m.json"
    args = ["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--json", str(out_json)]
    assert main([*args, "--out", str(tmp_path / "ev"), *tta]) == 0
    assert json.loads(out_json.read_text())["tta"] == {"scales": [0.75, 1.0, 1.25], "flip": True}
    image = tmp_path / "odd.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (41, 57, 3), np.uint8)).save(image)
    pred = ["predict", "--checkpoint", str(ckpt), "--input", str(image), "--out", str(tmp_path)]
    assert main([*pred, *tta]) == 0
    assert np.asarray(Image.open(tmp_path / "odd_label.png")).shape == (41, 57)
    assert main([*pred, "--tta-scales", "-1"]) == 2
    assert "--tta-scales must be positive" in capsys.readouterr().err


def test_tiled_real_model_keeps_the_input_size(trained) -> None:
    from fcnseg.checkpoint import load_checkpoint, model_from_checkpoint

    model, _ = model_from_checkpoint(load_checkpoint(trained[1]))
    image = torch.rand(3, 150, 170)
    whole = predict_labels(model.eval(), image, tile=10_000)
    tiled = predict_labels(model, image, tile=96, overlap=32)
    assert tiled.shape == whole.shape == (150, 170)


def test_bad_inputs_one_line_nonzero(trained, tmp_path: Path, capsys) -> None:
    data, ckpt = trained
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    cases = {
        "unreadable or truncated image": [
            "predict",
            "--checkpoint",
            str(ckpt),
            "--input",
            str(bad),
            "--out",
            str(tmp_path / "o"),
        ],
        "no such file or folder": [
            "predict",
            "--checkpoint",
            str(ckpt),
            "--input",
            str(tmp_path / "none.png"),
            "--out",
            str(tmp_path / "o"),
        ],
    }
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    cases["not an fcnseg checkpoint"] = [
        "evaluate",
        "--checkpoint",
        str(foreign),
        "--data",
        str(data),
    ]
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(ckpt.read_bytes()[:5000])
    cases["not a readable fcnseg checkpoint"] = [
        "evaluate",
        "--checkpoint",
        str(truncated),
        "--data",
        str(data),
    ]
    evil = tmp_path / "evil.pt"
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil.write_bytes(pickle.dumps({"format": "fcnseg-checkpoint", "x": Exploit()}))
    cases["not a readable fcnseg checkpoint "] = [
        "predict",
        "--checkpoint",
        str(evil),
        "--input",
        str(bad),
        "--out",
        str(tmp_path / "o"),
    ]
    for expected, argv in cases.items():
        assert main(argv) == 2, expected
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fcnseg")]
        assert len(err) == 1 and expected.strip() in err[0], (expected, err)
    assert not marker.exists()


def test_export_onnx_matches_pytorch_at_odd_sizes(trained, tmp_path: Path, capsys) -> None:
    pytest.importorskip("onnxruntime")
    _, ckpt = trained
    out = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "max |diff|" in line]
    assert len(lines) == 2 and "97x131" in lines[0]
    assert all(float(line.rsplit("=", 1)[1]) < 1e-4 for line in lines)


def test_export_lite0_with_dynamic_sizes(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from fcnseg.inference.export import check_onnx, export_onnx
    from fcnseg.models import build_model

    torch.manual_seed(0)
    # With input_scale: the internal resizing must follow the dynamic height and width too
    # (the plain Lite0 path is the same graph without the two resizes).
    model = build_model("fcn8s_efficientnet_lite0", num_classes=5, input_scale=1.25).eval()
    for name, p in model.named_parameters():
        if "score" in name and p.ndim == 4:
            nn.init.normal_(p, std=0.1)
    export_onnx(model, tmp_path / "lite0.onnx")
    for seed, shape in enumerate([(1, 3, 1, 1), (2, 3, 61, 47), (1, 3, 360, 480)]):
        torch.manual_seed(seed)  # check_onnx draws its image from torch's generator
        with torch.no_grad():
            scale = float(model(torch.rand(*shape)).abs().max())
        torch.manual_seed(seed)
        # Relative to the logits' size (up to ~16 here at 360x480: 1.3e-3 absolute, measured
        # 8e-5 relative, as fp32 sums over ~100 layers and two resizes allow).
        assert check_onnx(model, tmp_path / "lite0.onnx", shape) < 2e-4 * max(1.0, scale)


@pytest.mark.skipif(
    cpu_bf16_feature() is None, reason="this CPU has no AVX512-BF16/AMX: --precision bf16 refuses"
)
def test_batched_and_bf16_prediction(trained, tmp_path: Path) -> None:
    from fcnseg.checkpoint import load_checkpoint, model_from_checkpoint
    from fcnseg.inference import autocast, predict_batch, prepare

    model, _ = model_from_checkpoint(load_checkpoint(trained[1]))
    model = prepare(model, torch.device("cpu"))
    images = torch.rand(3, 3, 41, 53)
    batched = predict_batch(model, images)
    single = np.stack([predict_labels(model, im) for im in images])
    assert_labels_agree(batched, single, class_scores(model, images))  # batch size: sum order
    with autocast("bf16", torch.device("cpu")):
        low = predict_batch(model, images)
    assert low.shape == batched.shape and (low == batched).mean() > 0.9
    data, ckpt = trained
    args = [
        "predict",
        "--checkpoint",
        str(ckpt),
        "--input",
        str(data / "test" / "images"),
        "--out",
        str(tmp_path),
        "--precision",
        "bf16",
        "--batch-size",
        "3",
    ]
    assert main(args) == 0
    assert len(list(tmp_path.glob("*_label.png"))) == 4


def test_evaluation_holds_a_batch_of_images_not_the_split(
    lite0_checkpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Memory for a split of large photos stays that of a few images: each pair is decoded when
    the model asks for it and dropped once scored (the worst ones excepted), not all kept."""
    import weakref

    import fcnseg.data.scan
    from fcnseg.data.synthetic import make_synthetic_dataset
    from fcnseg.evaluation import evaluate_checkpoint, save_report

    n, (h, w) = 40, (200, 240)
    data = make_synthetic_dataset(tmp_path / "data", counts={"test": n}, size=(h, w), seed=2)
    alive, most = [0], [0]  # decoded images not yet freed, and the most at any one time
    read_image = fcnseg.data.scan.read_image

    def counted(path):
        image = read_image(path)
        alive[0] += 1
        most[0] = max(most[0], alive[0])
        weakref.finalize(image, lambda: alive.__setitem__(0, alive[0] - 1))
        return image

    monkeypatch.setattr(fcnseg.data.scan, "read_image", counted)
    result = evaluate_checkpoint(lite0_checkpoint, data, progress=False, device="cpu",
                                 backend="torch", batch_size=2, worst=2)  # fmt: skip
    assert most[0] <= n // 2, most[0]  # a batch, the two worst, the check's read-ahead; was n
    assert result.metrics["num_images"] == n and len(result.per_image) == n
    # the split's order and scores are kept; the two lowest come with their pixels, lowest first
    assert [s.image.name for _, s in result.per_image] == sorted(
        p.name for p in (data / "test" / "images").iterdir()
    )
    scores = [iu for iu, _ in result.per_image]
    assert [iu for iu, *_ in result.worst] == sorted(scores)[:2]
    for _, _, pair, labels in result.worst:
        assert pair.image.shape == (h, w, 3) and labels.shape == pair.mask.shape == (h, w)
    save_report(result, tmp_path / "ev", worst=4)  # asks for more than were kept: draws two
    assert Image.open(tmp_path / "ev" / "worst_images.png").size[1] > 0
