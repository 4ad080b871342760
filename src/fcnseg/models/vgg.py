"""The VGG16 trunk as a dict of named features, and its ImageNet weights."""

from __future__ import annotations

import os
import urllib.error
from collections import OrderedDict
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision.models import VGG16_Weights
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.vgg import cfgs, make_layers

from fcnseg.errors import WeightsError
from fcnseg.models.state_files import load_state_file as read_state_file

IMAGENET_WEIGHTS = VGG16_Weights.IMAGENET1K_V1
# The one place the VGG16 input normalisation is defined: the weights' own preprocessing.
VGG16_MEAN: tuple[float, ...] = tuple(IMAGENET_WEIGHTS.transforms().mean)
VGG16_STD: tuple[float, ...] = tuple(IMAGENET_WEIGHTS.transforms().std)

# Indices of the max-pool layers in ``vgg16().features`` whose outputs the FCN heads read.
RETURN_LAYERS = {"16": "pool3", "23": "pool4", "30": "pool5"}
CHANNELS = {"pool3": 256, "pool4": 512, "pool5": 512}
# Shapes of the classifier tensors that fc6/fc7 are made from (classifier.6 is not used).
CLASSIFIER_SHAPES = {
    "classifier.0.weight": (4096, 512 * 7 * 7),
    "classifier.0.bias": (4096,),
    "classifier.3.weight": (4096, 4096),
    "classifier.3.bias": (4096,),
}


class VGG16Backbone(nn.Module):
    """torchvision's VGG16 convolutional trunk returning ``{"pool3", "pool4", "pool5"}``.

    Strides 8, 16 and 32; channels 256, 512 and 512.
    """

    channels = CHANNELS

    def __init__(self) -> None:
        super().__init__()
        # make_layers(cfgs["D"]) is exactly how torchvision builds ``vgg16().features``; building
        # it directly skips allocating and initialising the 120M-parameter classifier.
        self.body = IntermediateLayerGetter(make_layers(cfgs["D"]), RETURN_LAYERS)
        kaiming_init(self)

    def forward(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return self.body(x)


def kaiming_init(module: nn.Module) -> None:
    """torchvision's VGG initialisation for convolutions (He et al., fan-out), zero biases.

    PyTorch's default conv init shrinks activations layer after layer; a randomly initialised
    trunk must keep them at scale for its features to be of any use.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)


def make_fc_layers(dropout: float = 0.5, channels: int = 4096) -> nn.Sequential:
    """fc6 (7x7, 512->4096) and fc7 (1x1, 4096->4096) as convolutions, ReLU and dropout as in the
    paper (``channels`` other than 4096 only for models trained from scratch).

    fc6 pads by 3 so that an input of stride 32 keeps its size and alignment (no padding=100).
    """
    fc = nn.Sequential(
        OrderedDict(
            fc6=nn.Conv2d(512, channels, kernel_size=7, padding=3),
            relu6=nn.ReLU(inplace=True),
            drop6=nn.Dropout(dropout),
            fc7=nn.Conv2d(channels, channels, kernel_size=1),
            relu7=nn.ReLU(inplace=True),
            drop7=nn.Dropout(dropout),
        )
    )
    kaiming_init(fc)
    return fc


def classifier_to_conv(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Reshape VGG16's Linear fc6/fc7 weights into the conv layers of :func:`make_fc_layers`.

    torchvision flattens pool5 as (C, H, W), so ``(4096, 25088)`` reshapes to ``(4096, 512, 7, 7)``.
    """
    return {
        "fc6.weight": state["classifier.0.weight"].reshape(4096, 512, 7, 7),
        "fc6.bias": state["classifier.0.bias"],
        "fc7.weight": state["classifier.3.weight"].reshape(4096, 4096, 1, 1),
        "fc7.bias": state["classifier.3.bias"],
    }


def features_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """The ``features.*`` tensors of a torchvision VGG16 state dict, keyed as in VGG16Backbone."""
    return {
        "body." + k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")
    }


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Key -> shape of a torchvision VGG16 state dict (without the 1000-way ``classifier.6``)."""
    trunk = make_layers(cfgs["D"])
    shapes = {f"features.{k}": tuple(v.shape) for k, v in trunk.state_dict().items()}
    return {**shapes, **CLASSIFIER_SHAPES}


def validate_state_dict(state: object, source: str) -> dict[str, Tensor]:
    """Check that ``state`` is a torchvision VGG16 state dict; raise WeightsError naming what is wrong."""
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(
            f"{source}: not a state dict of tensors (expected torchvision VGG16 format)"
        )
    expected = expected_shapes()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and not k.startswith("classifier.6.")]
    wrong = [
        f"{k} {tuple(state[k].shape)} != {shape}"
        for k, shape in expected.items()
        if k in state and tuple(state[k].shape) != shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes {_few(wrong)}")
    if problems:
        raise WeightsError(f"{source}: not a torchvision VGG16 state dict: {'; '.join(problems)}")
    return state


def _few(items: list[str], n: int = 3) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def imagenet_cache_path() -> Path:
    """Where torch's hub cache keeps the VGG16 ImageNet weights file."""
    filename = os.path.basename(urlparse(IMAGENET_WEIGHTS.url).path)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def load_imagenet_state() -> dict[str, Tensor]:
    """VGG16 ImageNet weights through torchvision's weights API (torch hub cache, else download)."""
    try:
        state = IMAGENET_WEIGHTS.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        reason = getattr(exc, "reason", None) or exc
        cache = imagenet_cache_path()
        raise WeightsError(
            f"cannot get the VGG16 ImageNet weights: no cached copy at {cache} and the download "
            f"from {IMAGENET_WEIGHTS.url} failed ({reason}). Without a network, fetch that file "
            f"elsewhere and pass its path (--weights-backbone /path/to/{cache.name}), copy it "
            f"to {cache}, or train the offline model fcn8s_efficientnet_lite0 (--model "
            "fcn8s_efficientnet_lite0), whose ImageNet weights install with fcnseg"
        ) from exc
    return validate_state_dict(state, "ImageNet VGG16 weights")


def load_state_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """A torchvision-format VGG16 state dict from a file, loaded without unpickling code."""
    return validate_state_dict(read_state_file(path), str(path))


def resolve_vgg16_weights(
    weights_backbone: str | os.PathLike[str] | None,
) -> dict[str, Tensor] | None:
    """``"imagenet"`` -> download/cache, ``None``/``"none"`` -> None (random init), else a file path."""
    if weights_backbone is None or str(weights_backbone).lower() == "none":
        return None
    if str(weights_backbone).lower() == "imagenet":
        return load_imagenet_state()
    return load_state_file(weights_backbone)
