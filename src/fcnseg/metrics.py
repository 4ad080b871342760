"""The FCN paper's metrics from one confusion matrix (Long et al. 2015, section 5).

With ``n[i, j]`` the pixels of true class i predicted as j and ``t[i] = sum_j n[i, j]``:
pixel accuracy ``sum_i n[i, i] / sum_i t[i]``; mean accuracy ``mean_i n[i, i] / t[i]``;
mean IU ``mean_i n[i, i] / (t[i] + sum_j n[j, i] - n[i, i])``; frequency-weighted IU
``sum_i t[i] * IU[i] / sum_i t[i]``. A class absent from both truth and prediction has no IU and
is left out of the means (a class absent from the truth has no accuracy).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """``(num_classes, num_classes)`` int64 counts, rows = truth; ignore-label pixels excluded."""
    target, pred = target.reshape(-1), pred.reshape(-1)
    keep = target != ignore_index
    bad = keep & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        raise ValueError(f"target holds ids outside 0..{num_classes - 1}: {target[bad].unique()}")
    # Ignored pixels go to one extra bin, dropped after counting: no boolean indexing, which
    # costs more than the count itself on a 12-megapixel mask.
    index = target.long() * num_classes + pred.long()
    index.masked_fill_(~keep, num_classes**2)
    counts = torch.bincount(index, minlength=num_classes**2 + 1)[: num_classes**2]
    return counts.reshape(num_classes, num_classes)


def metrics_from_confusion(
    cm: Tensor | np.ndarray, class_names: list[str] | tuple[str, ...] | None = None
) -> dict:
    """``pixel_acc``, ``mean_acc``, ``mean_iu``, ``fw_iu`` (floats in [0, 1], NaN if no pixels),
    ``per_class_iu`` and ``per_class_acc`` (name -> float or None where undefined)."""
    cm = np.asarray(cm.cpu() if isinstance(cm, Tensor) else cm, dtype=np.float64)
    n = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    tp = np.diag(cm)
    truth = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    union = truth + predicted - tp
    total = truth.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.where(truth > 0, tp / truth, np.nan)
        iu = np.where(union > 0, tp / union, np.nan)
    return {
        "pixel_acc": float(tp.sum() / total) if total else float("nan"),
        "mean_acc": _nanmean(acc),
        "mean_iu": _nanmean(iu),
        "fw_iu": float(np.nansum(truth * iu) / total) if total else float("nan"),
        "per_class_iu": {k: _opt(v) for k, v in zip(names, iu, strict=True)},
        "per_class_acc": {k: _opt(v) for k, v in zip(names, acc, strict=True)},
    }


def _nanmean(x: np.ndarray) -> float:
    return float(np.nanmean(x)) if np.isfinite(x).any() else float("nan")


def _opt(v: float) -> float | None:
    return None if np.isnan(v) else float(v)
