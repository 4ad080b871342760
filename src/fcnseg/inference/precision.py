"""The inference precisions, and whether one is fast on a device: ``bf16`` only runs where it is.

``PRECISIONS``: ``fp32``; ``bf16`` (torch autocast over bf16-stored weights, or OpenVINO's bf16
inference precision); ``int8`` (the ONNX export quantized after training by NNCF and run by
OpenVINO, see :mod:`fcnseg.inference.quantize`).

On an x86 CPU, bf16 convolutions are fast with AVX512-BF16 or AMX; oneDNN also accepts bf16 on
plain AVX-512 (``torch.ops.mkldnn._is_mkldnn_bf16_supported()`` says True there) but emulates it by
converting to fp32, which is slower than fp32 itself. So the check asks for the instructions, not
for oneDNN's acceptance.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from fcnseg.errors import FcnsegError

# The inference precisions (``--precision``, ``fcnseg.load(precision=...)``); read, never copied.
PRECISIONS = ("fp32", "bf16", "int8")


def cpu_bf16_feature() -> str | None:
    """The CPU feature that makes bf16 fast (``AMX``, ``AVX512-BF16``, ``ARM BF16``), or None."""
    cpu = torch.cpu
    # Private but stable since torch 2.3 (cpuinfo underneath); absent means "cannot tell": None.
    if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return "AMX"
    if getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "AVX512-BF16"
    if platform.machine().lower() in ("aarch64", "arm64"):
        # On Arm, oneDNN's check is cpuinfo's BF16 extension itself.
        if torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return "ARM BF16"
    return None


def cpu_int8_feature() -> str | None:
    """The CPU feature that makes int8 convolutions fast (``AMX``, ``VNNI``), or None.

    Without either, OpenVINO still runs int8 (AVX2/AVX-512 multiply-adds on 16-bit pairs), at a
    smaller gain over fp32; :func:`fcnseg.inference.backends.load_backend` then warns.
    """
    cpu = torch.cpu
    if getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return "AMX"
    if getattr(cpu, "_is_vnni_supported", lambda: False)():
        return "VNNI"
    return None


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`; a one-line FcnsegError otherwise."""
    if precision not in PRECISIONS:
        raise FcnsegError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def check_bf16(device: torch.device) -> str:
    """The feature that makes bf16 fast on ``device``; FcnsegError (one line) where it has none."""
    if device.type == "cuda":
        if not torch.cuda.is_bf16_supported():
            raise FcnsegError(
                f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16 support; "
                "use --precision fp32"
            )
        return "CUDA bf16"
    if device.type != "cpu":
        return device.type  # other accelerators: autocast itself says what it cannot do
    feature = cpu_bf16_feature()
    if feature is None:
        raise FcnsegError(
            f"--precision bf16: this CPU ({cpu_name()}, "
            f"{torch.backends.cpu.get_cpu_capability()}) has neither AVX512-BF16 nor AMX, so bf16 "
            "would be emulated and run slower than fp32; use --precision fp32"
        )
    return feature
