"""Channels-last against NCHW for the two CPU-heavy parts of the dataset1 recipes' training, side
by side in one process:

- one fine-tuning step of ``dataset1_rare_finetune`` (EfficientNet-Lite2 FCN-8s, nothing frozen,
  pretrained BatchNorm statistics kept, input scale 1.5, 320x320 crops, CE + Lovasz, AdamW),
  forward and backward in fp32;
- the frozen backbone's forward that fills the feature cache of ``dataset1_best_frozen``
  (360x480 images at input scale 1.5, no gradients).

Usage:
    python benchmarks/bench_channels_last.py [--batch 8] [--rounds 3] [--threads N]

Rounds go round-robin over the variants so that a change of load hits all alike; the best time of
each is reported with its ratio to NCHW. Weights are random (the speed does not depend on them);
both layouts start from the same weights, and their first losses / largest feature difference
are printed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from common import machine_summary, race, table

from fcnseg.models import build_model
from fcnseg.training.feature_cache import frozen_features
from fcnseg.training.losses import build_loss

CROP, SCALE, CLASSES, H, W = 320, 1.5, 11, 360, 480
CL = torch.channels_last


def lite2(freeze: str) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("fcn8s_efficientnet_lite2", num_classes=CLASSES, input_scale=SCALE)
    model.freeze(freeze, norm_eval=True)
    return model


def make_step(channels_last: bool, batch: int) -> Callable[[], float]:
    """What ``fcnseg train`` does per step from images (channels-last since 7 December)."""
    model = lite2("none").train()
    fmt = CL if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(batch, 3, CROP, CROP, generator=gen).contiguous(memory_format=fmt)
    target = torch.randint(0, CLASSES, (batch, CROP, CROP), generator=gen)
    loss_fn = build_loss("ce+lovasz", 255)

    def step() -> float:
        loss = loss_fn(model(images), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def make_encode(channels_last: bool, batch: int) -> Callable[[], dict]:
    """What the feature cache runs per batch (channels-last input since 7 December)."""
    model = lite2("backbone").eval()
    x = torch.rand(batch, 3, H, W, generator=torch.Generator().manual_seed(2))
    x = x.contiguous(memory_format=CL) if channels_last else x
    return lambda: {k: v.contiguous() for k, v in frozen_features(model, "backbone", x).items()}


def report(title: str, best: dict[str, float], unit: str) -> None:
    base = next(iter(best.values()))
    rows = [{"layout": k, unit: f"{t:.2f}", "speed vs NCHW": f"{base / t:.2f}x"}
            for k, t in best.items()]  # fmt: skip
    print(title)
    print(table(rows, list(rows[0])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=8, help="fine-tuning batch (encode: 4)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_summary(), flush=True)
    with torch.no_grad():
        encodes = {"NCHW": make_encode(False, 4), "channels-last": make_encode(True, 4)}
        a, b = (fn() for fn in encodes.values())
        diff = max(float((a[k] - b[k]).abs().max()) for k in a)
        print(f"feature cache forward: largest difference between layouts {diff:.2e}")
        enc = race(encodes, args.rounds)
    steps = {"NCHW": make_step(False, args.batch), "channels-last": make_step(True, args.batch)}
    first = {k: fn() for k, fn in steps.items()}  # warm-up, from the same weights
    print("first-step loss: " + ", ".join(f"{k} {v:.5f}" for k, v in first.items()))
    step = race(steps, args.rounds)
    threads = torch.get_num_threads()
    report(f"Lite2 FCN-8s fine-tuning step, batch {args.batch} of {CROP}x{CROP} at input scale "
           f"{SCALE}, {threads} threads", step, "s/step")  # fmt: skip
    report(f"feature cache forward (frozen Lite2 backbone), batch 4 of {H}x{W} at input scale "
           f"{SCALE}, {threads} threads", enc, "s/batch")  # fmt: skip
    print(machine_summary(load_only=True))


if __name__ == "__main__":
    main()
