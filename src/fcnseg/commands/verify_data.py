"""``fcnseg verify-data``: audit a dataset before any training."""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict

from fcnseg.data import median_frequency_weights, open_dataset, scan_split
from fcnseg.data.scan import SplitScan
from fcnseg.files import file_digest


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify-data",
        help="check every image/mask pair and print an audit of the dataset",
        description="Say which layout a dataset folder is in (dataset1, voc, cityscapes, "
        "ade20k, coco or folders) and how it is read, check every image/mask pair and print "
        "an audit: counts per "
        "split, image sizes, class histogram (pixels and images per class), void share, "
        "median-frequency class weights and files found in two splits. Exit 0 when the data "
        "is usable; otherwise every bad pair or unpaired file is listed on one line with its "
        "reason, then a summary, and the exit code is 1.",
    )
    p.add_argument(
        "--data",
        required=True,
        help="dataset folder: dataset1, VOC, Cityscapes, ADE20K, COCO JSON or train/val/test "
        "folders with a dataset.yaml",
    )
    p.set_defaults(func=run)


def format_audit(layout, scans: dict[str, SplitScan]) -> str:
    """The audit table as text (``bad``: pairs that cannot be read plus files without a partner)."""
    info = layout.info
    lines = [
        f"{layout.root}: layout {layout.kind}, {info.num_classes} classes, "
        f"ignore label {info.ignore_index}"
        + (f" (read as: {layout.conventions})" if layout.conventions else ""),
        "",
        f"{'split':<8}{'pairs':>7}{'bad':>9}  image sizes (H x W: count)",
    ]
    for split, scan in scans.items():
        sizes = ", ".join(f"{h}x{w}: {c}" for (h, w), c in scan.sizes.most_common(4))
        more = f" (+{len(scan.sizes) - 4} more sizes)" if len(scan.sizes) > 4 else ""
        bad = len(scan.skipped) + len(layout.problems.get(split, []))
        lines.append(f"{split:<8}{len(scan.samples):>7}{bad:>9}  {sizes}{more}")
    train = scans.get("train")
    weights = median_frequency_weights(train) if train is not None and train.samples else None
    header = f"\n{'id':>3} {'class':<14}"
    for split in scans:
        header += f"{split + ' pixels':>15}{split + ' images':>15}"
    if weights is not None:
        header += f"{'median-freq w':>15}"
    lines.append(header)
    for c, name in enumerate([*info.class_names, "void (ignored)"]):
        label = c if c < info.num_classes else info.ignore_index
        row = f"{label:>3} {name:<14}"
        for scan in scans.values():
            share = scan.pixels[c] / max(1, scan.pixels.sum())
            row += f"{share:>15.2%}"
            row += f"{scan.images_per_class[c]:>15}" if c < info.num_classes else f"{'':>15}"
        if weights is not None and c < info.num_classes:
            row += f"{weights[c]:>15.3f}"
        lines.append(row)
    absent = [
        info.class_names[c]
        for c in range(info.num_classes)
        if train is not None and train.pixels[c] == 0
    ]
    if absent:
        lines.append(f"\nwarning: classes with no training pixels: {', '.join(absent)}")
    return "\n".join(lines)


def find_cross_split_duplicates(scans: dict[str, SplitScan]) -> list[str]:
    """Images whose bytes appear in more than one split."""
    where: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for split, scan in scans.items():
        for sample in scan.samples:
            where[file_digest(sample.image, "sha1")].append((split, sample.image.name))
    out = []
    for places in where.values():
        if len({s for s, _ in places}) > 1:
            out.append(" = ".join(f"{s}/{n}" for s, n in places))
    return out


def bad_by_split(layout, scans: dict[str, SplitScan]) -> dict[str, list[str]]:
    """Per split, every problem: files without a partner first, then pairs that cannot be used."""
    return {
        split: [*layout.problems.get(split, []), *scan.skipped]
        for split, scan in scans.items()
        if layout.problems.get(split) or scan.skipped
    }


def summary(scans: dict[str, SplitScan], bad: dict[str, list[str]]) -> str:
    """The verdict line: usable, or how many problems per split and which splits are empty."""
    if not bad:
        return f"OK: {sum(len(s.samples) for s in scans.values())} pairs usable"
    parts = []
    for split, problems in bad.items():
        empty = ", no usable pair" if not scans[split].samples else ""
        parts.append(f"{split}: {len(problems)}{empty}")
    total = sum(map(len, bad.values()))
    return f"NOT USABLE: {total} problem(s) listed above ({'; '.join(parts)})"


def run(args: argparse.Namespace) -> int:
    layout = open_dataset(args.data, strict=False)
    scans = {
        split: scan_split(
            samples, layout.info, skip_bad=True, keep=False, progress=split, allow_empty=True
        )
        for split, samples in layout.splits.items()
    }
    print(format_audit(layout, scans))
    dups = find_cross_split_duplicates(scans)
    print(f"\nfiles in two splits: {len(dups)}")
    for d in dups[:20]:
        print(f"  {d}")
    void = sum(s.pixels[-1] for s in scans.values()) / max(
        1, sum(s.pixels.sum() for s in scans.values())
    )
    print(f"void share: {void:.2%}")
    if dups:
        print("warning: the same image in two splits inflates validation scores")
    bad = bad_by_split(layout, scans)
    sys.stdout.flush()  # the list below goes to stderr: keep it after the audit on a terminal
    for split, problems in bad.items():
        for msg in problems:
            print(f"error: [{split}] {msg}", file=sys.stderr)
    print(summary(scans, bad), file=sys.stderr if bad else sys.stdout)
    return 1 if bad else 0
