"""Shared helpers for the benchmarks: the data they run on, a round-robin race, a printed table."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

DATASET1 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "dataset1"


def dataset_root() -> tuple[Path, str]:
    """dataset1 where present, else a synthetic dataset at dataset1's size (with a note)."""
    if DATASET1.is_dir():
        return DATASET1, "dataset1"
    from fcnseg.data.synthetic import make_synthetic_dataset

    print(f"note: dataset1 not found at {DATASET1}; using synthetic 360x480 data instead")
    root = Path(tempfile.mkdtemp()) / "synthetic"
    make_synthetic_dataset(root, counts={"train": 64, "test": 16}, size=(360, 480))
    return root, "synthetic"


def table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


SIMD_PREFIXES = ("avx", "amx", "fma")


def cpu_info() -> dict[str, str]:
    """CPU model, its AVX/AVX-512/AMX flags and the core count, from /proc/cpuinfo (Linux)."""
    import os
    import platform

    fields: dict[str, str] = {}
    flags: set[str] = set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("model name", "cpu family", "model") and key not in fields:
            fields[key] = value
        elif key == "flags" and not flags:
            flags = {f for f in value.split() if f.startswith(SIMD_PREFIXES)}
    model = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields:
        model += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return {"model": model, "flags": " ".join(sorted(flags)), "cores": str(os.cpu_count())}


def load() -> str:
    """The 1/5/15-minute load averages (other jobs on a shared machine slow every number)."""
    import os

    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def machine_summary(load_only: bool = False) -> str:
    """Lines saying which machine the numbers belong to, and how busy it was."""
    if load_only:
        return f"load average (1/5/15 min): {load()}"
    import torch

    info = cpu_info()
    return "\n".join(
        [
            f"machine: {info['model']}; {info['cores']} cores; torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}",
            f"SIMD flags: {info['flags'] or 'none found'}",
            f"load average (1/5/15 min): {load()}",
        ]
    )


def race(variants: dict[str, Callable], rounds: int) -> dict[str, float]:
    """Each variant's best time over ``rounds`` rounds that go round-robin over the variants, so
    that a change of load hits all alike; the best times so far are printed after each round."""
    best: dict[str, float] = {}
    for r in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v:.3f}s" for k, v in best.items()), flush=True)
    return best
