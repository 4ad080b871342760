"""benchmarks/dataset1_splits.py: the held-out and all-images folders of the accuracy recipes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "dataset1_splits.py"


@pytest.fixture(scope="module")
def splits():
    spec = importlib.util.spec_from_file_location("dataset1_splits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def fake_dataset1(root: Path) -> Path:
    names = {"train": ["0001TP_1", "0006R0_1", "0006R0_2", "0016E5_1"], "test": ["0016E5_9"]}
    for split, stems in names.items():
        for i, stem in enumerate(stems):
            for folder in ("images_prepped", "annotations_prepped"):
                d = root / f"{folder}_{split}"
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((4, 6), i, np.uint8)).save(d / f"{stem}.png")
    return root


def names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.png"))


def test_heldout_puts_one_sequence_in_test_and_leaves_dataset1_alone(
    splits, tmp_path: Path
) -> None:
    d1 = fake_dataset1(tmp_path / "d1")
    before = sorted(str(p.relative_to(d1)) for p in d1.rglob("*"))
    counts = splits.make_split("heldout", d1, tmp_path / "h")
    assert counts == {"train": 2, "test": 2}
    assert names(tmp_path / "h/images_prepped_test") == ["0006R0_1", "0006R0_2"]
    assert names(tmp_path / "h/annotations_prepped_test") == ["0006R0_1", "0006R0_2"]
    assert names(tmp_path / "h/images_prepped_train") == ["0001TP_1", "0016E5_1"]
    assert sorted(str(p.relative_to(d1)) for p in d1.rglob("*")) == before  # nothing moved


def test_all_trains_on_train_and_test(splits, tmp_path: Path) -> None:
    d1 = fake_dataset1(tmp_path / "d1")
    assert splits.make_split("all", d1, tmp_path / "a") == {"train": 5, "test": 1}
    assert "0016E5_9" in names(tmp_path / "a/annotations_prepped_train")
    assert names(tmp_path / "a/images_prepped_test") == ["0016E5_9"]


def test_refuses_a_folder_with_files_and_an_unknown_sequence(splits, tmp_path: Path) -> None:
    d1 = fake_dataset1(tmp_path / "d1")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    with pytest.raises(SystemExit, match="not an empty folder"):
        splits.make_split("all", d1, tmp_path / "full")
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep"
    with pytest.raises(SystemExit, match="no training image of sequence"):
        splits.make_split("heldout", d1, tmp_path / "h", sequence="9999XX")
