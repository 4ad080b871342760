"""FCN-32s, FCN-16s and FCN-8s heads over a backbone that returns a dict of named features."""

from __future__ import annotations

from collections import OrderedDict
from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fcnseg.models.upsample import BilinearUpsample, bilinear_conv_transpose

OUTPUT_STRIDE = 32  # inputs are padded to a multiple of this, so every skip aligns exactly
FREEZE_MODES = ("none", "features", "backbone")


class FCN(nn.Module):
    """A fully convolutional network (Long, Shelhamer & Darrell, 2015).

    Takes images ``(N, 3, H, W)`` with values in [0, 1] (normalisation is part of the model, taken
    from the backbone's weights) and returns logits ``(N, num_classes, H, W)`` for any ``H, W >= 1``:
    the input is padded bottom/right to a multiple of 32 and the logits are cropped back.

    Args:
        backbone: module returning ``{"pool3": 1/8, "pool4": 1/16, "pool5": 1/32}`` features.
        channels: channels of those features.
        neck: module applied to ``pool5`` before ``score_fr`` (VGG's fc6/fc7), or None.
        neck_channels: channels the neck outputs.
        num_classes: number of classes scored.
        variant: 32, 16 or 8 (the stride of the finest skip of the paper's FCNs), or 4: FCN-8s
            plus a stride-4 skip from ``pool2`` (for light backbones whose stride-4 features help).
        mean, std: per-channel input normalisation of the backbone's weights.
        head_channels: None for the paper's 1x1 score layers; else each score layer is a 3x3 conv
            of this width + BatchNorm + ReLU before its zero-initialised 1x1 scoring (a small
            head that light backbones, with fewer channels than VGG, benefit from).
        input_scale: the network runs on the image resized (bilinear) by this factor, and its
            logits are resized back to the input size. Above 1, thin structures (poles, signs)
            span more backbone pixels, at ``input_scale ** 2`` times the cost. The same as
            test-time augmentation at that single scale, but trained that way too.
    """

    def __init__(
        self,
        backbone: nn.Module,
        channels: dict[str, int],
        neck: nn.Module | None,
        neck_channels: int,
        num_classes: int,
        variant: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        head_channels: int | None = None,
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if variant not in (4, 8, 16, 32):
            raise ValueError(f"variant must be 4, 8, 16 or 32, got {variant}")
        if not isinstance(input_scale, int | float) or not 0 < input_scale <= 4:
            raise ValueError(f"input_scale must be a number in (0, 4], got {input_scale!r}")
        self.variant = variant
        self.input_scale = float(input_scale)
        self.num_classes = num_classes
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        self.backbone = backbone
        self.neck = neck if neck is not None else nn.Identity()
        # New score layers start at zero (the paper's recipe): an untrained skip adds nothing.
        self.score_fr = _score(neck_channels, num_classes, head_channels)
        if variant <= 16:
            self.score_pool4 = _score(channels["pool4"], num_classes, head_channels)
            self.upscore2 = bilinear_conv_transpose(num_classes, 2)  # learnable
        if variant <= 8:
            self.score_pool3 = _score(channels["pool3"], num_classes, head_channels)
            self.upscore_pool4 = bilinear_conv_transpose(num_classes, 2)  # learnable
        if variant == 4:
            self.score_pool2 = _score(channels["pool2"], num_classes, head_channels)
            self.upscore_pool3 = bilinear_conv_transpose(num_classes, 2)  # learnable
        self.upscore = BilinearUpsample(variant)  # final upsampling: fixed bilinear
        self.freeze_mode, self.norm_eval = "none", False

    def freeze(self, mode: str, norm_eval: bool = False) -> None:
        """Freeze a part of the model for transfer learning; it stays frozen until changed.

        ``features`` freezes the backbone's trunk (VGG16's convolutions: the classic "train the
        upsampling part"); ``backbone`` also freezes the pretrained layers on top of it (VGG16's
        fc6/fc7, the paper's "FCN-32s-fixed"); ``none`` fine-tunes everything. Frozen means no
        gradients (``requires_grad=False``) and eval mode (dropout off, norm statistics fixed)
        whatever ``train()`` is called with later. With ``norm_eval`` the pretrained parts'
        BatchNorm layers also stay in eval mode while they fine-tune: their running statistics
        keep the ImageNet values, their affine weights still learn (mmsegmentation's
        ``norm_eval``); small batches of crops otherwise replace them with noisy ones.
        """
        if mode not in FREEZE_MODES:
            raise ValueError(
                f"unknown freeze mode {mode!r}; choose one of: {', '.join(FREEZE_MODES)}"
            )
        self.freeze_mode, self.norm_eval = mode, bool(norm_eval)
        frozen = {id(p) for m in self.frozen_modules() for p in m.parameters()}
        for p in self.parameters():
            p.requires_grad_(id(p) not in frozen)
        self.train(self.training)

    def frozen_modules(self) -> list[nn.Module]:
        """The sub-modules the current freeze mode holds fixed."""
        if self.freeze_mode == "none":
            return []
        if self.freeze_mode == "features":
            return [self.backbone]
        return [self.backbone, self.neck]

    def train(self, mode: bool = True) -> FCN:
        """``nn.Module.train``, but frozen parts (and with ``norm_eval`` the pretrained parts'
        BatchNorm layers) stay in eval mode, so no caller has to remember to put them back."""
        super().train(mode)
        if mode:
            for m in self.frozen_modules():
                m.eval()
            if self.norm_eval:
                for part in (self.backbone, self.neck):
                    for m in part.modules():
                        if isinstance(m, nn.modules.batchnorm._BatchNorm):  # has running stats
                            m.eval()
        return self

    def encode(self, image: Tensor) -> OrderedDict[str, Tensor]:
        """Resize by ``input_scale``, normalise, pad to a multiple of 32, run the backbone:
        ``{"pool3", "pool4", "pool5"}`` (and ``pool2`` for variant 4)."""
        if self.input_scale != 1.0:
            size = scaled_size(image.shape[-2:], self.input_scale)
            image = F.interpolate(
                image, size, mode="bilinear", antialias=self.input_scale < 1, align_corners=False
            )
        x = (image - self.mean) / self.std
        h, w = image.shape[-2:]
        # Written as 32 * ceil(h / 32) - h so that symbolic shapes (export) stay simple multiples.
        pad_h = OUTPUT_STRIDE * ((h + OUTPUT_STRIDE - 1) // OUTPUT_STRIDE) - h
        pad_w = OUTPUT_STRIDE * ((w + OUTPUT_STRIDE - 1) // OUTPUT_STRIDE) - w
        # Zero after normalisation is the mean colour; padding bottom/right keeps pixel (0, 0) fixed.
        x = F.pad(x, (0, pad_w, 0, pad_h))
        return self.backbone(x)

    def decode(self, feats: dict[str, Tensor], size: tuple[int, int]) -> Tensor:
        """Score and upsample features (``pool5`` or an already computed ``fc7``) to ``size``,
        the size of the image given to :meth:`encode`."""
        top = feats["fc7"] if "fc7" in feats else self.neck(feats["pool5"])
        h = self.score_fr(top)  # 1/32
        if self.variant <= 16:
            h = self.upscore2(h) + self.score_pool4(feats["pool4"])  # 1/16
        if self.variant <= 8:
            h = self.upscore_pool4(h) + self.score_pool3(feats["pool3"])  # 1/8
        if self.variant == 4:
            h = self.upscore_pool3(h) + self.score_pool2(feats["pool2"])  # 1/4
        if self.input_scale == 1.0:
            return self.upscore(h, size)  # 1/1, cropped to the input size
        # Upsampled to the resized input's size, then resized (bilinear) back to ``size``: one
        # pair of matrix products (benchmarks/bench_fused_resize.py: 1.12x a frozen-stage step)
        return self.upscore(h, scaled_size(size, self.input_scale), resize_to=size)

    def forward(self, image: Tensor) -> Tensor:
        return self.decode(self.encode(image), (image.shape[-2], image.shape[-1]))


def scaled_size(size: tuple[int, int], scale: float) -> tuple[int, int]:
    """``size`` times ``scale`` rounded half up, at least 1.

    Integer arithmetic on ``scale`` as a fraction: sizes stay symbolic integers in ONNX export,
    which has no rounding of symbolic floats.
    """
    ratio = Fraction(scale).limit_denominator(1000)
    num, den = ratio.numerator, ratio.denominator
    return tuple(max(1, (2 * n * num + den) // (2 * den)) for n in size)


def _score(in_channels: int, num_classes: int, head_channels: int | None) -> nn.Module:
    if head_channels is None:
        return _zero_conv(in_channels, num_classes)
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_channels, head_channels, 3, padding=1, bias=False),
            bn=nn.BatchNorm2d(head_channels),
            relu=nn.ReLU(inplace=True),
            score=_zero_conv(head_channels, num_classes),
        )
    )


def _zero_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv
