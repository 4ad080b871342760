"""Inference speed at 360x480 beside the PyPI peers, all measured in one run on this machine.

Usage:
    python benchmarks/bench_inference.py [--repeats 3] [--peer-runs 3] [--batches 1 4]
        [--torchfcn-python PY] [--keras-segmentation-python PY] [--models fcn8s_vgg16 ...]

Prints the CPU (model, AVX/AVX-512/AMX flags, cores, torch threads) and the load average before
and after: every number belongs to this machine at that load. Weights are random (speed does not
depend on them). fcnseg runs each backend of :mod:`fcnseg.backends` (``torch``: channels-last
eager; ``onnxruntime``: the ONNX export, fp32) and bf16 where the CPU has AVX512-BF16 or AMX
(autocast over weights stored in bf16, as ``load_backend`` does). The peers run in their own
virtual environments (built by ``bash benchmarks/peers/setup.sh``), each in its own process at its
own threading defaults, several times: TensorFlow's rate differs from process to process (bimodal
on some machines), so the best run of each peer is the one compared.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import machine_summary, table

from fcnseg.backends import build_onnx_model, load_backend, onnxruntime_available
from fcnseg.inference import autocast
from fcnseg.models import build_model
from fcnseg.precision import cpu_bf16_feature

PEERS = Path(__file__).resolve().parent / "peers"
CPU = torch.device("cpu")


def rate(model, batch: int, precision: str, repeats: int) -> float:
    """Best images/s over ``repeats`` calls after a warm-up call."""
    x = torch.rand(batch, 3, 360, 480).contiguous(memory_format=torch.channels_last)
    best = 0.0
    with torch.no_grad(), autocast(precision, CPU):
        model(x)  # warm-up (oneDNN picks its kernels, ONNX Runtime plans memory)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            best = max(best, batch / (time.perf_counter() - t0))
    return best


def peer_rates(python: str, script: str, repeats: int, runs: int, batches: list[int]) -> dict:
    """Run a peer's script ``runs`` times with its own Python, each in a fresh process; the best
    rate per batch, and every run's rates: {"name", "size", "rates", "all"}."""
    env = {**os.environ, "SETUPTOOLS_USE_DISTUTILS": "stdlib", "PYTHONWARNINGS": "ignore"}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        env.pop(var, None)  # the peers' own threading defaults
    best: dict | None = None
    every = []
    for _ in range(runs):
        cmd = [python, str(PEERS / script), str(repeats), *map(str, batches)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        if done.returncode != 0 or not lines:
            sys.exit(f"{script} failed with {python}:\n{done.stderr[-2000:]}")
        result = json.loads(lines[-1])
        rates = {int(k): v for k, v in result["rates"].items()}
        every.append(rates)
        if best is None:
            best = {**result, "rates": dict(rates)}
        else:
            best["rates"] = {b: max(best["rates"][b], r) for b, r in rates.items()}
    best["all"] = every
    return best


def fcnseg_rows(name: str, batches: list[int], repeats: int, peers: list[dict]) -> list[dict]:
    torch.manual_seed(0)
    model = build_model(name, num_classes=11).eval()
    variants = [("torch fp32", load_backend(model, "torch"), "fp32")]
    if onnxruntime_available():
        variants.append(("onnxruntime fp32", build_onnx_model(model), "fp32"))
    if cpu_bf16_feature() is not None:
        bf16 = load_backend(copy.deepcopy(model), "torch", precision="bf16")
        variants.append(("torch bf16", bf16, "bf16"))
    rows = []
    for label, runner, precision in variants:
        for batch in batches:
            r = rate(runner, batch, precision, repeats)
            row = {"model": f"fcnseg {name}", "backend": label, "input": "360x480", "batch": batch}
            row["img/s"] = f"{r:.2f}"
            for peer in peers:
                if batch in peer["rates"] and name == "fcn8s_vgg16":
                    row[f"vs {peer['short']}"] = f"{r / peer['rates'][batch]:.2f}x"
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per configuration")
    parser.add_argument(
        "--peer-runs", type=int, default=3, help="keras-segmentation processes (best kept)"
    )
    parser.add_argument(
        "--torchfcn-runs", type=int, default=1, help="torchfcn processes (its rate is steady)"
    )
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--models", nargs="+", default=["fcn8s_vgg16", "fcn8s_efficientnet_lite0"])
    parser.add_argument("--torchfcn-python", help="Python of a venv with torchfcn 1.9.7")
    parser.add_argument(
        "--keras-segmentation-python",
        help="Python of a venv with keras-segmentation 0.3.0 and tensorflow-cpu 2.15.1",
    )
    args = parser.parse_args()
    print(machine_summary(), flush=True)
    if cpu_bf16_feature() is None:
        print("bf16: not measured, this CPU has neither AVX512-BF16 nor AMX")
    peers = []
    for python, script, short, runs in (
        (args.torchfcn_python, "torchfcn_rate.py", "torchfcn", args.torchfcn_runs),
        (args.keras_segmentation_python, "keras_segmentation_rate.py", "keras-seg", args.peer_runs),
    ):
        if python:
            peer = peer_rates(python, script, args.repeats, runs, args.batches)
            peer["short"] = short
            runs = "; ".join(
                ", ".join(f"b{b} {r:.2f}" for b, r in rates.items()) for rates in peer["all"]
            )
            print(f"{peer['name']}: img/s per process run: {runs}", flush=True)
            peers.append(peer)
    rows = [
        {
            "model": peer["name"],
            "backend": peer.get("backend", ""),
            "input": peer["size"],
            "batch": b,
            "img/s": f"{r:.2f}",
        }
        for peer in peers
        for b, r in peer["rates"].items()
    ]
    for name in args.models:
        rows.extend(fcnseg_rows(name, args.batches, args.repeats, peers))
    columns = list(dict.fromkeys(c for r in rows for c in r))
    print(
        f"\nimages/s, best of {args.repeats} calls (keras-segmentation: best of {args.peer_runs} "
        "processes; peers at their own threading defaults); every number from the machine above"
    )
    print(table(rows, columns))
    print(machine_summary(load_only=True))


if __name__ == "__main__":
    main()
