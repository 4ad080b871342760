"""Metric arithmetic against hand-computed confusion matrices; loss contracts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fcnseg.metrics import confusion_matrix, metrics_from_confusion
from fcnseg.training.losses import LOSSES, build_loss, parse_class_weights


def test_confusion_matrix_counts_and_ignores() -> None:
    target = torch.tensor([[0, 0, 1, 2], [2, 9, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 2], [0, 2, 1, 0]])
    cm = confusion_matrix(pred, target, num_classes=3, ignore_index=9)
    assert cm.tolist() == [[1, 1, 0], [1, 2, 0], [1, 0, 1]]


def test_metrics_by_hand() -> None:
    cm = np.array([[3, 1, 0], [0, 4, 0], [1, 1, 2]])
    m = metrics_from_confusion(cm, ["a", "b", "c"])
    # pixel acc 9/12; acc per class 3/4, 4/4, 2/4; IU 3/5, 4/6, 2/4; t = 4, 4, 4
    assert m["pixel_acc"] == pytest.approx(9 / 12)
    assert m["mean_acc"] == pytest.approx((0.75 + 1 + 0.5) / 3)
    assert m["mean_iu"] == pytest.approx((3 / 5 + 4 / 6 + 2 / 4) / 3)
    assert m["fw_iu"] == pytest.approx((4 * 3 / 5 + 4 * 4 / 6 + 4 * 2 / 4) / 12)
    assert m["per_class_iu"] == pytest.approx({"a": 0.6, "b": 4 / 6, "c": 0.5})


def test_absent_classes_are_left_out_of_the_means() -> None:
    # class 2 absent from truth and prediction: no IU, no accuracy, not averaged as zero.
    cm = np.array([[2, 0, 0], [1, 1, 0], [0, 0, 0]])
    m = metrics_from_confusion(cm)
    assert m["per_class_iu"]["2"] is None and m["per_class_acc"]["2"] is None
    assert m["mean_iu"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    # predicted but absent from truth: IU 0 counts, accuracy undefined.
    cm = np.array([[2, 1], [0, 0]])
    m = metrics_from_confusion(cm)
    assert m["per_class_iu"]["1"] == 0.0 and m["per_class_acc"]["1"] is None
    assert m["mean_iu"] == pytest.approx((2 / 3 + 0) / 2) and m["mean_acc"] == 2 / 3


def test_empty_confusion_is_nan_not_an_error() -> None:
    m = metrics_from_confusion(np.zeros((2, 2)))
    assert math.isnan(m["pixel_acc"]) and math.isnan(m["mean_iu"])


@pytest.mark.parametrize("name", LOSSES)
def test_losses_ignore_the_void_label_and_have_gradients(name: str) -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, requires_grad=True)
    target = torch.randint(0, 3, (2, 5, 6))
    target[:, 0] = 255
    fn = build_loss(name, ignore_index=255, class_weights=torch.tensor([1.0, 2.0, 0.5]))
    loss = fn(logits, target)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert logits.grad[:, :, 0].abs().sum() == 0  # ignored pixels get no gradient
    assert logits.grad[:, :, 1:].abs().sum() > 0
    changed = logits.detach().clone()
    changed[:, :, 0] = 1e4  # whatever the model says on void does not matter
    assert fn(changed, target).item() == pytest.approx(loss.item(), rel=1e-5)


def test_ce_is_plain_cross_entropy_on_logits() -> None:
    logits, target = torch.randn(1, 4, 3, 3), torch.randint(0, 4, (1, 3, 3))
    assert build_loss("ce", 255)(logits, target) == pytest.approx(
        F.cross_entropy(logits, target).item()
    )


def test_seed_loss_is_safe_one_vs_all() -> None:
    logits = torch.tensor([[[[100.0]], [[-100.0]]]])  # confident and right
    target = torch.tensor([[[0]]])
    assert build_loss("seed", 255)(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    wrong = build_loss("seed", 255)(-logits, target)
    assert torch.isfinite(wrong) and wrong.item() == pytest.approx(200.0, rel=1e-4)


def test_lovasz_equals_one_minus_iou_on_hard_predictions() -> None:
    # The Lovász extension is exact at the vertices: for a 0/1 prediction it is the mean over the
    # classes present in the truth of 1 - IoU, computed here by hand on a 2x3 image.
    from fcnseg.training.losses import lovasz_softmax

    target = torch.tensor([[[0, 0, 1], [1, 2, 255]]])
    pred = torch.tensor([[[0, 1, 1], [1, 1, 0]]])  # the last pixel is void: does not count
    logits = F.one_hot(pred, 3).permute(0, 3, 1, 2).float() * 1e4
    # class 0: truth {0,1}, pred {0} -> IoU 1/2; class 1: truth {2,3}, pred {1,2,3,4} -> 2/4;
    # class 2: truth {4}, pred {} -> 0.
    expected = ((1 - 1 / 2) + (1 - 2 / 4) + (1 - 0)) / 3
    assert lovasz_softmax(logits, target, 255).item() == pytest.approx(expected, abs=1e-6)
    perfect = F.one_hot(target.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 1e4
    assert lovasz_softmax(perfect, target, 255).item() == pytest.approx(0.0, abs=1e-6)


def test_lovasz_gradient_is_the_jaccard_increments() -> None:
    from fcnseg.training.losses import lovasz_grad

    # Truth sorted by decreasing error: 1, 0, 1. Jaccard losses of the prefixes: 1 - (2-1)/2,
    # 1 - (2-1)/3, 1 - 0/3 -> 0.5, 2/3, 1; the gradient is their increments.
    g = lovasz_grad(torch.tensor([1.0, 0.0, 1.0]))
    torch.testing.assert_close(g, torch.tensor([0.5, 2 / 3 - 0.5, 1 - 2 / 3]))


def test_ohem_averages_only_the_hardest_pixels() -> None:
    from fcnseg.training.losses import ohem_loss

    torch.manual_seed(0)
    logits, target = torch.randn(2, 4, 6, 5), torch.randint(0, 4, (2, 6, 5))
    target[0, 0] = 255
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    valid = per_pixel[target != 255]
    hardest = valid.sort(descending=True).values[: int(0.25 * valid.numel())]
    got = ohem_loss(logits, target, 255, None, keep=0.25, min_kept=1)
    assert got.item() == pytest.approx(hardest.mean().item(), rel=1e-6)
    assert got.item() > valid.mean().item()
    # min_kept above the valid count: plain cross-entropy over every valid pixel.
    assert ohem_loss(logits, target, 255, None).item() == pytest.approx(
        F.cross_entropy(logits, target, ignore_index=255).item(), rel=1e-6
    )


def test_parse_class_weights() -> None:
    assert parse_class_weights("none", 3) is None
    assert parse_class_weights("median-freq", 3) == "median-freq"
    assert parse_class_weights("1,2,0.5", 3) == [1.0, 2.0, 0.5]
    with pytest.raises(ValueError, match="3 non-negative numbers"):
        parse_class_weights("1,2", 3)
