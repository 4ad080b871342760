"""Shared fixtures: everything is built locally, on the CPU, with no network."""

from __future__ import annotations

import os
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torchvision


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs two worker processes), each worker's torch and the
    subprocesses it starts use its share of the CPU's cores: two workers at full width on two
    cores would each wait on the other's threads."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = max(1, (cores or 1) // int(workers))
        os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by the subprocesses
        torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tests' own ~/.cache (ONNX exports of built-in models land there): nothing is written
    into the user's. Subprocesses (the app, the DDP run) inherit it."""
    path = tmp_path_factory.mktemp("user_cache")
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(path)
    yield path
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


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


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A small synthetic dataset: 8 train, 4 val, 4 test images of 40x48."""
    from fcnseg.data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset(
        tmp_path / "data", counts={"train": 8, "val": 4, "test": 4}, size=(40, 48), seed=3
    )


def train_args(data: Path, out: Path, *extra: str | None) -> list[str]:
    """``fcnseg train`` arguments for a quick run from scratch (narrow fc6/fc7, no workers);
    ``extra`` flags override them, a flag followed by None removes it."""
    base = {
        "--data": str(data),
        "--out": str(out),
        "--weights-backbone": "none",
        "--fc-channels": "32",
        "--epochs": "2",
        "--batch-size": "4",
        "--workers": "0",
        "--num-vis": "1",
        "--optimizer": "adamw",
        "--lr": "0.001",
    }
    flags = dict(zip(extra[::2], extra[1::2], strict=True))
    merged = {k: v for k, v in {**base, **flags}.items() if v is not None}  # None: drop the flag
    return ["train", *[x for k, v in merged.items() for x in (k, v)]]


@pytest.fixture(scope="session")
def lite0_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An FCN-8s Lite0 checkpoint for classes background/disk/box/bar, written without training:
    random backbone, random non-zero score layers, so its labels vary from pixel to pixel."""
    from torch import nn

    from fcnseg.checkpoint import save_checkpoint
    from fcnseg.data.info import DatasetInfo
    from fcnseg.data.synthetic import CLASSES, PALETTE
    from fcnseg.models import build_model

    torch.manual_seed(0)
    model = build_model("fcn8s_efficientnet_lite0", num_classes=len(CLASSES))
    for name, p in model.named_parameters():
        if "score" in name and p.ndim == 4:
            nn.init.normal_(p, std=0.1)
    path = tmp_path_factory.mktemp("lite0") / "lite0.pt"
    info = DatasetInfo.from_dict({"name": "toy", "classes": CLASSES, "palette": PALETTE})
    save_checkpoint(path, model, info)
    return path
