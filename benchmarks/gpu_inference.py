"""Inference on one accelerator: CPU-vs-device parity, then images/s for fp32 / bf16 / fp16 at
several batch sizes. Prints Markdown (called by benchmarks/gpu_check.sh).

Usage:
    python benchmarks/gpu_inference.py [--device cuda] [--batches 1 8 32] [--size 360 480]
        [--model fcn8s_vgg16] [--seconds 20]

Weights are random but the score layers are not zero, so every layer shapes the logits. Each
configuration runs for about ``--seconds`` after a warm-up; ``torch.cuda.synchronize`` brackets
the timing. A batch that does not fit in memory is reported as such, not as a failure.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from fcnseg.inference import prepare
from fcnseg.models import build_model

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def model_for(name: str, fc_channels: int | None) -> nn.Module:
    torch.manual_seed(0)
    kwargs = {"fc_channels": fc_channels} if fc_channels else {}
    model = build_model(name, num_classes=11, **kwargs).eval()
    with torch.no_grad():
        for key, p in model.named_parameters():
            if key.startswith("score"):
                p.normal_(0, 0.05)
    return model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def parity(model: nn.Module, device: torch.device, size: tuple[int, int]) -> list[str]:
    """Rows comparing the device's logits and labels with the CPU's fp32 ones."""
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(1))
    ref = model.float().cpu()(x)
    dev_model = prepare(model, device)
    rows = []
    for precision, dtype in DTYPES.items():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            out = dev_model(x.to(device)).float().cpu()
        diff = float((out - ref).abs().max())
        same = float((out.argmax(1) == ref.argmax(1)).float().mean())
        rows.append(f"| {precision} | {diff:.2e} | {same:.4%} |")
    model.cpu()
    return rows


@torch.no_grad()
def rate(model: nn.Module, device: torch.device, batch: int, size, dtype, seconds: float) -> str:
    x = torch.rand(batch, 3, *size, device=device).contiguous(memory_format=torch.channels_last)
    try:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            model(x)  # warm-up: kernel choice (cuDNN benchmark), allocator
            sync(device)
            n, t0 = 0, time.perf_counter()
            while n == 0 or time.perf_counter() - t0 < seconds:
                model(x)
                n += 1
                if n % 4 == 0:
                    sync(device)
            sync(device)
            return f"{batch * n / (time.perf_counter() - t0):.1f}"
    except torch.OutOfMemoryError:
        return "out of memory"
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="fcn8s_vgg16")
    parser.add_argument("--fc-channels", type=int, help="narrow fc6/fc7 (dry runs on a CPU)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--size", type=int, nargs=2, default=[360, 480])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    device = torch.device(args.device)
    size = tuple(args.size)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    else:
        name = "CPU (dry run)"
    model = model_for(args.model, args.fc_channels)
    print(f"### Inference: {args.model}, {size[0]}x{size[1]}, {name}\n")
    print("Parity with the CPU fp32 logits (batch 2):\n")
    print("| precision | max abs logit diff | labels equal |\n|---|---|---|")
    print("\n".join(parity(model, device, size)))
    dev_model = prepare(model, device)
    print(f"\nImages/s (autocast for bf16/fp16, channels-last, ~{args.seconds:g} s each):\n")
    print("| batch | " + " | ".join(DTYPES) + " |\n|---|" + "---|" * len(DTYPES))
    for batch in args.batches:
        cells = [rate(dev_model, device, batch, size, d, args.seconds) for d in DTYPES.values()]
        print(f"| {batch} | " + " | ".join(cells) + " |", flush=True)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        print(f"\nPeak memory allocated: {peak:.1f} GiB")


if __name__ == "__main__":
    main()
