"""The dataset1 folders the accuracy recipes were chosen and shipped with.

``heldout``: dataset1's training images split by CamVid sequence; one sequence (``0006R0``, 101
images) becomes the test split and the other 266 images train. Recipes and levers are compared
on it, never on dataset1's own test split (README, Results: the levers table).

``all``: all 468 images (train + test) in the training split, for the shipped model once a
recipe is chosen, as CamVid models are usually trained on train + val; the test split is kept as
the validation split, so its numbers during that run are not a measurement.

Files are hard-linked where the file system allows, else copied; OUT must not exist (or be
empty), and dataset1 is only read.

Usage:
    python benchmarks/dataset1_splits.py heldout DATASET1 OUT [--sequence 0006R0]
    python benchmarks/dataset1_splits.py all DATASET1 OUT
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

IMAGES, MASKS = "images_prepped_{}", "annotations_prepped_{}"


def _place(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def make_split(kind: str, dataset1: Path, out: Path, sequence: str = "0006R0") -> dict[str, int]:
    """Write the ``kind`` folder (``heldout`` or ``all``) at ``out``; returns images per split."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SystemExit(f"error: {out} exists and is not an empty folder; choose a new --out")
    pairs = {
        split: sorted(p.name for p in (dataset1 / IMAGES.format(split)).glob("*.png"))
        for split in ("train", "test")
    }
    if not pairs["train"]:
        raise SystemExit(f"error: no {IMAGES.format('train')}/*.png under {dataset1}")
    plan: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}  # (from split, name)
    for name in pairs["train"]:
        to = "test" if kind == "heldout" and name.startswith(f"{sequence}_") else "train"
        plan[to].append(("train", name))
    for name in pairs["test"]:
        plan["train" if kind == "all" else "test"].append(("test", name))
        if kind == "all":
            plan["test"].append(("test", name))
    if kind == "heldout":
        plan["test"] = [p for p in plan["test"] if p[0] == "train"]  # the sequence only
        if not plan["test"]:
            raise SystemExit(f"error: no training image of sequence {sequence!r} in {dataset1}")
    for to, items in plan.items():
        for folder in (IMAGES, MASKS):
            (out / folder.format(to)).mkdir(parents=True, exist_ok=True)
        for frm, name in items:
            for folder in (IMAGES, MASKS):
                _place(dataset1 / folder.format(frm) / name, out / folder.format(to) / name)
    return {to: len(items) for to, items in plan.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("heldout", "all"))
    parser.add_argument("dataset1", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--sequence", default="0006R0", help="held-out sequence (heldout only)")
    args = parser.parse_args(argv)
    counts = make_split(args.kind, args.dataset1, args.out, args.sequence)
    print(f"{args.out}: {counts['train']} train, {counts['test']} test images")
    return 0


if __name__ == "__main__":
    sys.exit(main())
