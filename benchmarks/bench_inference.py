"""Inference speed at 360x480: images/s at batch 1 and 4, fp32 (channels-last) and bf16, beside
the PyPI peers measured in the same run.

Usage:
    python benchmarks/bench_inference.py [--repeats 3]
        [--torchfcn-python PY] [--keras-segmentation-python PY]

Weights are random (speed does not depend on them). bf16 uses CPU autocast (AVX512-BF16/AMX).
The peers run in their own virtual environments (their pins clash with fcnseg's; see
benchmarks/README.md), each through a small script in benchmarks/peers/ that prints its rates.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import table

from fcnseg.inference import autocast, prepare
from fcnseg.models import build_model

PEERS = Path(__file__).resolve().parent / "peers"


def rate(model, batch: int, precision: str, repeats: int) -> float:
    x = torch.rand(batch, 3, 360, 480).contiguous(memory_format=torch.channels_last)
    device = torch.device("cpu")
    with torch.no_grad(), autocast(precision, device):
        model(x)  # warm-up (oneDNN picks its kernels)
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(x)
    return batch * repeats / (time.perf_counter() - t0)


def peer_rates(python: str, script: str, repeats: int) -> dict:
    """Run a peer's script with its own Python; {"name", "size", "rates": {batch: img/s}}."""
    env = {**os.environ, "SETUPTOOLS_USE_DISTUTILS": "stdlib", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [python, str(PEERS / script), str(repeats)], capture_output=True, text=True, env=env
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.exit(f"{script} failed with {python}:\n{done.stderr[-2000:]}")
    result = json.loads(lines[-1])
    result["rates"] = {int(k): v for k, v in result["rates"].items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--torchfcn-python", help="Python of a venv with torchfcn 1.9.7")
    parser.add_argument(
        "--keras-segmentation-python",
        help="Python of a venv with keras-segmentation 0.3.0 and tensorflow-cpu 2.15.1",
    )
    args = parser.parse_args()
    peers = []
    if args.torchfcn_python:
        peers.append(peer_rates(args.torchfcn_python, "torchfcn_rate.py", args.repeats))
    if args.keras_segmentation_python:
        peers.append(
            peer_rates(args.keras_segmentation_python, "keras_segmentation_rate.py", args.repeats)
        )
    rows = []
    for peer in peers:
        for batch, r in peer["rates"].items():
            rows.append(
                {
                    "model": peer["name"],
                    "input": peer["size"],
                    "batch": batch,
                    "fp32 img/s": f"{r:.2f}",
                }
            )
    for name in ("fcn8s_vgg16", "fcn8s_efficientnet_lite0"):
        model = prepare(build_model(name, num_classes=11), torch.device("cpu"))
        for batch in (1, 4):
            row = {"model": f"fcnseg {name}", "input": "360x480", "batch": batch}
            for precision in ("fp32", "bf16"):
                r = rate(model, batch, precision, args.repeats)
                row[f"{precision} img/s"] = f"{r:.2f}"
                for peer in peers:
                    if name == "fcn8s_vgg16":
                        short = peer["name"].split()[0]
                        row[f"{precision} / {short}"] = f"{r / peer['rates'][batch]:.2f}x"
            rows.append(row)
    columns = list(dict.fromkeys(c for r in rows for c in r))
    print(f"{torch.get_num_threads()} threads; peers' fp32 at their own defaults (NCHW / NHWC)")
    print(table(rows, columns))


if __name__ == "__main__":
    main()
