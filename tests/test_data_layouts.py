"""Public layouts read as they are distributed: VOC (and CVAT's export), Cityscapes, ADE20K, COCO.

Each tiny dataset (tests/layouts.py) is audited, trained for one epoch (feature cache on) and
evaluated with no restructuring; a malformed copy of each stops with one line naming the file.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_args
from layouts import BUILDERS, CVAT_LABELS, VOC_MASK_COLOURS, make_coco, make_voc
from PIL import Image

from fcnseg.cli import main
from fcnseg.data import open_dataset, scan_split
from fcnseg.data.known import (
    ADE20K_CLASSES,
    VOC_CLASSES,
    cityscapes_label_map,
    cityscapes_train_classes,
    voc_colormap,
)
from fcnseg.errors import DataError

# Folders of validation images and their masks, for predict --truth (COCO has no mask files).
TRUTHS = {
    "voc": ("JPEGImages", "SegmentationClass", 5),
    "cvat": ("JPEGImages", "SegmentationClass", 5),
    "cityscapes": ("leftImg8bit/val/frankfurt", "gtFine/val/frankfurt", 2),
    "ade20k": ("images/validation", "annotations/validation", 2),
}
KIND = {"voc": "voc", "cvat": "voc", "cityscapes": "cityscapes", "ade20k": "ade20k", "coco": "coco"}


def test_known_tables_have_their_published_sizes() -> None:
    names, colours = cityscapes_train_classes()
    assert len(VOC_CLASSES) == 21 and len(set(VOC_CLASSES)) == 21
    assert len(ADE20K_CLASSES) == 150 and len(set(ADE20K_CLASSES)) == 150
    assert len(names) == 19 and len(set(colours)) == 19 and names[0] == "road"
    assert len(cityscapes_label_map()) == 34 and cityscapes_label_map()[26] == 13  # car
    assert voc_colormap()[:3] == ((0, 0, 0), (128, 0, 0), (0, 128, 0))
    assert voc_colormap()[15] == (192, 128, 128) and voc_colormap()[255] == (224, 224, 192)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_each_layout_is_audited_trained_evaluated_and_predicted_as_it_comes(
    name: str, tmp_path: Path, capsys
) -> None:
    data = BUILDERS[name](tmp_path / name)
    assert main(["verify-data", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert f"layout {KIND[name]}," in out and "read as: " in out and "OK: 5 pairs usable" in out
    run = tmp_path / "run"
    assert main(train_args(data, run, "--epochs", "1")) == 0
    assert "feature cache on" in capsys.readouterr().out  # frozen features computed once
    ckpt = run / "checkpoint_best.pt"
    if name == "voc":  # checkpoint and pictures in the colours stored in the masks
        stored = torch.load(ckpt, weights_only=True)["dataset"]["palette"][:4]
        assert [tuple(c) for c in stored] == VOC_MASK_COLOURS
        picture = np.array(Image.open(run / "img" / "epoch_001.png").convert("RGB"))
        for colour in VOC_MASK_COLOURS[1:]:  # the truth panel draws the masks' colours
            assert (picture == colour).all(-1).any(), colour
    # The torch backend: the layouts are the subject here, not an export (tests/test_backends.py).
    argv = ["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--split", "val"]
    assert main([*argv, "--backend", "torch"]) == 0
    assert "mean IU" in capsys.readouterr().out
    if name in TRUTHS:  # predict --truth reads the layout's own masks through the checkpoint
        images, masks, count = TRUTHS[name]
        argv = ["predict", "--checkpoint", str(ckpt), "--input", str(data / images)]
        argv += ["--backend", "torch", "--truth", str(data / masks)]
        assert main([*argv, "--out", str(tmp_path / "pred")]) == 0
        assert f"({count} with truth)" in capsys.readouterr().out


def test_layout_conventions_become_labels(tmp_path: Path) -> None:
    """Cityscapes' labelIds -> train ids, ADE20K's 0 -> void and 1..150 -> 0..149."""
    expected = {
        "cityscapes": {7: 0, 26: 13, 23: 10, 9: 255, 0: 255},  # parking and unlabeled are void
        "ade20k": {1: 0, 3: 2, 13: 12, 150: 149, 0: 255},
    }
    for name, table in expected.items():
        layout = open_dataset(BUILDERS[name](tmp_path / name))
        sample = layout.split("train")[0]
        stored = np.array(Image.open(sample.mask))
        labels = scan_split([sample], layout.info).decoded[0].mask
        for value, label in table.items():
            assert (labels[stored == value] == label).all(), (name, value)


def test_coco_painting_rule(tmp_path: Path) -> None:
    """Unannotated pixels are background (0), crowd is void, the smaller dog lies on the cat."""
    layout = open_dataset(make_coco(tmp_path / "coco"))
    assert layout.info.class_names == ("background", "cat", "dog")
    labels = scan_split(layout.split("train")[:1], layout.info).decoded[0].mask
    assert labels[0, 0] == 0 and labels[20, 8] == 1  # background; inside the cat polygon only
    assert (labels[10:16, 12:20] == 2).all()  # the dog's RLE, painted over the cat
    assert labels[25, 40] == 255  # inside the crowd region
    assert set(np.unique(labels)) == {0, 1, 2, 255}


def test_a_voc_folder_reads_as_it_comes_with_the_masks_colours(tmp_path: Path) -> None:
    """(Its training run, pictures in the masks' colours, is checked in the parametrised test.)"""
    layout = open_dataset(make_voc(tmp_path / "VOC2012"))
    assert layout.kind == "voc" and layout.info.class_names == VOC_CLASSES
    assert layout.info.palette[:4] == tuple(VOC_MASK_COLOURS)
    assert len(set(layout.info.palette)) == 21  # ids the masks' palette leaves black: own colours
    assert set(layout.splits) == {"train", "val"}  # trainval.txt is not a split of its own


def test_cvat_labelmap_gives_names_and_colours(tmp_path: Path) -> None:
    info = open_dataset(BUILDERS["cvat"](tmp_path / "cvat")).info
    assert info.class_names == tuple(n for n, _ in CVAT_LABELS)
    assert info.palette == tuple(c for _, c in CVAT_LABELS) and info.color_masks


def test_dataset_yaml_names_the_layout_and_overrides_names(tmp_path: Path) -> None:
    data = make_voc(tmp_path / "v")
    (data / "dataset.yaml").write_text("layout: voc\nname: mine\n")
    layout = open_dataset(data)
    assert layout.kind == "voc" and layout.info.name == "mine"
    (data / "dataset.yaml").write_text("layout: pascal\n")
    with pytest.raises(DataError, match=r"dataset\.yaml: unknown layout 'pascal'; known: "):
        open_dataset(data)
    (data / "dataset.yaml").write_text("layout: cityscapes\n")
    with pytest.raises(DataError, match=r"the cityscapes layout needs a leftImg8bit/ folder"):
        open_dataset(data)


def _break_voc(data: Path) -> tuple[str, str]:
    (data / "JPEGImages" / "2007_000039.jpg").unlink()
    return "train.txt:2: '2007_000039'", "has no image in JPEGImages/"


def _break_cvat(data: Path) -> tuple[str, str]:
    mask = data / "SegmentationClass" / "frame_train_000001.png"
    rgb = np.array(Image.open(mask))
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(mask)
    return "frame_train_000001.png", r"colours not in the palette: \(1, 2, 3\)"


def _break_cityscapes(data: Path) -> tuple[str, str]:
    mask = next((data / "gtFine" / "train").rglob("*_000001_000019_gtFine_labelIds.png"))
    ids = np.array(Image.open(mask))
    ids[0, 0] = 40
    Image.fromarray(ids).save(mask)
    return mask.name, r"mask value\(s\) \[40\] have no training id"


def _break_ade20k(data: Path) -> tuple[str, str]:
    mask = data / "annotations" / "training" / "ADE_train_00000002.png"
    ids = np.array(Image.open(mask))
    ids[0, 0] = 200
    Image.fromarray(ids).save(mask)
    return mask.name, r"mask value\(s\) \[200\] have no training id"


def _break_coco(data: Path) -> tuple[str, str]:
    path = data / "annotations" / "instances_train2017.json"
    doc = json.loads(path.read_text())
    doc["annotations"][4]["category_id"] = 99
    path.write_text(json.dumps(doc))
    return "instances_train2017.json", r"annotation 12 has unknown category id 99"


BREAK = {
    "voc": _break_voc,
    "cvat": _break_cvat,
    "cityscapes": _break_cityscapes,
    "ade20k": _break_ade20k,
    "coco": _break_coco,
}


@pytest.mark.parametrize("name", list(BREAK))
def test_a_malformed_copy_stops_in_one_line_and_writes_nothing(
    name: str, tmp_path: Path, capsys
) -> None:
    data = BUILDERS[name](tmp_path / name)
    where, problem = BREAK[name](data)
    assert main(["verify-data", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert any(where in line and re.search(problem, line) for line in err.splitlines()), err
    run = tmp_path / "run"
    assert main(train_args(data, run, "--epochs", "1")) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fcnseg")]
    assert len(lines) == 1 and lines[0].startswith("fcnseg train: error: ") and where in lines[0]
    assert re.search(problem, lines[0]), lines[0]
    assert not run.exists()


def test_coco_without_pycocotools_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    data = make_coco(tmp_path / "coco")
    monkeypatch.setitem(sys.modules, "pycocotools", None)  # as if not installed
    assert main(["verify-data", "--data", str(data)]) == 2
    assert capsys.readouterr().err.strip().endswith("pip install 'fcnseg[coco]'")


def test_a_coco_file_without_a_split_in_its_name_is_named(tmp_path: Path) -> None:
    data = make_coco(tmp_path / "coco")
    for path in (data / "annotations").iterdir():
        path.rename(path.with_name(path.name.replace("_train2017", "_default")))
    (data / "annotations" / "instances_val2017.json").unlink()
    with pytest.raises(DataError, match=r"no COCO file names a split: expected annotations/"):
        open_dataset(data)


def test_cityscapes_splits_without_fine_labels_are_not_read(tmp_path: Path) -> None:
    data = BUILDERS["cityscapes"](tmp_path / "cs")
    extra = data / "leftImg8bit" / "train_extra" / "bonn" / "bonn_000000_000019_leftImg8bit.png"
    extra.parent.mkdir(parents=True)
    shutil.copy(next((data / "leftImg8bit" / "train").rglob("*.png")), extra)
    assert set(open_dataset(data).splits) == {"train", "val"}


def _resave_masks(data: Path, convert) -> None:
    for mask in data.glob("*/masks/*.png"):
        convert(Image.open(mask)).save(mask)


def test_palette_masks_give_the_colours_of_a_description_without_palette(tmp_path: Path) -> None:
    from fcnseg.data.synthetic import make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "d", counts={"train": 2, "val": 1}, size=(16, 24))
    (data / "dataset.yaml").write_text("classes: [background, disk, box, bar]\n")
    default = open_dataset(data).info.palette  # 8-bit grey masks: fcnseg's own colours
    _resave_masks(data, lambda m: m.convert("P"))  # PIL's grey-ramp palette says nothing
    assert open_dataset(data).info.palette == default
    colours = [(1, 2, 3), (250, 0, 0), (1, 2, 3), (0, 0, 250)]  # id 2 repeats id 0's colour

    def paletted(mask: Image.Image) -> Image.Image:
        mask = mask.convert("L").convert("P")
        mask.putpalette([v for c in colours for v in c])
        return mask

    _resave_masks(data, paletted)
    palette = open_dataset(data).info.palette
    assert [palette[i] for i in (0, 1, 3)] == [colours[i] for i in (0, 1, 3)]
    assert len(set(palette)) == 4  # the repeat got a colour of its own


def test_label_map_in_dataset_yaml_translates_mask_values(tmp_path: Path) -> None:
    from fcnseg.data.info import DatasetInfo
    from fcnseg.data.synthetic import make_synthetic_dataset

    data = make_synthetic_dataset(tmp_path / "d", counts={"train": 2, "val": 1}, size=(16, 24))

    def shifted(mask: Image.Image) -> Image.Image:  # ids 0..3 stored as 5, 15, 25, 35; void as 0
        ids = np.array(mask)
        return Image.fromarray(np.where(ids == 255, 0, ids * 10 + 5).astype(np.uint8))

    _resave_masks(data, shifted)
    (data / "dataset.yaml").write_text(
        "classes: [background, disk, box, bar]\nlabel_map: {5: 0, 15: 1, 25: 2, 35: 3, 0: 255}\n"
    )
    layout = open_dataset(data)
    scan = scan_split(layout.split("train"), layout.info)
    assert set(np.unique(np.concatenate([d.mask.ravel() for d in scan.decoded]))) <= {
        0,
        1,
        2,
        3,
        255,
    }
    assert DatasetInfo.from_dict(layout.info.to_dict()) == layout.info  # as checkpoints store it
    (data / "dataset.yaml").write_text("classes: [background, disk, box, bar]\nlabel_map: {5: 0}\n")
    with pytest.raises(
        DataError, match=r"mask value\(s\) \[.*\] have no training id in the label map"
    ):
        scan_split(open_dataset(data).split("train"), open_dataset(data).info)
    (data / "dataset.yaml").write_text("classes: [a, b]\nlabel_map: {5: 7}\n")
    with pytest.raises(DataError, match=r"'label_map' entry 5: 7 must map a value 0\.\.255 to a"):
        open_dataset(data)


def test_roboflow_coco_export_with_compressed_rle(tmp_path: Path) -> None:
    from pycocotools import mask as mask_utils

    region = np.zeros((32, 48), dtype=np.uint8, order="F")
    region[5:20, 5:30] = 1
    rle = mask_utils.encode(region)
    rle["counts"] = rle["counts"].decode()  # JSON holds the string
    for folder in ("train", "valid"):
        (tmp_path / folder).mkdir()
        Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(tmp_path / folder / "a.jpg")
        doc = {
            "images": [{"id": 0, "file_name": "a.jpg", "height": 32, "width": 48}],
            "annotations": [{"id": 1, "image_id": 0, "category_id": 1, "segmentation": rle, "iscrowd": 0}],
            "categories": [{"id": 0, "name": "cells"}, {"id": 1, "name": "cell"}],
        }  # fmt: skip
        (tmp_path / folder / "_annotations.coco.json").write_text(json.dumps(doc))
    layout = open_dataset(tmp_path)
    assert layout.kind == "coco" and set(layout.splits) == {"train", "val"}
    assert layout.info.class_names == ("background", "cells", "cell")
    labels = scan_split(layout.split("val"), layout.info).decoded[0].mask
    np.testing.assert_array_equal(labels, region * 2)


def test_pictures_of_ade20k_s_150_classes_stay_a_readable_size() -> None:
    """An 85-inch confusion matrix took about a minute to draw; now ~20 in, no cell numbers."""
    import matplotlib.pyplot as plt

    from fcnseg.data.info import DatasetInfo
    from fcnseg.viz import confusion_figure, per_class_figure

    info = DatasetInfo.from_dict({"classes": list(ADE20K_CLASSES)})
    cm = np.eye(150, dtype=np.int64)
    for fig in (
        confusion_figure(cm, info),
        per_class_figure(dict.fromkeys(ADE20K_CLASSES, 0.5), info),
    ):
        width, height = fig.get_size_inches()
        assert width <= 28 and height <= 23, (width, height)
        assert len(fig.axes[0].texts) == 0  # no per-cell or per-bar numbers at this size
        plt.close(fig)


def test_dataset1_layout_with_its_test_split_alone(tmp_path: Path) -> None:
    """A copy of dataset1's test split alone (what `fcnseg evaluate --split test` needs) opens;
    a folder named dataset1 with neither split says which folders it needs."""
    import numpy as np
    from PIL import Image

    from fcnseg.data import open_dataset

    root = tmp_path / "d1"
    for kind in ("images", "annotations"):
        (root / f"{kind}_prepped_test").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "images_prepped_test" / "a.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "annotations_prepped_test" / "a.png")
    assert [s.image.name for s in open_dataset(root).split("test")] == ["a.png"]
    empty = tmp_path / "e"
    empty.mkdir()
    (empty / "dataset.yaml").write_text("layout: dataset1\n")
    with pytest.raises(DataError, match="images_prepped_train/ or images_prepped_test/"):
        open_dataset(empty)


@pytest.mark.parametrize("far", [1e12, float("nan")])
def test_a_coco_polygon_far_outside_its_image_is_one_line(tmp_path: Path, far: float) -> None:
    """pycocotools' rasteriser crashed the process (a segfault) on a coordinate of 1e7 and more:
    such a polygon is refused, naming the file and the annotation."""
    root = make_coco(tmp_path / "coco")
    path = root / "annotations" / "instances_train2017.json"
    doc = json.loads(path.read_text())
    polygon = next(a for a in doc["annotations"] if isinstance(a["segmentation"], list))
    polygon["segmentation"] = [[0, 0, far, 0, far, far, 0, 5]]
    path.write_text(json.dumps(doc))
    layout = open_dataset(root, strict=False)
    with pytest.raises(DataError, match=f"annotation {polygon['id']}: bad segmentation .*outside"):
        scan_split(layout.split("train"), layout.info)
