"""Comparing label maps that two computations made: they agree where the margin is clear.

Two math libraries (PyTorch and ONNX Runtime), two precisions, two batch sizes, tile sizes or
thread counts sum in different orders, so scores differ in the last bits and a pixel whose top
two classes are nearly tied may flip (1 pixel of 518,400 did, on a Xeon with AMX). Such
comparisons go through :func:`assert_labels_agree`: labels must be equal wherever the reference's
top two class probabilities are apart by more than a margin, and most pixels must be that clear
(else the comparison would say nothing). Labels from the same computation on the same input may
still be compared bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

# Class probabilities from fp32 paths differ by ~1e-6; a thousandth is far above that noise and
# far below the margins of all but a handful of pixels.
CLEAR_MARGIN = 1e-3


def clear_pixels(scores: np.ndarray | torch.Tensor, margin: float = CLEAR_MARGIN) -> np.ndarray:
    """Boolean ``(..., H, W)``: where the top two of ``scores`` ``(..., C, H, W)`` are more than
    ``margin`` apart (class probabilities, so the margin means the same for every model)."""
    s = torch.as_tensor(np.asarray(scores, dtype=np.float32))
    top2 = s.topk(2, dim=-3).values
    return (top2.select(-3, 0) - top2.select(-3, 1) > margin).numpy()


def assert_labels_agree(
    got: np.ndarray,
    want: np.ndarray,
    scores: np.ndarray | torch.Tensor,
    *,
    margin: float = CLEAR_MARGIN,
    min_clear: float = 0.95,
    err_msg: str = "",
) -> None:
    """``got`` equals ``want`` (label maps ``(..., H, W)``) wherever ``scores`` ``(..., C, H, W)``,
    the class probabilities behind ``want``, have a clear winner; at least ``min_clear`` of the
    pixels must be clear."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape, err_msg)
    clear = clear_pixels(scores, margin)
    assert clear.shape == want.shape, (clear.shape, want.shape, err_msg)
    assert clear.mean() >= min_clear, f"{err_msg}: only {clear.mean():.2%} of pixels are clear"
    differ = int((got[clear] != want[clear]).sum())
    assert differ == 0, f"{err_msg}: {differ} of {int(clear.sum())} clear pixels differ"
