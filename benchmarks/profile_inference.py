"""Where inference time goes in FCN-8s VGG16: time and GFLOP/s per layer group.

Usage:
    python benchmarks/profile_inference.py [--batch 4] [--rounds 2] [--nchw] [--bf16]

Each convolution is timed by forward hooks (wall clock, so the numbers include its ReLU-free
convolution only); times are grouped into the VGG16 trunk's 13 convolutions, fc6, fc7 and the
rest (ReLU, pooling, padding, head, upsampling), from the fastest of ``--rounds`` calls after a
warm-up. GFLOP/s counts a multiply-add as two FLOPs.
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine_summary, table
from torch import nn

from fcnseg.inference import prepare
from fcnseg.models import build_model

H, W = 360, 480


def conv_flops(model: nn.Module, batch: int) -> dict[str, float]:
    """FLOPs per conv module name, from the output sizes of one forward pass."""
    flops: dict[str, float] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):

            def hook(mod, inp, out, name=name):
                k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
                flops[name] = 2.0 * out.numel() * k

            hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        model(torch.rand(batch, 3, H, W))
    for h in hooks:
        h.remove()
    return flops


def group(name: str) -> str:
    if name.startswith("backbone"):
        return "trunk (13 convs)"
    if name.startswith("neck.fc6"):
        return "fc6"
    if name.startswith("neck.fc7"):
        return "fc7"
    return "rest"


def timed_groups(model: nn.Module, x: torch.Tensor, rounds: int) -> tuple[dict[str, float], float]:
    """Seconds per group (forward hooks around each conv) and the whole call, best round."""
    best: tuple[dict[str, float], float] | None = None
    starts: dict[str, float] = {}
    spent: dict[str, float] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(
                m.register_forward_pre_hook(
                    lambda mod, inp, name=name: starts.__setitem__(name, time.perf_counter())
                )
            )
            hooks.append(
                m.register_forward_hook(
                    lambda mod, inp, out, name=name: spent.__setitem__(
                        group(name),
                        spent.get(group(name), 0.0) + time.perf_counter() - starts[name],
                    )
                )
            )
    with torch.no_grad():
        model(x)
        for _ in range(rounds):
            spent.clear()
            t0 = time.perf_counter()
            model(x)
            total = time.perf_counter() - t0
            if best is None or total < best[1]:
                best = (dict(spent), total)
    for h in hooks:
        h.remove()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--nchw", action="store_true", help="NCHW instead of channels-last")
    parser.add_argument("--bf16", action="store_true", help="bf16 weights under autocast")
    args = parser.parse_args()
    print(machine_summary(), flush=True)
    torch.manual_seed(0)
    model = build_model("fcn8s_vgg16", num_classes=11).eval()
    flops: dict[str, float] = {}
    for name, f in conv_flops(model, args.batch).items():
        flops[group(name)] = flops.get(group(name), 0.0) + f
    model = prepare(model, torch.device("cpu"), channels_last=not args.nchw)
    x = torch.rand(args.batch, 3, H, W)
    if not args.nchw:
        x = x.contiguous(memory_format=torch.channels_last)
    if args.bf16:
        model = model.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
        spent, total = timed_groups(model, x, args.rounds)
    spent["rest"] = total - sum(spent.values())
    rows = []
    for g in ("trunk (13 convs)", "fc6", "fc7", "rest"):
        t = spent.get(g, 0.0)
        f = flops.get(g, 0.0)
        rows.append(
            {
                "part": g,
                "s": f"{t:.2f}",
                "share": f"{t / total:.0%}",
                "GFLOP": f"{f / 1e9:.0f}",
                "GFLOP/s": f"{f / t / 1e9:.0f}" if f and t > 0 else "",
            }
        )
    layout = "NCHW" if args.nchw else "channels-last"
    precision = "bf16" if args.bf16 else "fp32"
    print(f"FCN-8s VGG16 {precision} {layout}, batch {args.batch}, {H}x{W}: {total:.2f} s per call")
    print(table(rows, list(rows[0])))
    print(machine_summary(load_only=True))


if __name__ == "__main__":
    main()
