"""Inference speed at 360x480 beside the PyPI peers, all measured in one run on this machine.

Usage:
    python benchmarks/bench_inference.py [--repeats 3] [--peer-runs 3] [--batches 1 4]
        [--torchfcn-python PY] [--keras-segmentation-python PY] [--models fcn8s_vgg16 ...]

Prints the CPU (model, AVX/AVX-512/AMX flags, cores, torch threads) and the load average before
and after: every number belongs to this machine at that load. Weights are random (speed does not
depend on them). fcnseg runs each backend of :mod:`fcnseg.inference.backends` (``torch``: channels-last
eager; ``onnxruntime``: the ONNX export, fp32; ``openvino``: the same file, fp32, bf16 and int8)
and bf16 where the CPU has AVX512-BF16 or AMX (autocast over weights stored in bf16, as
``load_backend`` does). int8 is quantized on ``--int8-crops`` crops (of dataset1's training
images where present; speed does not depend on them). The row "OpenVINO default" is what a
deployer would otherwise do: our ONNX file compiled by OpenVINO at its own defaults
(``ov.Core().compile_model(path, "CPU")``: bf16 on CPUs with AVX512-BF16 or AMX). The peers run in their own
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
import tempfile
import time
from pathlib import Path

import torch
from common import machine_summary, table

from fcnseg.inference import autocast
from fcnseg.inference.backends import (
    OnnxRuntimeModel,
    load_backend,
    nncf_available,
    onnx_session,
    onnxruntime_available,
    openvino_available,
)
from fcnseg.inference.export import export_onnx
from fcnseg.inference.precision import cpu_bf16_feature, cpu_int8_feature
from fcnseg.models import build_model

PEERS = Path(__file__).resolve().parent / "peers"
CPU = torch.device("cpu")


def round_robin(runners: list, batch: int, repeats: int) -> dict[str, float]:
    """Best images/s of each runner over ``repeats`` rounds, each round calling every runner
    once in turn, so that a change of load on a shared machine falls on all of them alike."""
    x = torch.rand(batch, 3, 360, 480).contiguous(memory_format=torch.channels_last)
    best = dict.fromkeys((label for label, _, _ in runners), 0.0)
    with torch.no_grad():
        for _, runner, precision in runners:  # warm-up (kernels picked, memory planned)
            with autocast(precision, CPU):
                runner(x)
        for i in range(repeats):
            for label, runner, precision in runners:
                with autocast(precision, CPU):
                    t0 = time.perf_counter()
                    runner(x)
                    r = batch / (time.perf_counter() - t0)
                best[label] = max(best[label], r)
                print(f"round {i + 1}: {label} {r:.2f} img/s", flush=True)
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


def calibration(count: int) -> list:
    """``count`` crops of dataset1's training images (random images where it is absent)."""
    from common import DATASET1

    from fcnseg.inference.quantize import calibration_crops

    images = sorted((DATASET1 / "images_prepped_train").glob("*.png"))
    if images:
        return calibration_crops(images, count)
    return [torch.rand(1, 3, 256, 256).numpy() for _ in range(count)]


def variants(model, onnx_path: Path, int8_crops: int) -> list[tuple[str, object, str]]:
    """(label, runner, precision) for every path of fcnseg on this machine, and OpenVINO's own
    default on the same ONNX file."""
    out = [("fcnseg torch fp32", load_backend(model, "torch"), "fp32")]
    if onnxruntime_available():
        out.append(
            ("fcnseg onnxruntime fp32", OnnxRuntimeModel(onnx_session(onnx_path), 11), "fp32")
        )
    if openvino_available():
        from fcnseg.inference.openvino_backend import OpenVinoModel, compile_model, import_openvino

        ov = import_openvino()  # OpenVINO's defaults for speed; its telemetry declined

        default = ov.Core().compile_model(str(onnx_path), "CPU")
        hint = default.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        out.append((f"OpenVINO default ({hint})", OpenVinoModel(default, 11), "fp32"))
        out.append(
            ("fcnseg openvino fp32", OpenVinoModel(compile_model(onnx_path, "fp32")), "fp32")
        )
        if cpu_bf16_feature() is not None:
            out.append(
                ("fcnseg openvino bf16", OpenVinoModel(compile_model(onnx_path, "bf16")), "fp32")
            )
        if nncf_available():
            from fcnseg.inference.quantize import quantize

            t0 = time.perf_counter()
            int8 = quantize(onnx_path, calibration(int8_crops))
            print(f"int8: quantized on {int8_crops} crops in {time.perf_counter() - t0:.0f} s; "
                  f"int8 instructions: {cpu_int8_feature() or 'none (no VNNI/AMX)'}", flush=True)  # fmt: skip
            out.append(("fcnseg openvino int8", OpenVinoModel(compile_model(int8, "int8")), "fp32"))
    if cpu_bf16_feature() is not None:
        bf16 = load_backend(copy.deepcopy(model), "torch", precision="bf16")
        out.append(("fcnseg torch bf16", bf16, "bf16"))
    return out


def fcnseg_rows(
    name: str, batches: list[int], repeats: int, peers: list[dict], int8_crops: int
) -> list[dict]:
    torch.manual_seed(0)
    model = build_model(name, num_classes=11).eval()
    with torch.no_grad():  # non-zero score layers: labels (and int8 ranges) mean something
        for pname, p in model.named_parameters():
            if pname.startswith("score"):
                p.normal_(std=0.01)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(copy.deepcopy(model), onnx_path)
        runners = variants(model, onnx_path, int8_crops)
    for batch in batches:
        rates = round_robin(runners, batch, repeats)
        reference = next((r for lb, r in rates.items() if lb.startswith("OpenVINO default")), None)
        for label, r in rates.items():
            row = {"model": name, "implementation": label, "input": "360x480", "batch": batch}
            row["img/s"] = f"{r:.2f}"
            for peer in peers:
                if batch in peer["rates"] and name == "fcn8s_vgg16":
                    row[f"vs {peer['short']}"] = f"{r / peer['rates'][batch]:.2f}x"
            if reference:
                row["vs OpenVINO default"] = f"{r / reference:.2f}x"
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
    parser.add_argument(
        "--int8-crops", type=int, default=32, help="calibration crops for int8 (speed only)"
    )
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
            "model": "fcn8s_vgg16",
            "implementation": f"{peer['name']} ({peer.get('backend', '')})",
            "input": peer["size"],
            "batch": b,
            "img/s": f"{r:.2f}",
        }
        for peer in peers
        for b, r in peer["rates"].items()
    ]
    for name in args.models:
        rows.extend(fcnseg_rows(name, args.batches, args.repeats, peers, args.int8_crops))
    columns = list(dict.fromkeys(c for r in rows for c in r))
    print(
        f"\nimages/s, best of {args.repeats} calls (keras-segmentation: best of {args.peer_runs} "
        "processes; peers at their own threading defaults); every number from the machine above"
    )
    print(table(rows, columns))
    print(machine_summary(load_only=True))


if __name__ == "__main__":
    main()
