"""Find a dataset's splits and its image/mask pairs on disk."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fcnseg.data.info import DATASET1, DESCRIPTION_FILES, DatasetInfo, load_description
from fcnseg.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm"}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Sample:
    """One image and its label mask (``mask`` is None for prediction-only inputs)."""

    image: Path
    mask: Path | None


@dataclass(frozen=True)
class DatasetLayout:
    """A dataset root: its description and the samples of each split found there."""

    root: Path
    info: DatasetInfo
    kind: str  # "dataset1" or "folders"
    splits: dict[str, list[Sample]]
    # Per split, files that could not be paired (only with ``open_dataset(..., strict=False)``).
    problems: dict[str, list[str]] = field(default_factory=dict)

    def split(self, name: str) -> list[Sample]:
        """The samples of split ``name``; DataError if there is no such split."""
        if name not in self.splits:
            raise DataError(
                f"{self.root}: no '{name}' split (found: {', '.join(self.splits) or 'none'})"
            )
        return self.splits[name]

    def validation_split(self) -> str:
        """``val`` where the dataset has one, else ``test`` (dataset1 has no val split)."""
        for name in ("val", "test"):
            if name in self.splits:
                return name
        raise DataError(f"{self.root}: no 'val' or 'test' split to validate on")


def list_images(folder: Path) -> list[Path]:
    """Image files in ``folder`` by suffix, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def first_problem(problems: list[str]) -> str:
    """The first message and how many more there are, as one line."""
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more; fcnseg verify-data lists them all)" if more else "")


def find_pairs(images_dir: Path, masks_dir: Path) -> tuple[list[Sample], list[str]]:
    """Pair images and masks by file stem.

    Returns:
        The pairs, sorted by stem, and one message per problem: a missing folder, an image
        without a mask, a mask without an image, two files with one stem, an empty split.
    """
    missing = [f"{d}: folder not found" for d in (images_dir, masks_dir) if not d.is_dir()]
    if missing:
        return [], missing
    problems: list[str] = []
    images = _by_stem(list_images(images_dir), problems)
    masks = _by_stem(list_images(masks_dir), problems)
    problems += [
        f"{path}: image has no mask in {masks_dir}"
        for stem, path in images.items()
        if stem not in masks
    ]
    problems += [
        f"{path}: mask has no image in {images_dir}"
        for stem, path in masks.items()
        if stem not in images
    ]
    if not images:
        problems.append(f"{images_dir}: empty split (no images)")
    return [Sample(images[s], masks[s]) for s in sorted(images) if s in masks], problems


def _by_stem(paths: list[Path], problems: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in paths:
        if path.stem in out:  # e.g. a.jpg and a.png: which one the mask belongs to is unknown
            problems.append(f"{path}: same name as {out[path.stem].name} (pairs match by stem)")
        else:
            out[path.stem] = path
    return out


def pair_files(images_dir: Path, masks_dir: Path) -> list[Sample]:
    """Pair images and masks by file stem; DataError naming the first problem and the count."""
    samples, problems = find_pairs(images_dir, masks_dir)
    if problems:
        raise DataError(first_problem(problems))
    return samples


def open_dataset(root: str | Path, *, strict: bool = True) -> DatasetLayout:
    """Recognise a dataset folder and pair its files.

    With ``strict`` (the default) a file without a partner is a DataError naming the first one
    and how many more there are; otherwise every such problem goes to ``layout.problems`` and
    the splits hold the pairs that were found.

    Layouts:
        dataset1 (image-segmentation-keras): ``images_prepped_{train,test}/`` and
            ``annotations_prepped_{train,test}/``; built-in description, void (11) ignored.
        folders: ``{train,val,test}/images/`` + ``{train,val,test}/masks/`` and a
            ``dataset.yaml`` (or .json) with ``classes`` (and optionally ``palette``,
            ``ignore_index``, ``color_masks``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    if (root / "images_prepped_train").is_dir() or (root / "images_prepped_test").is_dir():
        info = _description(root) or DATASET1
        folders = {
            split: (root / f"images_prepped_{split}", root / f"annotations_prepped_{split}")
            for split in SPLITS
            if (root / f"images_prepped_{split}").is_dir()
        }
        return _paired(root, info, "dataset1", folders, strict)
    info = _description(root)
    if info is None:
        raise DataError(
            f"{root}: not a known layout: expected images_prepped_*/annotations_prepped_* "
            f"(dataset1) or {{train,val,test}}/images + masks with a dataset.yaml"
        )
    folders = {s: (root / s / "images", root / s / "masks") for s in SPLITS if (root / s).is_dir()}
    if not folders:
        raise DataError(f"{root}: no split folders (expected train/, val/ or test/)")
    return _paired(root, info, "folders", folders, strict)


def _paired(
    root: Path, info: DatasetInfo, kind: str, folders: dict[str, tuple[Path, Path]], strict: bool
) -> DatasetLayout:
    splits, problems = {}, {}
    for split, (images, masks) in folders.items():
        splits[split], problems[split] = find_pairs(images, masks)
    every = [p for ps in problems.values() for p in ps]
    if strict and every:
        raise DataError(first_problem(every))
    return DatasetLayout(root, info, kind, splits, {s: p for s, p in problems.items() if p})


def _description(root: Path) -> DatasetInfo | None:
    for name in DESCRIPTION_FILES:
        if (root / name).is_file():
            return load_description(root / name)
    return None
