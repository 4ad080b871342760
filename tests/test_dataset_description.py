"""dataset.yaml is read strictly: unknown keys, wrong types and duplicates are one-line errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from fcnseg.cli import main
from fcnseg.data.info import (
    DATASET1,
    KNOWN_KEYS,
    DatasetInfo,
    default_palette,
    load_description,
    srgb_to_lab,
    voc_palette,
)
from fcnseg.data.synthetic import make_synthetic_dataset
from fcnseg.errors import DataError

BASE = "classes: [sky, road, car]\n"


def _load(tmp_path: Path, text: str, name: str = "dataset.yaml") -> DatasetInfo:
    path = tmp_path / name
    path.write_text(text)
    return load_description(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE + "colour_masks: true\n", r"unknown key\(s\) 'colour_masks'; known: name, classes"),
        (BASE + 'color_masks: "false"\n', r"'color_masks' must be true or false, got 'false'"),
        (BASE + "color_masks: 1\n", r"'color_masks' must be true or false, got 1"),
        (BASE + "ignore_index: true\n", r"'ignore_index' must be an integer in 3\.\.255"),
        (BASE + "ignore_index: 2.5e2\n", r"'ignore_index' must be an integer"),
        (BASE + "ignore_color: [0, 0]\n", r"'ignore_color' must be \[r, g, b\]"),
        (BASE + "ignore_color: [0, 0, 256]\n", r"'ignore_color' must be \[r, g, b\]"),
        (BASE + "ignore_color: [true, 0, 0]\n", r"'ignore_color' must be \[r, g, b\]"),
        (BASE + 'ignore_color: "black"\n', r"'ignore_color' must be \[r, g, b\]"),
        (BASE + "notes: a note\n", r"'notes' must be a list of strings, got 'a note'"),
        (BASE + "notes: [ok, 3]\n", r"'notes' must be a list of strings"),
        (BASE + "notes: 5\n", r"'notes' must be a list of strings, got 5"),
        (BASE + "palette: 5\n", r"'palette' must list one \[r, g, b\].*got 5\)"),
        (BASE + "palette: [[1, 2, 3]]\n", r"'palette' must list one .*\(3 classes, got 1\)"),
        (BASE + "palette: [[1,2,3],[4,5,6],[7,8,1.5]]\n", r"'palette' must list one \[r, g, b\]"),
        (BASE + "name: [a]\n", r"'name' must be a non-empty string"),
        ("classes: [sky, road, sky]\n", r"duplicate class name\(s\): 'sky'"),
        ("classes: [sky, 3]\n", r"class names must be non-empty strings, got 3"),
        ("classes: []\n", r"'classes' must be a non-empty list"),
        ("classes: sky\n", r"'classes' must be a non-empty list"),
        (BASE + "class_names: [a]\n", r"give the class names once"),
        (BASE + "classes: [a, b]\n", r"key 'classes' given twice at line 2, column 1"),
        ("- a\n- b\n", r"expected a mapping with 'classes'"),
        ("", r"expected a mapping with 'classes'"),
        (
            BASE + "color_masks: true\npalette: [[1, 2, 3], [4, 5, 6], [1, 2, 3]]\n",
            r"colour \[1, 2, 3\] is in the palette twice",
        ),
        (
            BASE + "color_masks: true\npalette: [[1, 2, 3], [4, 5, 6], [7, 8, 9]]\n"
            "ignore_color: [4, 5, 6]\n",
            r"'ignore_color' \[4, 5, 6\] is also the colour of class 'road'",
        ),
    ],
)
def test_bad_descriptions_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(DataError, match=expected) as err:
        _load(tmp_path, text)
    message = str(err.value)
    assert message.startswith(str(tmp_path / "dataset.yaml") + ": ")
    assert "\n" not in message


def test_yaml_syntax_error_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        _load(tmp_path, "classes: [a, b\npalette: {\n")
    message = str(err.value)
    assert "\n" not in message and "cannot read the dataset description" in message
    assert "line " in message and "column " in message


def test_json_description_is_checked_alike(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dataset\.json: unknown key\(s\) 'ignore'"):
        _load(tmp_path, '{"classes": ["a", "b"], "ignore": 255}', "dataset.json")


def test_a_good_description_reads_as_written(tmp_path: Path) -> None:
    info = _load(
        tmp_path,
        BASE + "palette: [[10, 20, 30], [40, 50, 60], [70, 80, 90]]\ncolor_masks: true\n"
        "ignore_color: [0, 0, 0]\nignore_index: 200\nnotes: [from a phone]\nname: streets\n",
    )
    assert info.class_names == ("sky", "road", "car") and info.name == "streets"
    assert info.palette == ((10, 20, 30), (40, 50, 60), (70, 80, 90))
    assert info.color_masks is True and info.ignore_color == (0, 0, 0)
    assert info.ignore_index == 200 and info.notes == ("from a phone",)
    # What a checkpoint stores reads back to the same description.
    assert DatasetInfo.from_dict(info.to_dict(), "ckpt") == info
    assert DatasetInfo.from_dict(DATASET1.to_dict(), "ckpt") == DATASET1


def test_every_known_key_is_read(tmp_path: Path) -> None:
    assert set(KNOWN_KEYS) == {*DatasetInfo.__dataclass_fields__, "classes"}


def test_colour_masks_without_palette_keep_voc_colours(tmp_path: Path) -> None:
    info = _load(tmp_path, BASE + "color_masks: true\n")
    assert [list(c) for c in info.palette] == voc_palette(3)
    assert voc_palette(3) == [[128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert [list(c) for c in _load(tmp_path, BASE).palette] == default_palette(3)


def _min_distance(palette) -> float:
    lab = srgb_to_lab(np.array([*palette, (0, 0, 0)]))
    return min(
        np.linalg.norm(lab[i] - lab[j]) for i, j in itertools.combinations(range(len(lab)), 2)
    )


@pytest.mark.parametrize(("n", "at_least"), [(4, 80), (11, 45), (21, 35), (40, 25)])
def test_default_palette_colours_are_far_apart(n: int, at_least: float) -> None:
    palette = default_palette(n)
    assert len(palette) == n and default_palette(n) == palette  # deterministic
    assert _min_distance(palette) >= at_least
    # PASCAL VOC's scheme (the old default) had near-identical colours among 21 classes.
    assert _min_distance(voc_palette(21)) < 20 <= _min_distance(default_palette(21))


def test_camvid_palette_classes_are_far_apart() -> None:
    assert len(set(DATASET1.palette)) == DATASET1.num_classes
    assert _min_distance(DATASET1.palette) >= 35
    camvid = dict(zip(DATASET1.class_names, DATASET1.palette, strict=True))
    assert camvid["building"] == (128, 0, 0) and camvid["road"] == (128, 64, 128)


def test_verify_data_reports_a_bad_description_in_one_line(tmp_path: Path, capsys) -> None:
    data = make_synthetic_dataset(tmp_path / "ds", counts={"train": 2}, size=(8, 8))
    text = (data / "dataset.yaml").read_text()
    (data / "dataset.yaml").write_text(text + "color_masks: 'no'\n")
    assert main(["verify-data", "--data", str(data)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("fcnseg verify-data: error: ")
    assert "dataset.yaml: 'color_masks' must be true or false, got 'no'" in err[0]
