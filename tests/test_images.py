"""Decoding images: EXIF orientation applied everywhere, decompression bombs refused in one line."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import train_args
from PIL import Image

from fcnseg.cli import main
from fcnseg.data.info import DatasetInfo
from fcnseg.data.io import read_image, read_mask
from fcnseg.errors import DataError

ORIENTATION = 0x0112  # EXIF tag; 6: the camera was turned, show the picture rotated 90° clockwise


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A valid 1-bit PNG of zeros: a few KB on disk, ``width * height`` pixels once decoded."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(height)) + z.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data))
    path.write_bytes(path.read_bytes() + chunk(b"IEND", b""))
    return path


def _rotated_photo(path: Path, orientation: int = 6) -> np.ndarray:
    """Save a 20x30 (H x W) picture with a white top-left corner under an EXIF orientation;
    return its raw pixels as stored."""
    raw = np.zeros((20, 30, 3), np.uint8)
    raw[:, :, 2] = 90
    raw[:8, :8] = 255  # top-left of the stored pixels
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    Image.fromarray(raw).save(path, exif=exif, quality=95)
    return np.asarray(Image.open(path).convert("RGB"))


def test_exif_orientation_6_is_applied_to_images(tmp_path: Path) -> None:
    path = tmp_path / "phone.jpg"
    stored = _rotated_photo(path)
    upright = read_image(path)
    assert stored.shape == (20, 30, 3) and upright.shape == (30, 20, 3)
    np.testing.assert_array_equal(upright, np.rot90(stored, k=-1))  # 90° clockwise
    assert upright[:8, -8:].mean() > 240  # the white corner is now top-right
    assert read_image(_save_plain(tmp_path / "plain.jpg")).shape == (20, 30, 3)


def _save_plain(path: Path) -> Path:
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(path)
    return path


def test_exif_orientation_is_applied_to_masks(tmp_path: Path) -> None:
    info = DatasetInfo.from_dict({"classes": ["a", "b", "c"]})
    ids = np.zeros((20, 30), np.uint8)
    ids[:8, :8] = 2
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    Image.fromarray(ids).save(tmp_path / "m.png", exif=exif)
    mask = read_mask(tmp_path / "m.png", info)
    np.testing.assert_array_equal(mask, np.rot90(ids, k=-1))


def test_predict_reads_photos_upright(lite0_checkpoint: Path, tmp_path: Path) -> None:
    import fcnseg

    path = tmp_path / "phone.jpg"
    _rotated_photo(path)
    argv = ["predict", "--checkpoint", str(lite0_checkpoint), "--input", str(path)]
    assert main([*argv, "--out", str(tmp_path / "o"), "--device", "cpu"]) == 0
    labels = np.asarray(Image.open(tmp_path / "o" / "phone_label.png"))
    assert labels.shape == (30, 20)
    seg = fcnseg.load(lite0_checkpoint, device="cpu")
    np.testing.assert_array_equal(seg.predict(Image.open(path)), labels)  # PIL input too
    np.testing.assert_array_equal(seg.predict(read_image(path)), labels)


@pytest.mark.parametrize("side", [12000, 14000])  # PIL: a warning only / DecompressionBombError
def test_decompression_bombs_are_refused_before_decoding(tmp_path: Path, side: int) -> None:
    path = bomb_png(tmp_path / "bomb.png", side, side)
    assert path.stat().st_size < 100_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even PIL's DecompressionBombWarning
        with pytest.raises(DataError) as info:
            read_image(path)
    message = str(info.value)
    assert str(path) in message and f"{side}x{side}" in message and "decompression bomb" in message
    assert "FCNSEG_MAX_IMAGE_PIXELS" in message and "\n" not in message


def test_the_pixel_limit_is_set_by_environment(tmp_path: Path, monkeypatch) -> None:
    path = bomb_png(tmp_path / "b.png", 40, 40)
    monkeypatch.setenv("FCNSEG_MAX_IMAGE_PIXELS", "1599")
    with pytest.raises(DataError, match="1,600 pixels, more than the limit of 1,599"):
        read_image(path)
    monkeypatch.setenv("FCNSEG_MAX_IMAGE_PIXELS", "1600")
    assert read_image(path).shape == (40, 40, 3)
    # Our limit, not PIL's, decides: with PIL's set far lower, 0 (no limit) still reads it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    monkeypatch.setenv("FCNSEG_MAX_IMAGE_PIXELS", "0")
    assert read_image(path).shape == (40, 40, 3)
    assert Image.MAX_IMAGE_PIXELS == 100  # PIL's setting is left as it was
    monkeypatch.setenv("FCNSEG_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(DataError, match="FCNSEG_MAX_IMAGE_PIXELS must be a whole number"):
        read_image(path)


@pytest.fixture
def bomb_data(tmp_path: Path) -> Path:
    """The synthetic dataset with one training and one test image replaced by a bomb."""
    from fcnseg.data.synthetic import make_synthetic_dataset

    data = make_synthetic_dataset(
        tmp_path / "data", counts={"train": 8, "val": 4, "test": 4}, size=(40, 48), seed=3
    )
    for split in ("train", "test"):
        bomb_png(data / split / "images" / f"{split}_001.png", 12000, 12000)
    return data


def _one_error_line(capsys, *expected: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    assert all(e in lines[0] for e in expected), lines[0]
    assert "Traceback" not in err
    return lines[0]


def test_bombs_in_every_command(bomb_data: Path, lite0_checkpoint: Path, tmp_path, capsys) -> None:
    bomb = bomb_data / "test" / "images" / "test_001.png"
    ckpt = str(lite0_checkpoint)
    argv = ["predict", "--checkpoint", ckpt, "--input", str(bomb), "--out", str(tmp_path / "p")]
    assert main(argv) == 2
    _one_error_line(capsys, "fcnseg predict: error:", str(bomb), "decompression bomb")
    argv = ["evaluate", "--checkpoint", ckpt, "--data", str(bomb_data), "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "e")]) == 2
    _one_error_line(capsys, "fcnseg evaluate: error:", str(bomb), "decompression bomb")
    assert main(["verify-data", "--data", str(bomb_data)]) == 1  # verify-data lists bad pairs
    listed = [line for line in capsys.readouterr().err.splitlines() if "bomb" in line]
    assert len(listed) == 2 and "train_001.png" in listed[0] and "test_001.png" in listed[1]
    assert main(train_args(bomb_data, tmp_path / "run", "--epochs", "1")) == 2
    _one_error_line(capsys, "fcnseg train: error:", "train_001.png", "decompression bomb")


def test_skip_bad_skips_a_bomb_in_training(bomb_data: Path, tmp_path: Path, capsys) -> None:
    argv = [*train_args(bomb_data, tmp_path / "run", "--epochs", "1"), "--skip-bad"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "skipped 1 bad pair(s) in train" in out and "decompression bomb" in out
    assert (tmp_path / "run" / "checkpoint_last.pt").is_file()
