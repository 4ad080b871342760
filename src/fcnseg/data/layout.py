"""Find a dataset's splits and its image/mask pairs on disk."""

from __future__ import annotations

from dataclasses import dataclass
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


def pair_files(images_dir: Path, masks_dir: Path) -> list[Sample]:
    """Pair images and masks by file stem; DataError naming the first file without a partner."""
    for d in (images_dir, masks_dir):
        if not d.is_dir():
            raise DataError(f"{d}: folder not found")
    images = {p.stem: p for p in list_images(images_dir)}
    masks = {p.stem: p for p in list_images(masks_dir)}
    for stem, path in images.items():
        if stem not in masks:
            raise DataError(f"{path}: image has no mask in {masks_dir}")
    for stem, path in masks.items():
        if stem not in images:
            raise DataError(f"{path}: mask has no image in {images_dir}")
    if not images:
        raise DataError(f"{images_dir}: empty split (no images)")
    return [Sample(images[s], masks[s]) for s in sorted(images)]


def open_dataset(root: str | Path) -> DatasetLayout:
    """Recognise a dataset folder.

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
        splits = {}
        for split in ("train", "val", "test"):
            images = root / f"images_prepped_{split}"
            if images.is_dir():
                splits[split] = pair_files(images, root / f"annotations_prepped_{split}")
        info = _description(root) or DATASET1
        return DatasetLayout(root, info, "dataset1", splits)
    info = _description(root)
    if info is None:
        raise DataError(
            f"{root}: not a known layout: expected images_prepped_*/annotations_prepped_* "
            f"(dataset1) or {{train,val,test}}/images + masks with a dataset.yaml"
        )
    splits = {
        s: pair_files(root / s / "images", root / s / "masks")
        for s in SPLITS
        if (root / s).is_dir()
    }
    if not splits:
        raise DataError(f"{root}: no split folders (expected train/, val/ or test/)")
    return DatasetLayout(root, info, "folders", splits)


def _description(root: Path) -> DatasetInfo | None:
    for name in DESCRIPTION_FILES:
        if (root / name).is_file():
            return load_description(root / name)
    return None
