"""Shared fixtures: everything is built locally, on the CPU, with no network."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision


@pytest.fixture(scope="session")
def vgg16_reference() -> torchvision.models.VGG:
    """A randomly initialised torchvision VGG16 (stands in for the ImageNet one)."""
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).eval()


@pytest.fixture(scope="session")
def vgg16_weights_file(tmp_path_factory: pytest.TempPathFactory, vgg16_reference) -> Path:
    """That VGG16's state dict saved in torchvision's format."""
    path = tmp_path_factory.mktemp("weights") / "vgg16-random.pth"
    torch.save(vgg16_reference.state_dict(), path)
    return path


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty torch hub cache and a network that refuses every download."""

    def refuse(url: str, *args, **kwargs) -> None:
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return tmp_path / "torch_home"
