"""Every inference option, declared once: type, default, help, bounds and the one check.

:class:`InferenceConfig` is the single declaration for ``fcnseg predict``, ``evaluate`` and
``app`` (their flags are generated from it, see :func:`add_inference_arguments`), for
:func:`fcnseg.load` and :class:`fcnseg.Segmenter`'s methods (their keyword arguments carry the
same names and fall back to the same defaults) and for :func:`fcnseg.evaluation.evaluate_checkpoint`.
The choices of ``backend`` and ``precision`` are read from :data:`fcnseg.inference.backends.BACKENDS` and
:data:`fcnseg.inference.precision.PRECISIONS`, never copied.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
from dataclasses import dataclass
from typing import Any

import torch

from fcnseg.errors import FcnsegError
from fcnseg.inference.backends import BACKENDS
from fcnseg.inference.core import check_scales, check_tiling, pick_device
from fcnseg.inference.precision import PRECISIONS
from fcnseg.inference.resize import check_resize
from fcnseg.options import add_field_argument, check_value, flag, help_text, opt

# Chosen when the model is loaded (fcnseg.load); the others may change per call.
LOAD_OPTIONS = ("device", "precision", "backend", "calibration")
MIN_TILE = 64  # smaller tiles only multiply the work (tile=1 took 90 s for a tiny image)


def _check_device(value: Any, name: str) -> str:
    text = str(value) if not isinstance(value, str) else value
    pick_device(text)  # unknown names and absent CUDA fail here, before any work
    return text


def _check_folder(value: Any, name: str) -> str:
    if not isinstance(value, str | os.PathLike) or not os.fspath(value).strip():
        raise FcnsegError(f"{name} must be a folder of images, got {value!r}")
    if not os.path.isdir(value):
        raise FcnsegError(f"{name} {os.fspath(value)}: not a folder of images")
    return os.fspath(value)


def _check_scales(value: Any, name: str) -> tuple[float, ...]:
    return check_scales(value, name)


@dataclass(frozen=True)
class InferenceConfig:
    """How images are segmented (``fcnseg predict``/``evaluate``/``app``; ``fcnseg.load``)."""

    device: str = opt(
        "auto", "where the model runs: auto (CUDA when present, else CPU), cpu, cuda, cuda:N",
        check=_check_device, metavar="DEVICE",
    )  # fmt: skip
    precision: str = opt(
        "fp32",
        "numeric precision; bf16 is faster on CPUs with AVX512-BF16/AMX and recent GPUs; int8: "
        "the export quantized once (OpenVINO + NNCF, cached beside the checkpoint), fastest on "
        "CPUs with VNNI/AMX",
        choices=PRECISIONS,
    )
    backend: str = opt(
        "auto",
        "torch; onnxruntime or openvino: the model exported to ONNX once (cached beside the "
        "checkpoint) and run by ONNX Runtime (fp32) or OpenVINO (fp32, bf16, int8; pip install "
        "'fcnseg[openvino]'); auto = the fastest of these installed for the precision on the "
        "CPU (docs/benchmarks.md), torch on a GPU",
        choices=BACKENDS,
    )
    calibration: str | None = opt(
        None,
        "--precision int8: a folder of images to calibrate on (default: the checkpoint's own "
        "training images, where it records them)",
        check=_check_folder,
        metavar="DIR",
    )
    resize: str = opt(
        "auto",
        "the working scale: each image is resized (aspect kept) until its long side is this "
        "many pixels, run there, and its class scores resampled to the image's own size; auto = the "
        "size the model was trained at (recorded in the checkpoint), none = each image's own "
        "size",
        check=check_resize,
        metavar="auto|none|PIXELS",
    )
    tile: int = opt(
        1024,
        "images larger than this in a side (after --resize, in model pixels) are segmented in "
        "overlapping tiles of this size, so memory stays bounded",
        low=MIN_TILE,
        metavar="PIXELS",
    )
    overlap: int = opt(128, "tile overlap in model pixels, smaller than --tile", low=0,
                       metavar="PIXELS")  # fmt: skip
    tta_scales: tuple[float, ...] = opt(
        (1.0,),
        "test-time augmentation: average class probabilities over the image resized by each "
        "scale (relative to the working scale), e.g. 0.75 1 1.25 1.5; 1 = no augmentation",
        nargs="+",
        check=_check_scales,
        metavar="S",
    )
    tta_flip: bool = opt(
        False, "test-time augmentation: also average over mirrored images (2x the work)"
    )
    batch_size: int = opt(4, "images (or video frames) of one size segmented together", low=1)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.default is None:  # optional and not given
                continue
            object.__setattr__(self, f.name, check_value(InferenceConfig, f, value))
        check_tiling(self.tile, self.overlap, ("--tile", "--overlap"))

    @classmethod
    def fields(cls) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls)

    def replace(self, **changes: Any) -> InferenceConfig:
        """A checked copy with ``changes`` (``None`` values mean "not given": kept as they are);
        FcnsegError for an unknown option or a bad value."""
        return make_config(self, changes)

    def runtime(self) -> torch.device:
        """The device, after checking that device, precision and backend can run together
        here (bf16 needs a fast bf16 device; ONNX Runtime is CPU and fp32 only)."""
        from fcnseg.inference.backends import resolve_backend
        from fcnseg.inference.core import autocast

        device = pick_device(self.device)
        autocast(self.precision, device)
        resolve_backend(self.backend, self.precision, device)
        return device

    def call_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`fcnseg.inference.predict_many` (resize aside)."""
        return {"tile": self.tile, "overlap": self.overlap, "scales": self.tta_scales,
                "flip": self.tta_flip}  # fmt: skip


OPTION_NAMES = tuple(f.name for f in InferenceConfig.fields())
CALL_OPTIONS = tuple(n for n in OPTION_NAMES if n not in LOAD_OPTIONS)


def make_config(base: InferenceConfig | None = None, changes: dict[str, Any] | None = None):
    """``base`` (default: the declared defaults) with ``changes`` whose values are not None."""
    values = dataclasses.asdict(base) if base is not None else {}
    for key, value in (changes or {}).items():
        if key not in OPTION_NAMES:
            close = difflib.get_close_matches(key, OPTION_NAMES, n=1)
            hint = (
                f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(OPTION_NAMES)})"
            )
            raise FcnsegError(f"unknown inference option {key!r}{hint}")
        if value is not None:
            values[key] = value
    return InferenceConfig(**values)


def add_inference_arguments(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """The flags of every inference option (but ``exclude``); their defaults are ``None``, so
    :func:`config_from_args` applies the declared ones."""
    group = parser.add_argument_group("inference options")
    for f in InferenceConfig.fields():
        if f.name not in exclude:
            add_field_argument(group, InferenceConfig, f, help_text(f))


def config_from_args(args: argparse.Namespace) -> InferenceConfig:
    """The checked options given as flags, the declared defaults for the rest."""
    given = {}
    for name in OPTION_NAMES:
        value = getattr(args, name, None)
        given[name] = tuple(value) if isinstance(value, list) else value
    return make_config(None, given)


__all__ = [
    "CALL_OPTIONS",
    "LOAD_OPTIONS",
    "OPTION_NAMES",
    "InferenceConfig",
    "add_inference_arguments",
    "config_from_args",
    "flag",
    "make_config",
]
