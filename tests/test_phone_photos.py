"""Photos as people take them: the shipped model on phone-sized copies of dataset1 test images
(enlarged 5x to 2400x1800, JPEG, stored sideways with an EXIF orientation tag) scores within 2
points of mean IU of the native 480x360 images, at no more than 4x their time."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from phone_photos import make_copies, native_copies
from PIL import Image

from fcnseg import zoo
from fcnseg.cli import main
from fcnseg.data.io import read_image

DATASET1 = Path("/work/shared/datasets/dataset1")
# Four test images across the sequence (the test split is one drive, frames in order).
NAMES = ["0016E5_07959.png", "0016E5_08085.png", "0016E5_08115.png", "0016E5_08159.png"]


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not (DATASET1 / "images_prepped_test").is_dir():
        pytest.skip(f"dataset1 is not at {DATASET1}")
    if zoo.find("camvid_lite2") is None:
        pytest.skip("the built-in model camvid_lite2 is not shipped")
    names = [n for n in NAMES if (DATASET1 / "images_prepped_test" / n).is_file()]
    if len(names) < 3:  # another copy of CamVid: take its first images instead
        names = sorted(p.name for p in (DATASET1 / "images_prepped_test").iterdir())[:4]
    root = tmp_path_factory.mktemp("phone")
    native = native_copies(DATASET1, root / "native", names)
    phone = make_copies(DATASET1, root / "phone", names=names)
    return native, phone


def _evaluate(data: Path, out: Path) -> tuple[float, float]:
    """Mean IU and seconds of ``fcnseg evaluate`` of the shipped model on ``data``'s test split."""
    argv = ["evaluate", "--checkpoint", "camvid_lite2", "--data", str(data), "--device", "cpu",
            "--backend", "torch", "--worst", "0", "--out", str(out), "--json",
            str(out / "m.json")]  # fmt: skip
    start = time.perf_counter()
    assert main(argv) == 0
    seconds = time.perf_counter() - start
    return json.loads((out / "m.json").read_text())["mean_iu"], seconds


def test_the_copies_are_phone_photos(copies) -> None:
    native, phone = copies
    stored = next((phone / "images_prepped_test").iterdir())
    raw = Image.open(stored)
    assert raw.size == (1800, 2400) and raw.getexif()[0x0112] == 6  # sideways, tagged
    upright = read_image(stored)
    assert upright.shape == (1800, 2400, 3)  # read upright
    original = read_image(native / "images_prepped_test" / f"{stored.stem}.png")
    small = np.asarray(Image.fromarray(upright).resize((480, 360), Image.Resampling.BILINEAR))
    assert np.abs(small.astype(int) - original.astype(int)).mean() < 8  # the same scene


def test_phone_sized_photos_score_as_the_native_ones(copies, tmp_path: Path, capsys) -> None:
    native, phone = copies
    _evaluate(native, tmp_path / "warm")  # first use: the model file is checked and loaded
    phone_iu, phone_s = _evaluate(phone, tmp_path / "phone")
    native_iu, native_s = _evaluate(native, tmp_path / "native")
    report = f"native {native_iu:.4f} in {native_s:.1f} s, phone {phone_iu:.4f} in {phone_s:.1f} s"
    print(report)
    assert abs(phone_iu - native_iu) <= 0.02, report
    assert phone_s <= 4 * native_s, report
