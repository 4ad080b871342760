"""``fcnseg demo``: the main job on built-in data that needs no download."""

from __future__ import annotations

import argparse

from fcnseg.models import build_model, list_models


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the pipeline on built-in synthetic data (no download)")
    p.add_argument("--out", default="runs/demo", help="run folder (default runs/demo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    for name in list_models():
        model = build_model(name, num_classes=11).eval()
        params = sum(p.numel() for p in model.parameters())
        with torch.no_grad():
            logits = model(torch.rand(1, 3, 97, 131))
        print(f"{name}: {params / 1e6:.1f}M parameters, 1x3x97x131 -> {tuple(logits.shape)}")
    return 0
