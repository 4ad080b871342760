"""One training step of the classic recipe with the trunk cached (``--freeze features``): fc6/fc7
and the head forward and backward on cached pool3/pool4/pool5 features, as ``fcnseg train``
runs it, in fp32 and bf16 autocast (what ``--precision bf16-mixed`` does on a CPU), NCHW and
channels-last, side by side in one process.

Usage:
    python benchmarks/bench_fc_training.py [--batch 4] [--rounds 2]

Rounds go round-robin over the variants so that a change of load hits all of them alike; the
best step of each is reported, with its ratio to fp32 NCHW (the path training takes today).
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine_summary, table

from fcnseg.models import build_model
from fcnseg.training.losses import build_loss
from fcnseg.training.setup import param_groups

H, W = 360, 480
SHAPES = {"pool3": (256, 48, 60), "pool4": (512, 24, 30), "pool5": (512, 12, 15)}  # 384x480 padded


def setup(channels_last: bool, batch: int):
    torch.manual_seed(0)
    model = build_model("fcn8s_vgg16", num_classes=11)
    model.freeze("features")  # frozen parts stay in eval mode through model.train()
    model.train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.SGD(param_groups(model, 1e-4, 1.0), lr=1e-4, momentum=0.9, weight_decay=1e-5)
    gen = torch.Generator().manual_seed(1)
    feats = {
        k: torch.rand(batch, *s, generator=gen).contiguous(memory_format=fmt)
        for k, s in SHAPES.items()
    }
    target = torch.randint(0, 11, (batch, H, W), generator=gen)
    return model, opt, feats, target


def make_step(channels_last: bool, bf16: bool, batch: int):
    model, opt, feats, target = setup(channels_last, batch)
    loss_fn = build_loss("seed", 11, None)

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model.decode(feats, (H, W))
            loss = loss_fn(logits.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    return step


VARIANTS = {
    "fp32 NCHW (today)": (False, False),
    "fp32 channels-last": (True, False),
    "bf16 autocast NCHW (bf16-mixed)": (False, True),
    "bf16 autocast channels-last": (True, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(machine_summary(), flush=True)
    steps = {}
    for name, (cl, bf16) in VARIANTS.items():
        steps[name] = make_step(cl, bf16, args.batch)
        steps[name]()  # warm-up
    best: dict[str, float] = {}
    for r in range(args.rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in best.items()), flush=True)
    base = best["fp32 NCHW (today)"]
    rows = [
        {
            "variant": name,
            "s/step": f"{t:.2f}",
            "s/image": f"{t / args.batch:.3f}",
            "speed vs today": f"{base / t:.2f}x",
        }
        for name, t in best.items()
    ]
    print(f"FCN-8s VGG16 --freeze features, cached trunk, batch {args.batch}, {H}x{W}, seed loss")
    print(table(rows, list(rows[0])))
    print(machine_summary(load_only=True))


if __name__ == "__main__":
    main()
