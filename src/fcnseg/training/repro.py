"""Reproducibility: seeds that a resumed run redraws identically, and what a run started from."""

from __future__ import annotations

import hashlib
import platform
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fcnseg.version import __version__


def seed_epoch(seed: int, epoch: int, rank: int) -> torch.Generator:
    """Seed every RNG from (seed, epoch, rank): a resumed run draws what the original would have."""
    s = (seed * 100_003 + epoch * 1_009 + rank) % (2**31)
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)
    return torch.Generator().manual_seed(s)


def git_hash() -> str | None:
    """The commit of the fcnseg source tree, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def state_checksum(module: nn.Module) -> str:
    """SHA-256 over a module's tensors: identifies the backbone weights a run started from."""
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def run_info(model: nn.Module, dataset: dict[str, Any]) -> dict[str, Any]:
    """Versions, command line and the backbone's checksum, kept in config.yaml and checkpoints."""
    return {
        "fcnseg_version": __version__,
        "git_hash": git_hash(),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "command": " ".join(sys.argv),
        "backbone_sha256": state_checksum(model.backbone),
        "dataset": dataset,
    }
