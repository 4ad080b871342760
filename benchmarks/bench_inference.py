"""Inference speed at 360x480: images/s at batch 1 and 4, fp32 (channels-last) and bf16.

Usage: python benchmarks/bench_inference.py [--repeats 3]
Weights are random (speed does not depend on them). bf16 uses CPU autocast (AVX512-BF16/AMX).
"""

from __future__ import annotations

import argparse
import time

import torch
from common import table

from fcnseg.inference import autocast, prepare
from fcnseg.models import build_model


def rate(model, batch: int, precision: str, repeats: int) -> float:
    x = torch.rand(batch, 3, 360, 480).contiguous(memory_format=torch.channels_last)
    device = torch.device("cpu")
    with torch.no_grad(), autocast(precision, device):
        model(x)  # warm-up (oneDNN picks its kernels)
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(x)
    return batch * repeats / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for name in ("fcn8s_vgg16", "fcn8s_efficientnet_lite0"):
        model = prepare(build_model(name, num_classes=11), torch.device("cpu"))
        for batch in (1, 4):
            row = {"model": name, "batch": batch}
            for precision in ("fp32", "bf16"):
                row[f"{precision} img/s"] = f"{rate(model, batch, precision, args.repeats):.2f}"
            rows.append(row)
    print(f"360x480, {torch.get_num_threads()} threads")
    print(table(rows, list(rows[0])))


if __name__ == "__main__":
    main()
