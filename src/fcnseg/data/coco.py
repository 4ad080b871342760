"""COCO-format annotation files (what CVAT, Label Studio and Roboflow export) as semantic masks.

Where the files are:
    ``annotations/instances_{train,val}*.json`` (COCO itself, CVAT) with images in the folder
    named like the file (``train2017/``), in ``images/`` or beside the annotations; or
    Roboflow's ``{train,valid,test}/_annotations.coco.json`` with the images beside each file.

How a mask is painted (``CocoMask.read``):
    - pixels no annotation covers are class 0, ``background`` (prepended to the categories,
      unless a category is itself named "background": then that one is class 0);
    - crowd regions (``iscrowd: 1``) are void (the ignore label): what they hold is uncertain;
    - then every other annotation, largest first, so that a smaller object lying on a larger
      one stays visible (ties keep the file's order), over void too;
    - polygons and RLE (compressed or not) are rasterised by pycocotools, as COCO's own tools do.
Categories become classes in order of their ids; their names are the class names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fcnseg.data.formats import SPLIT_NAMES, Found
from fcnseg.data.info import DatasetInfo
from fcnseg.data.io import check_labels
from fcnseg.data.pairs import Sample
from fcnseg.errors import DataError

INSTALL_HINT = "COCO-format annotations need pycocotools: pip install 'fcnseg[coco]'"


def _mask_utils():
    """pycocotools' mask module (an optional dependency: ``fcnseg[coco]``)."""
    try:
        from pycocotools import mask
    except ImportError as exc:
        raise DataError(INSTALL_HINT) from exc
    return mask


def coco_files(root: Path) -> dict[str, Path]:
    """Split -> annotation file, for the places listed in this module's docstring."""
    found: dict[str, list[Path]] = {}
    roboflow = sorted(root.glob("*/_annotations.coco.json"))
    for path in roboflow:
        found.setdefault(SPLIT_NAMES.get(path.parent.name, path.parent.name), []).append(path)
    candidates = sorted((root / "annotations").glob("*.json"))
    instances = [p for p in candidates if p.name.startswith("instances_")]
    for path in instances or candidates:
        split = _split_in_name(path.stem)
        if split is not None:
            found.setdefault(split, []).append(path)
    for split, paths in found.items():
        if len(paths) > 1:
            raise DataError(
                f"{root}: two COCO files for the {split} split: {paths[0]} and {paths[1]}"
            )
    return {split: paths[0] for split, paths in found.items()}


def _split_in_name(stem: str) -> str | None:
    words = stem.lower().replace("-", "_").split("_")
    for word in reversed(words):  # instances_train2017: the last word names the split
        for name, split in SPLIT_NAMES.items():
            if word.startswith(name):
                return split
    return None


def read_coco(root: Path) -> Found:
    """Every split's images and their annotations; categories become the classes."""
    _mask_utils()  # before any work: without pycocotools, one line saying how to install it
    files = coco_files(root)
    if not files:
        raise DataError(
            f"{root}: no COCO file names a split: expected annotations/instances_train*.json "
            f"and instances_val*.json (rename e.g. instances_default.json) or Roboflow's "
            f"train/_annotations.coco.json"
        )
    found = Found()
    categories: dict[int, str] = {}
    loaded = {split: _load(path) for split, path in files.items()}
    for path, doc in loaded.values():
        for cat in doc.get("categories", []):
            cid, name = cat.get("id"), cat.get("name")
            if not isinstance(cid, int) or not isinstance(name, str):
                raise DataError(f"{path}: category {cat!r} needs an integer 'id' and a 'name'")
            if categories.setdefault(cid, name) != name:
                raise DataError(
                    f"{path}: category {cid} is {name!r} here but {categories[cid]!r} in another file"
                )
    order = sorted(categories, key=lambda c: (categories[c].lower() != "background", c))
    names = [categories[c] for c in order]
    if not names or names[0].lower() != "background":
        names.insert(0, "background")
    offset = len(names) - len(order)
    class_of = {cid: i + offset for i, cid in enumerate(order)}
    for split, (path, doc) in loaded.items():
        found.splits[split], found.problems[split] = _samples(root, path, doc, class_of)
    found.description = {"classes": names, "ignore_index": 255}
    found.conventions = (
        "COCO JSON rasterised: unannotated pixels background, crowd void, smaller objects on top"
    )
    return found


def _load(path: Path) -> tuple[Path, dict]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot read the COCO file ({' '.join(str(exc).split())})"
        ) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DataError(f"{path}: not a COCO file (no 'images' list)")
    return path, doc


def _images_dir(root: Path, path: Path, doc: dict) -> Path:
    """Where the file names of ``doc`` are relative to: the first folder holding its first image."""
    folders = [path.parent, root / path.stem.removeprefix("instances_"), root / "images", root]
    first = next((im.get("file_name") for im in doc["images"] if isinstance(im, dict)), None)
    for folder in folders:
        if isinstance(first, str) and (folder / first).is_file():
            return folder
    return folders[0] if path.parent != root / "annotations" else root / "images"


def _samples(
    root: Path, path: Path, doc: dict, class_of: dict[int, int]
) -> tuple[list[Sample], list[str]]:
    folder = _images_dir(root, path, doc)
    by_image: dict[object, list[dict]] = {}
    problems: list[str] = []
    for ann in doc.get("annotations", []):
        cid = ann.get("category_id") if isinstance(ann, dict) else None
        if cid not in class_of:
            problems.append(
                f"{path}: annotation {ann.get('id') if isinstance(ann, dict) else ann!r} "
                f"has unknown category id {cid!r}"
            )
            continue
        by_image.setdefault(ann.get("image_id"), []).append(ann)
    samples = []
    for im in doc["images"]:
        name, h, w = im.get("file_name"), im.get("height"), im.get("width")
        if not isinstance(name, str) or not all(isinstance(v, int) and v > 0 for v in (h, w)):
            problems.append(f"{path}: image entry {im!r} needs 'file_name', 'height', 'width'")
        elif not (folder / name).is_file():
            problems.append(f"{path}: image {name!r} (id {im.get('id')}) not found in {folder}")
        else:
            anns = tuple(by_image.get(im.get("id"), ()))
            samples.append(Sample(folder / name, CocoMask(path, name, h, w, anns, class_of)))
    if not doc["images"]:
        problems.append(f"{path}: empty split (no images)")
    return samples, problems


@dataclass(frozen=True, eq=False)
class CocoMask:
    """One image's annotations in a COCO file, painted into a label map when read."""

    source: Path
    file_name: str
    height: int
    width: int
    annotations: tuple[dict, ...]
    class_of: dict[int, int]

    def __str__(self) -> str:
        return f"{self.source} [{self.file_name}]"

    def read(self, info: DatasetInfo) -> np.ndarray:
        """The label map ``(H, W)`` uint8, painted by the rule in this module's docstring."""
        labels = np.zeros((self.height, self.width), dtype=np.uint8)
        painted = [(self._pixels(ann), ann) for ann in self.annotations]
        for pixels, ann in painted:
            if ann.get("iscrowd"):
                labels[pixels] = info.ignore_index
        solid = [(p, a) for p, a in painted if not a.get("iscrowd")]
        for pixels, ann in sorted(solid, key=lambda pa: -int(pa[0].sum())):  # stable: file order
            labels[pixels] = self.class_of[ann["category_id"]]
        check_labels(labels, info, Path(str(self)))
        return labels

    def _pixels(self, ann: dict) -> np.ndarray:
        """An annotation's region ``(H, W)`` bool; DataError names the file and annotation."""
        mask_utils = _mask_utils()
        seg, h, w = ann.get("segmentation"), self.height, self.width
        where = f"{self}: annotation {ann.get('id')}"
        try:
            if isinstance(seg, list):  # polygons [[x0, y0, x1, y1, ...], ...]
                polygons = [p for p in seg if isinstance(p, list) and len(p) >= 6]
                if len(polygons) != len(seg) or not seg:
                    raise ValueError("a polygon needs at least 3 points (6 numbers)")
                _check_coordinates(polygons, h, w)
                rle = mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))
            elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):  # uncompressed
                rle = mask_utils.frPyObjects(seg, *seg["size"])
            elif isinstance(seg, dict) and isinstance(seg.get("counts"), str | bytes):
                rle = dict(seg)
            else:
                raise ValueError("segmentation must be polygons or an RLE")
            if list(rle["size"]) != [h, w]:
                raise ValueError(f"RLE size {list(rle['size'])} is not the image's [{h}, {w}]")
            return mask_utils.decode(rle).astype(bool)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise DataError(f"{where}: bad segmentation ({exc})") from exc


def _check_coordinates(polygons: list[list], h: int, w: int) -> None:
    """ValueError for a coordinate that is not a finite number within one image size of the
    image: pycocotools' rasteriser works in memory proportional to the coordinates' range
    (1e7 crashed the process), and no labelling tool draws that far outside the picture."""
    for polygon in polygons:
        values = np.asarray(polygon, dtype=float)  # ValueError for what is not a number
        xs, ys = values[0::2], values[1::2]
        if (
            not np.isfinite(values).all()
            or (np.abs(xs - w / 2) > 1.5 * w + 1).any()
            or (np.abs(ys - h / 2) > 1.5 * h + 1).any()
        ):
            raise ValueError(
                f"polygon coordinates outside the {w}x{h} image by more than its size "
                f"(x {xs.min():g}..{xs.max():g}, y {ys.min():g}..{ys.max():g})"
            )
