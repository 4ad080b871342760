"""Decode and check every pair of a split once: validation, class statistics and a RAM cache."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcnseg.data.info import DatasetInfo
from fcnseg.data.io import read_image, read_mask
from fcnseg.data.layout import Sample, first_problem
from fcnseg.errors import DataError
from fcnseg.progress import progress_bar


@dataclass
class Decoded:
    """A decoded pair: image ``(H, W, 3)`` uint8 and mask ``(H, W)`` uint8 (or None)."""

    image: np.ndarray
    mask: np.ndarray | None


@dataclass
class SplitScan:
    """What one pass over a split found.

    ``pixels`` has one count per class plus a last entry for the ignore label; ``presence_pixels``
    is, per class, the total pixel count of the images in which that class appears.
    """

    samples: list[Sample]
    skipped: list[str]
    sizes: Counter
    pixels: np.ndarray
    images_per_class: np.ndarray
    presence_pixels: np.ndarray
    decoded: list[Decoded] | None = field(default=None, repr=False)

    @property
    def uniform_size(self) -> tuple[int, int] | None:
        """``(H, W)`` when every image has the same size, else None."""
        return next(iter(self.sizes)) if len(self.sizes) == 1 else None

    @property
    def median_long_side(self) -> int | None:
        """The median of the images' long sides in pixels (None for an empty split): the
        working size a model trained on this split records (see fcnseg.inference.resize)."""
        sides = sorted((max(hw), n) for hw, n in self.sizes.items())
        total = sum(n for _, n in sides)
        seen = 0
        for side, n in sides:
            seen += n
            if 2 * seen >= total:
                return int(side)
        return None


def decode_pair(sample: Sample, info: DatasetInfo) -> Decoded:
    """Read and check one pair; DataError names the file and the problem."""
    image = read_image(sample.image)
    if sample.mask is None:
        return Decoded(image, None)
    # A mask that is not a file of its own (a COCO image's annotations) paints itself.
    mask = read_mask(sample.mask, info) if isinstance(sample.mask, Path) else sample.mask.read(info)
    if mask.shape != image.shape[:2]:
        raise DataError(
            f"{sample.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
            f"{image.shape[1]}x{image.shape[0]} (W x H)"
        )
    return Decoded(image, mask)


def _try_decode(sample: Sample, info: DatasetInfo) -> Decoded | DataError:
    try:
        return decode_pair(sample, info)
    except DataError as exc:
        return exc


def scan_split(
    samples: Iterable[Sample],
    info: DatasetInfo,
    *,
    skip_bad: bool = False,
    keep: bool = True,
    progress: str | None = None,
    allow_empty: bool = False,
) -> SplitScan:
    """Decode every pair (in threads: PIL decodes outside the GIL), check it and count classes.

    Every pair is read before a bad one is reported, so that the error can say how many more
    there are.

    Args:
        samples: pairs to read.
        info: the dataset description (class count, ignore label, colour masks).
        skip_bad: leave bad pairs out (their messages go to ``skipped``) instead of raising a
            DataError naming the first bad pair and how many more there are.
        keep: keep the decoded arrays so that training reads each file only once.
        progress: a progress-bar label, or None for no bar.
        allow_empty: return a scan with no samples (every message in ``skipped``) instead of
            raising when no pair is usable; for audits.
    """
    samples = list(samples)
    n = info.num_classes
    kept: list[Sample] = []
    decoded: list[Decoded] = []
    skipped: list[str] = []
    sizes: Counter = Counter()
    pixels = np.zeros(n + 1, dtype=np.int64)
    images_per_class = np.zeros(n, dtype=np.int64)
    presence_pixels = np.zeros(n, dtype=np.int64)
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(lambda s: _try_decode(s, info), samples)
        for sample, result in progress_bar(
            zip(samples, results, strict=True),
            total=len(samples),
            desc=progress,
            enabled=progress is not None,
        ):
            if isinstance(result, DataError):
                skipped.append(str(result))
                continue
            kept.append(sample)
            sizes[result.image.shape[:2]] += 1
            if result.mask is not None:
                counts = np.bincount(result.mask.ravel(), minlength=256)
                pixels[:n] += counts[:n]
                pixels[n] += counts[info.ignore_index]
                present = counts[:n] > 0
                images_per_class += present
                presence_pixels += present * result.mask.size
            if keep:
                decoded.append(result)
    if skipped and not skip_bad:
        raise DataError(first_problem(skipped))
    if not kept and not allow_empty:
        cause = f": {first_problem(skipped)}" if skipped else ""
        raise DataError(f"empty split: none of {len(samples)} pairs is usable{cause}")
    return SplitScan(
        kept, skipped, sizes, pixels, images_per_class, presence_pixels, decoded if keep else None
    )


def median_frequency_weights(scan: SplitScan) -> np.ndarray:
    """Median-frequency class weights (Eigen & Fergus 2015): ``median(freq) / freq(c)``.

    ``freq(c)`` is the pixels of class c over the pixels of the images where c appears; a class
    absent from the split gets weight 1.
    """
    counts = scan.pixels[:-1].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        freq = counts / scan.presence_pixels
    present = counts > 0
    weights = np.ones_like(freq)
    if present.any():  # an empty scan (an audit of a split with no usable pair) gives all ones
        weights[present] = np.median(freq[present]) / freq[present]
    return weights


def rare_classes(scan: SplitScan) -> tuple[int, ...]:
    """The classes present in the split with fewer pixels than the median present class."""
    counts = scan.pixels[:-1]
    present = counts > 0
    if not present.any():
        return ()
    median = np.median(counts[present])
    return tuple(int(k) for k in np.flatnonzero(present & (counts < median)))
