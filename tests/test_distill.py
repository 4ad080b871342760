"""Distillation of a teacher's test-time augmentation (``--distill-from``)."""

from __future__ import annotations

import csv
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import train_args
from torchvision import tv_tensors

from fcnseg.cli import main
from fcnseg.data.transforms import SoftTarget, train_transform
from fcnseg.errors import FcnsegError
from fcnseg.training import config_from
from fcnseg.training.distill import check_room, distillation_loss, quantize

IGNORE = 9


def _one_hot_levels(mask: torch.Tensor, classes: int) -> torch.Tensor:
    """A "teacher" sure of the mask's labels: 255 on the labelled class, 0 elsewhere."""
    return (F.one_hot(mask.long(), classes).permute(2, 0, 1) * 255).to(torch.uint8)


@pytest.mark.parametrize("rare_crops", [0.0, 1.0])  # RandomCrop, then FocusCrop
def test_probabilities_follow_the_mask_through_scale_crop_and_flip(rare_crops: float) -> None:
    """The teacher's probabilities stay on the pixels they describe: every labelled pixel of the
    transformed mask has its class as the soft target's argmax, and the crop's padding (mask:
    ignore label) has no probabilities at all, not the ignore label's value."""
    random.seed(0)
    torch.manual_seed(0)
    h, w, classes = 30, 44, 4
    mask = torch.randint(0, classes, (h, w), dtype=torch.uint8)
    mask[5:9, 10:12] = 3  # a "rare" class for the focus crop
    image = tv_tensors.Image(torch.randint(0, 256, (3, h, w), dtype=torch.uint8))
    soft = SoftTarget(_one_hot_levels(mask, classes))
    t = train_transform("full", IGNORE, 48, (0.6, 1.4), rare_classes=(3,), rare_crops=rare_crops)
    padded = 0
    for _ in range(20):
        x, m, s = t(image, tv_tensors.Mask(mask.clone()), soft)
        assert type(s) is SoftTarget and s.dtype == torch.uint8 and s.shape == (classes, 48, 48)
        labelled = m != IGNORE
        assert torch.equal(s.argmax(0)[labelled], m[labelled])
        assert torch.equal(s.sum(0)[labelled].int(), torch.full_like(m[labelled], 255).int())
        assert int(s[:, ~labelled].sum()) == 0  # padding: no teacher there
        padded += int((~labelled).sum())
    assert padded > 0  # the crops did pad (48 > the scaled 30-pixel height)


def test_distillation_loss_is_the_kl_over_the_pixels_the_teacher_saw() -> None:
    assert np.array_equal(quantize(np.array([0.0, 0.5, 1.0, 1.2])), [0, 128, 255, 255])
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(2, 5, 6, 7) * 2, dim=1)
    levels = torch.from_numpy(quantize(p.numpy()))
    # The student that predicts the teacher's probabilities: KL ~ 0 (up to uint8 rounding).
    assert float(distillation_loss(p.log(), levels)) < 1e-3
    logits = torch.randn(2, 5, 6, 7, requires_grad=True)
    q = levels.float() / levels.float().sum(1, keepdim=True)
    expected = (q * (q.clamp(min=1e-12).log() - F.log_softmax(logits, 1))).sum(1).mean()
    loss = distillation_loss(logits, levels)
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)
    # Zero levels (a crop's padding) are left out, not counted as a zero-probability teacher.
    padded = levels.clone()
    padded[..., 4:] = 0
    seen = (q * (q.clamp(min=1e-12).log() - F.log_softmax(logits, 1))).sum(1)[..., :4].mean()
    torch.testing.assert_close(distillation_loss(logits, padded), seen, atol=1e-5, rtol=1e-5)
    assert float(distillation_loss(logits, torch.zeros_like(levels)).detach()) == 0.0
    # Its gradient moves the student towards the teacher.
    opt = torch.optim.Adam([logits], lr=0.2)
    for _ in range(100):
        opt.zero_grad()
        distillation_loss(logits, levels).backward()
        opt.step()
    assert float(distillation_loss(logits, levels).detach()) < 0.05 * float(expected.detach())


def test_train_with_a_teacher(tiny_data: Path, tmp_path: Path, capsys) -> None:
    teacher = tmp_path / "teacher"
    assert main(train_args(tiny_data, teacher, "--epochs", "1")) == 0
    crops = ("--augment", "full", "--crop-size", "32", "--rare-crops", "0.5", "--seed", "4")
    ckpt = str(teacher / "checkpoint_last.pt")
    plain, weighted, ignored = tmp_path / "plain", tmp_path / "weighted", tmp_path / "ignored"
    assert main(train_args(tiny_data, plain, *crops)) == 0
    capsys.readouterr()
    assert main(train_args(tiny_data, weighted, *crops, "--distill-from", ckpt)) == 0
    out = capsys.readouterr().out
    assert "teacher pass: 8 images at scales 0.75 1 1.25, each mirrored" in out
    assert "+ 1 x distillation from" in out
    args = ("--distill-from", ckpt, "--distill-weight", "0", "--distill-scales", "1")
    assert main([*train_args(tiny_data, ignored, *crops, *args), "--no-distill-flip"]) == 0
    assert "at scales 1, 0 MiB" in capsys.readouterr().out

    def history(run: Path) -> list[dict]:
        keys = ("epoch", "train_loss", "val_loss", "mean_iu", "lr")
        with (run / "metrics.csv").open() as f:
            return [{k: r[k] for k in keys} for r in csv.DictReader(f)]

    # Weight 0: the same run as without a teacher (its probabilities take no random draws and
    # change no crop); weight 1: the loss has the distillation term too.
    assert history(ignored) == history(plain)
    assert [r["train_loss"] for r in history(weighted)] != [r["train_loss"] for r in history(plain)]
    cfg = yaml.safe_load((weighted / "config.yaml").read_text())
    assert cfg["distill_from"] == ckpt and cfg["distill_scales"] == [0.75, 1.0, 1.25]
    assert config_from(weighted / "config.yaml").distill_flip is True


def test_bad_teachers_stop_with_one_line(tiny_data: Path, tmp_path: Path, capsys) -> None:
    full = ("--augment", "full", "--crop-size", "32")
    missing = tmp_path / "nope.pt"
    assert main(train_args(tiny_data, tmp_path / "a", *full, "--distill-from", str(missing))) == 2
    assert f"--distill-from {missing}" in capsys.readouterr().err
    assert main(train_args(tiny_data, tmp_path / "b", *full, "--distill-from", "camvid_lite2")) == 2
    assert "its classes (sky, building" in capsys.readouterr().err
    with pytest.raises(FcnsegError, match="distill-from needs --augment full or strong"):
        config_from(data="d", out="o", distill_from="t.pt", augment="flip")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # 12 classes of 100 images of 360x480 take 207 MB: refused with less than twice that.
    sizes = Counter({(360, 480): 100})
    assert check_room(sizes, 12, memory=2**30) == 12 * 360 * 480 * 100
    with pytest.raises(FcnsegError, match=r"would take 0\.2 GiB of RAM .* half of this machine's"):
        check_room(sizes, 12, memory=300 * 2**20)
