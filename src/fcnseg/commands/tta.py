"""Inference options shared by ``evaluate`` and ``predict``: test-time augmentation, backend."""

from __future__ import annotations

import argparse


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
        help="torch, or onnxruntime: the model exported to ONNX once (cached beside the "
        "checkpoint) and run by ONNX Runtime, about 1.25x faster on CPUs; auto = onnxruntime "
        "for fp32 on the CPU when it is installed, else torch (default auto)",
    )


def tta_options(args: argparse.Namespace) -> dict:
    """The TTA keyword arguments of :func:`fcnseg.inference.predict_labels`; checked."""
    from fcnseg.inference import check_scales

    return {"scales": check_scales(args.tta_scales, "--tta-scales"), "flip": bool(args.tta_flip)}
