"""Inference options shared by ``evaluate`` and ``predict``: test-time augmentation, backend."""

from __future__ import annotations

import argparse

from fcnseg.errors import FcnsegError


def add_tta_arguments(p: argparse.ArgumentParser) -> None:
    """``--tta-scales`` and ``--tta-flip``, shared by evaluate and predict."""
    p.add_argument(
        "--tta-scales",
        type=float,
        nargs="+",
        default=[1.0],
        metavar="S",
        help="test-time augmentation: average class probabilities over the image resized by "
        "each scale, e.g. 0.75 1 1.25 1.5 (default 1: no resizing)",
    )
    p.add_argument(
        "--tta-flip",
        action="store_true",
        help="test-time augmentation: also average over mirrored images (2x the work)",
    )


def add_backend_argument(p: argparse.ArgumentParser) -> None:
    """``--backend``, shared by evaluate and predict."""
    from fcnseg.backends import BACKENDS

    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="torch; onnxruntime or openvino: the model exported to ONNX once (cached beside the "
        "checkpoint) and run by ONNX Runtime (fp32) or OpenVINO (fp32, bf16, int8; pip install "
        "'fcnseg[openvino]'); auto = the fastest of these installed for the precision on the "
        "CPU (docs/benchmarks.md), torch on a GPU (default auto)",
    )


def add_precision_arguments(p: argparse.ArgumentParser) -> None:
    """``--precision`` and ``--calibration``, shared by evaluate and predict."""
    from fcnseg.precision import PRECISIONS

    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="bf16 is faster on CPUs with AVX512-BF16/AMX; int8: the export quantized once "
        "(OpenVINO + NNCF, cached beside the checkpoint), fastest on CPUs with VNNI/AMX "
        "(default fp32)",
    )
    p.add_argument(
        "--calibration",
        metavar="DIR",
        help="--precision int8: a folder of images to calibrate on (default: the checkpoint's "
        "own training images, where it records them)",
    )


def tta_options(args: argparse.Namespace) -> dict:
    """The TTA keyword arguments of :func:`fcnseg.inference.predict_labels`; checked."""
    if any(s <= 0 for s in args.tta_scales):
        raise FcnsegError(f"--tta-scales must be positive, got {args.tta_scales}")
    return {"scales": tuple(args.tta_scales), "flip": bool(args.tta_flip)}
