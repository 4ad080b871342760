"""verify-data lists every problem with its reason; training stops at one line naming the first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import train_args
from PIL import Image

from fcnseg.cli import main
from fcnseg.data import open_dataset, scan_split
from fcnseg.data.synthetic import make_synthetic_dataset
from fcnseg.errors import DataError


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_synthetic_dataset(
        tmp_path / "ds", counts={"train": 5, "val": 3}, size=(24, 32), seed=2
    )


def _break_labels(path: Path, value: int = 9) -> None:
    mask = np.array(Image.open(path))
    mask[0, 0] = value
    Image.fromarray(mask).save(path)


def _unpair(data: Path) -> list[str]:
    """Two images lose their masks, one mask its image; returns the file names concerned."""
    (data / "train" / "masks" / "train_001.png").unlink()
    (data / "train" / "masks" / "train_003.png").unlink()
    (data / "val" / "images" / "val_002.png").unlink()
    return [
        "train_001.png: image has no mask",
        "train_003.png: image has no mask",
        "val_002.png: mask has no image",
    ]


def _verify(data: Path, capsys) -> tuple[int, list[str], str]:
    code = main(["verify-data", "--data", str(data)])
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines(), captured.out


def test_every_unpaired_file_and_bad_pair_is_listed_then_the_summary(data: Path, capsys) -> None:
    expected = _unpair(data)
    _break_labels(data / "train" / "masks" / "train_004.png")
    code, err, out = _verify(data, capsys)
    assert code == 1
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 4
    for text in [*expected, "train_004.png: label ids [9] outside 0..3"]:
        assert sum(text in line for line in errors) == 1, text
    assert err[-1] == "NOT USABLE: 4 problem(s) listed above (train: 3; val: 1)"
    # The audit still covers what could be read.
    rows = {line.split()[0]: line.split() for line in out.splitlines()[3:5]}
    assert rows["train"][1:3] == ["2", "3"] and rows["val"][1:3] == ["2", "1"]


def test_a_split_where_every_pair_is_bad_shows_each_cause(data: Path, capsys) -> None:
    for path in sorted((data / "val" / "masks").iterdir()):
        _break_labels(path)
    code, err, _ = _verify(data, capsys)
    assert code == 1
    for i in range(3):
        assert any(f"val_00{i}.png: label ids [9] outside 0..3" in line for line in err), err
    assert err[-1] == "NOT USABLE: 3 problem(s) listed above (val: 3, no usable pair)"
    assert not any("empty split" in line for line in err)


def test_a_missing_masks_folder_is_listed_with_the_rest(data: Path, capsys) -> None:
    for path in (data / "val" / "masks").iterdir():
        path.unlink()
    (data / "val" / "masks").rmdir()
    _break_labels(data / "train" / "masks" / "train_000.png", 200)
    code, err, _ = _verify(data, capsys)
    assert code == 1
    assert any("val/masks: folder not found" in line for line in err)
    assert any("train_000.png: label ids [200]" in line for line in err)
    assert err[-1] == "NOT USABLE: 2 problem(s) listed above (train: 1; val: 1, no usable pair)"


def test_two_files_with_one_stem_are_a_problem(data: Path) -> None:
    image = data / "train" / "images" / "train_002.png"
    Image.open(image).save(image.with_suffix(".jpg"))
    with pytest.raises(DataError, match=r"train_002\.png: same name as train_002\.jpg"):
        open_dataset(data)


def test_open_dataset_names_the_first_unpaired_file_and_counts_the_rest(data: Path) -> None:
    _unpair(data)
    with pytest.raises(DataError) as err:
        open_dataset(data)
    message = str(err.value)
    assert "train_001.png: image has no mask" in message and "(and 2 more;" in message
    layout = open_dataset(data, strict=False)
    assert [len(layout.splits[s]) for s in ("train", "val")] == [3, 2]
    assert {s: len(p) for s, p in layout.problems.items()} == {"train": 2, "val": 1}


def test_scan_names_the_first_bad_pair_and_counts_the_rest(data: Path) -> None:
    for name in ("train_001.png", "train_002.png", "train_004.png"):
        _break_labels(data / "train" / "masks" / name)
    layout = open_dataset(data)
    with pytest.raises(DataError) as err:
        scan_split(layout.split("train"), layout.info)
    message = str(err.value)
    assert "train_001.png: label ids [9]" in message and "(and 2 more;" in message
    assert "\n" not in message
    scan = scan_split(layout.split("train"), layout.info, skip_bad=True)
    assert len(scan.samples) == 2 and len(scan.skipped) == 3


def test_an_unusable_split_names_a_cause_even_when_skipping(data: Path) -> None:
    for path in (data / "val" / "masks").iterdir():
        _break_labels(path)
    layout = open_dataset(data)
    with pytest.raises(DataError, match=r"empty split: none of 3 pairs is usable: .*val_000\.png"):
        scan_split(layout.split("val"), layout.info, skip_bad=True)
    scan = scan_split(layout.split("val"), layout.info, skip_bad=True, allow_empty=True)
    assert scan.samples == [] and len(scan.skipped) == 3


@pytest.mark.parametrize("damage", ["unpaired", "labels"])
def test_training_stops_at_one_line_naming_the_first_bad_file(
    data: Path, tmp_path: Path, capsys, damage: str
) -> None:
    if damage == "unpaired":
        _unpair(data)
        first = "train_001.png: image has no mask"
    else:
        for name in ("train_001.png", "train_003.png", "train_004.png"):
            _break_labels(data / "train" / "masks" / name)
        first = "train_001.png: label ids [9]"
    out = tmp_path / "run"
    assert main(train_args(data, out, "--epochs", "1")) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fcnseg")]
    assert len(err) == 1 and err[0].startswith("fcnseg train: error: ")
    assert first in err[0] and "(and 2 more;" in err[0]
    assert not (out / "checkpoint_last.pt").exists()
