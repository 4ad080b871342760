"""Readers of public dataset layouts as they are distributed: PASCAL VOC (and VOC-style
exports such as CVAT's "Segmentation mask 1.1"), Cityscapes and ADE20K.

Each reader returns the pairs it found per split, one message per problem in the layout's own
terms, and the description its conventions imply (a ``dataset.yaml`` beside the data may
override any of it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fcnseg.data.known import (
    ADE20K_CLASSES,
    VOC_CLASSES,
    ade20k_label_map,
    cityscapes_label_map,
    cityscapes_train_classes,
    voc_colormap,
)
from fcnseg.data.pairs import Sample, find_pairs, list_images
from fcnseg.errors import DataError

# Split names as layouts spell them -> fcnseg's.
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}


@dataclass
class Found:
    """What a layout reader found: pairs and problems per split, the implied description."""

    splits: dict[str, list[Sample]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)
    description: dict = field(default_factory=dict)
    conventions: str = ""


def read_voc(root: Path) -> Found:
    """``JPEGImages/``, ``SegmentationClass/`` and the split lists ``ImageSets/Segmentation/*.txt``.

    ``trainval.txt`` (the union of train and val) is not read as a split of its own. Classes are
    VOC 2012's 21 with 255 void, or the names and colours of CVAT's ``labelmap.txt``.
    """
    lists = root / "ImageSets" / "Segmentation"
    if not lists.is_dir() or not sorted(lists.glob("*.txt")):
        raise DataError(
            f"{root}: VOC layout without split lists: expected ImageSets/Segmentation/train.txt "
            f"and val.txt (one image name per line)"
        )
    images = _by_stem(root / "JPEGImages")
    masks = _by_stem(root / "SegmentationClass")
    found = Found()
    for path in sorted(lists.glob("*.txt")):
        if path.stem.lower() == "trainval":
            continue
        split = SPLIT_NAMES.get(path.stem.lower(), path.stem)
        samples, problems = [], []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            name = line.split()[0] if line.split() else ""
            if not name:
                continue
            where = f"{path}:{number}: '{name}'"
            if name not in images:
                problems.append(f"{where} has no image in JPEGImages/")
            elif name not in masks:
                problems.append(f"{where} has no mask in SegmentationClass/")
            else:
                samples.append(Sample(images[name], masks[name]))
        if not samples and not problems:
            problems.append(f"{path}: empty split list")
        found.splits[split], found.problems[split] = samples, problems
    labelmap = root / "labelmap.txt"
    if labelmap.is_file():
        names, colours = read_labelmap(labelmap)
        found.description = {"classes": names, "palette": colours}
        found.conventions = "split lists in ImageSets/Segmentation, classes from labelmap.txt"
    else:
        found.description = {"classes": list(VOC_CLASSES), "ignore_index": 255}
        found.conventions = "split lists in ImageSets/Segmentation, VOC 2012's 21 classes, 255 void"
    return found


def _by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in reversed(list_images(folder))} if folder.is_dir() else {}


def read_labelmap(path: Path) -> tuple[list[str], list[list[int]]]:
    """CVAT's ``labelmap.txt``: ``name:r,g,b:parts:actions`` per class, ``#`` comments."""
    names, colours = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(":")
        rgb = parts[1].split(",") if len(parts) > 1 else []
        if len(rgb) != 3 or not all(v.strip().isdigit() and int(v) <= 255 for v in rgb):
            raise DataError(f"{path}:{number}: expected 'name:r,g,b::', got {line.strip()!r}")
        names.append(parts[0].strip())
        colours.append([int(v) for v in rgb])
    if not names:
        raise DataError(f"{path}: no classes listed")
    return names, colours


def voc_colour_masks(description: dict) -> dict:
    """For RGB masks in a VOC layout: the classes' colours (VOC's unless given), VOC's border
    colour (224, 224, 192) void."""
    d = dict(description)
    d.setdefault("palette", [list(c) for c in voc_colormap(len(d["classes"]))])
    d["color_masks"] = True
    if list(voc_colormap()[255]) not in d["palette"]:
        d["ignore_color"] = list(voc_colormap()[255])
    return d


def read_cityscapes(root: Path) -> Found:
    """``leftImg8bit/SPLIT/CITY/*_leftImg8bit.png`` with ``gtFine/SPLIT/CITY/*_gtFine_labelIds.png``;
    labelIds become the 19 training ids, the other labels void (255)."""
    found = Found()
    for folder in sorted(p for p in (root / "leftImg8bit").iterdir() if p.is_dir()):
        if not (root / "gtFine" / folder.name).is_dir():
            continue  # train_extra (coarse labels only) or images of a split without labels
        split = SPLIT_NAMES.get(folder.name, folder.name)
        samples, problems = [], []
        for image in sorted(folder.rglob("*.png")):
            if not image.name.endswith("_leftImg8bit.png"):
                problems.append(f"{image}: not named CITY_SEQ_FRAME_leftImg8bit.png")
                continue
            rel = image.relative_to(root / "leftImg8bit")
            mask = (
                root / "gtFine" / rel.parent / image.name.replace("leftImg8bit", "gtFine_labelIds")
            )
            if mask.is_file():
                samples.append(Sample(image, mask))
            else:
                problems.append(f"{image}: no gtFine labelIds mask ({mask} not found)")
        for mask in sorted((root / "gtFine" / folder.name).rglob("*_gtFine_labelIds.png")):
            rel = mask.relative_to(root / "gtFine")
            image = (
                root
                / "leftImg8bit"
                / rel.parent
                / mask.name.replace("gtFine_labelIds", "leftImg8bit")
            )
            if not image.is_file():
                problems.append(f"{mask}: labelIds mask has no image ({image} not found)")
        if not samples and not problems:
            problems.append(f"{folder}: empty split (no *_leftImg8bit.png)")
        found.splits[split], found.problems[split] = samples, problems
    names, colours = cityscapes_train_classes()
    found.description = {
        "classes": list(names),
        "palette": [list(c) for c in colours],
        "ignore_index": 255,
        "label_map": cityscapes_label_map(),
    }
    found.conventions = "gtFine labelIds mapped to the 19 training ids, the rest void (255)"
    return found


def read_ade20k(root: Path) -> Found:
    """ADEChallengeData2016: ``images/{training,validation}`` and ``annotations/...`` paired by
    name; mask value 0 (unlabelled) is void, 1..150 are the classes 0..149."""
    found = Found()
    for folder in sorted(p for p in (root / "images").iterdir() if p.is_dir()):
        split = SPLIT_NAMES.get(folder.name, folder.name)
        found.splits[split], found.problems[split] = find_pairs(
            folder, root / "annotations" / folder.name
        )
    found.description = {
        "classes": list(ADE20K_CLASSES),
        "ignore_index": 255,
        "label_map": ade20k_label_map(),
    }
    found.conventions = "mask value 0 void, 1..150 the 150 classes"
    return found
