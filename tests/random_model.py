"""A checkpoint made in a second, no training: an untrained FCN-8s whose score layers are random.

FCN score layers start at zero (every pixel gets class 0); random ones make the labels vary
with the image, which is what a test comparing two ways of predicting needs.
"""

from __future__ import annotations

from pathlib import Path

import torch

from fcnseg.checkpoint import save_checkpoint
from fcnseg.data.info import DatasetInfo
from fcnseg.data.synthetic import CLASSES, IGNORE, PALETTE
from fcnseg.models import build_model

SYNTHETIC = DatasetInfo(
    name="synthetic",
    class_names=tuple(CLASSES),
    palette=tuple(tuple(c) for c in PALETTE),
    ignore_index=IGNORE,
)


def random_checkpoint(path: Path, info: DatasetInfo = SYNTHETIC, seed: int = 0) -> Path:
    """Write a MobileNetV3 FCN-8s checkpoint with random score layers to ``path``."""
    torch.manual_seed(seed)
    model = build_model("fcn8s_mobilenetv3_large_100", num_classes=info.num_classes)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("score") and name.endswith("weight"):
                p.normal_(0, 3 / p.shape[1] ** 0.5)
    save_checkpoint(path, model, info)
    return path
