"""Shared helpers for the benchmarks: the data they run on, and a printed table."""

from __future__ import annotations

import tempfile
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
