"""Tiny datasets in each public layout fcnseg reads, made by the tests (a few 32x48 images).

Every builder returns the dataset folder; masks hold a few rectangles of known classes so that
the classes, void and the layouts' conventions all appear.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 32, 48
# The colours a VOC-style export stores in its palette PNGs (ids 0..3); the rest of its palette
# is black, as labelling tools leave it.
VOC_MASK_COLOURS = [(10, 20, 30), (200, 40, 40), (40, 200, 40), (40, 40, 200)]
CVAT_LABELS = [("background", (0, 0, 0)), ("cat", (250, 50, 83)), ("dog", (61, 245, 61))]


def _image(rng: np.random.Generator) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))


def _ids(rng: np.random.Generator, values: list[int], void: int | None = None) -> np.ndarray:
    """Background ``values[0]`` with a rectangle of each other value, and a void border."""
    ids = np.full((H, W), values[0], dtype=np.uint8)
    for k, v in enumerate(values[1:]):
        y, x = rng.integers(0, H // 2), rng.integers(0, W // 2)
        ids[y : y + 8 + 2 * k, x : x + 10 + 2 * k] = v
    if void is not None:
        ids[0, :] = void
    return ids


def make_voc(root: Path, seed: int = 0) -> Path:
    """PASCAL VOC 2012 style: JPEGs, palette-PNG masks (255 void), split lists."""
    rng = np.random.default_rng(seed)
    palette = [v for c in VOC_MASK_COLOURS for v in c] + [0] * (3 * 252)
    palette[3 * 255 : 3 * 256] = [224, 224, 192]
    names = {
        "train": ["2007_000032", "2007_000039", "2007_000063"],
        "val": ["2008_000002", "2008_000003"],
    }
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for split, stems in names.items():
        for stem in stems:
            _image(rng).save(root / "JPEGImages" / f"{stem}.jpg", quality=95)
            mask = Image.fromarray(_ids(rng, [0, 1, 2, 3], void=255), mode="P")
            mask.putpalette(palette)
            mask.save(root / "SegmentationClass" / f"{stem}.png")
        (root / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    all_stems = names["train"] + names["val"]
    (root / "ImageSets/Segmentation/trainval.txt").write_text("\n".join(all_stems) + "\n")
    return root


def make_cvat(root: Path, seed: int = 0) -> Path:
    """CVAT's "Segmentation mask 1.1" export: RGB colour masks and labelmap.txt."""
    rng = np.random.default_rng(seed)
    for folder in (
        "JPEGImages",
        "SegmentationClass",
        "SegmentationObject",
        "ImageSets/Segmentation",
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
    lines = ["# label:color_rgb:parts:actions"]
    lines += [f"{name}:{r},{g},{b}::" for name, (r, g, b) in CVAT_LABELS]
    (root / "labelmap.txt").write_text("\n".join(lines) + "\n")
    colours = np.array([c for _, c in CVAT_LABELS], dtype=np.uint8)
    for split, count in (("train", 3), ("val", 2)):
        stems = [f"frame_{split}_{i:06d}" for i in range(count)]
        for stem in stems:
            _image(rng).save(root / "JPEGImages" / f"{stem}.jpg", quality=95)
            Image.fromarray(colours[_ids(rng, [0, 1, 2])]).save(
                root / "SegmentationClass" / f"{stem}.png"
            )
        (root / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    return root


def make_cityscapes(root: Path, seed: int = 0) -> Path:
    """leftImg8bit/ + gtFine/ with labelIds: road 7, car 26, sky 23, unlabeled 0, parking 9."""
    rng = np.random.default_rng(seed)
    for split, city, count in (("train", "aachen", 3), ("val", "frankfurt", 2)):
        for i in range(count):
            stem = f"{city}_{i:06d}_000019"
            image = root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"
            mask = root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"
            image.parent.mkdir(parents=True, exist_ok=True)
            mask.parent.mkdir(parents=True, exist_ok=True)
            _image(rng).save(image)
            Image.fromarray(_ids(rng, [7, 26, 23, 9], void=0)).save(mask)
    return root


def make_ade20k(root: Path, seed: int = 0) -> Path:
    """ADEChallengeData2016: images/{training,validation}, annotations (0 void, 1..150)."""
    rng = np.random.default_rng(seed)
    for folder, prefix, count in (("training", "ADE_train", 3), ("validation", "ADE_val", 2)):
        (root / "images" / folder).mkdir(parents=True, exist_ok=True)
        (root / "annotations" / folder).mkdir(parents=True, exist_ok=True)
        for i in range(1, count + 1):
            stem = f"{prefix}_{i:08d}"
            _image(rng).save(root / "images" / folder / f"{stem}.jpg", quality=95)
            Image.fromarray(_ids(rng, [1, 3, 13, 150], void=0)).save(
                root / "annotations" / folder / f"{stem}.png"
            )
    return root


COCO_CATEGORIES = [
    {"id": 3, "name": "cat", "supercategory": "animal"},
    {"id": 7, "name": "dog", "supercategory": "animal"},
]


def _coco_annotations(image_id: int, first_id: int) -> list[dict]:
    """A big polygon (cat), a small uncompressed RLE (dog) on top of it, a crowd region."""
    dog = np.zeros((H, W), dtype=np.uint8)
    dog[10:16, 12:20] = 1
    counts, last, run = [], 0, 0
    for v in dog.ravel(order="F"):  # COCO's RLE runs down the columns, from a 0-run
        if v != last:
            counts.append(run)
            last, run = v, 0
        run += 1
    counts.append(run)
    cat = [4.0, 4.0, 30.0, 4.0, 30.0, 24.0, 4.0, 24.0]
    return [
        {"id": first_id, "image_id": image_id, "category_id": 3, "segmentation": [cat], "iscrowd": 0},
        {"id": first_id + 1, "image_id": image_id, "category_id": 7, "iscrowd": 0,
         "segmentation": {"counts": counts, "size": [H, W]}},
        {"id": first_id + 2, "image_id": image_id, "category_id": 7, "iscrowd": 1,
         "segmentation": [[36.0, 20.0, 46.0, 20.0, 46.0, 30.0, 36.0, 30.0]]},
    ]  # fmt: skip


def make_coco(root: Path, seed: int = 0) -> Path:
    """COCO's own layout: annotations/instances_{train,val}2017.json, images in train2017/..."""
    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, count in (("train2017", 3), ("val2017", 2)):
        (root / split).mkdir()
        images, annotations = [], []
        for i in range(count):
            name = f"{i:012d}.jpg"
            _image(rng).save(root / split / name, quality=95)
            images.append({"id": i + 1, "file_name": name, "height": H, "width": W})
            annotations += _coco_annotations(i + 1, 10 * i + 1)
        doc = {"images": images, "annotations": annotations, "categories": COCO_CATEGORIES}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(doc))
    return root


BUILDERS = {
    "voc": make_voc,
    "cvat": make_cvat,
    "cityscapes": make_cityscapes,
    "ade20k": make_ade20k,
    "coco": make_coco,
}
