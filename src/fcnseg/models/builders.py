"""Registered FCN builders: ``fcn32s_vgg16``, ``fcn16s_vgg16``, ``fcn8s_vgg16``."""

from __future__ import annotations

import os

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


def fcn_vgg16(
    variant: int,
    *,
    num_classes: int,
    weights_backbone: str | os.PathLike[str] | None = None,
    dropout: float = 0.5,
    fc_channels: int = 4096,
) -> FCN:
    """FCN-``variant``s on VGG16; the trunk and fc6/fc7 come from ``weights_backbone`` if given.

    ``fc_channels`` narrows fc6/fc7 for quick experiments from scratch; VGG16's own fc weights
    need the paper's 4096.
    """
    state = resolve_vgg16_weights(weights_backbone)
    if state is not None and fc_channels != 4096:
        raise WeightsError(f"fc_channels={fc_channels}: VGG16's fc6/fc7 weights need 4096 channels")
    backbone = VGG16Backbone()
    neck = make_fc_layers(dropout, fc_channels)
    if state is not None:
        backbone.load_state_dict(features_state(state))
        neck.load_state_dict(classifier_to_conv(state))
    return FCN(backbone, CHANNELS, neck, fc_channels, num_classes, variant, VGG16_MEAN, VGG16_STD)


@register_model("fcn32s_vgg16")
def fcn32s_vgg16(**kwargs) -> FCN:
    """FCN-32s: one stride-32 prediction upsampled by fixed bilinear interpolation."""
    return fcn_vgg16(32, **kwargs)


@register_model("fcn16s_vgg16")
def fcn16s_vgg16(**kwargs) -> FCN:
    """FCN-16s: adds the pool4 skip."""
    return fcn_vgg16(16, **kwargs)


@register_model("fcn8s_vgg16")
def fcn8s_vgg16(**kwargs) -> FCN:
    """FCN-8s: adds the pool4 and pool3 skips (the paper's best)."""
    return fcn_vgg16(8, **kwargs)
