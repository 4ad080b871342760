"""The data layer: layouts, every kind of bad data, conversions, transforms, class statistics."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torchvision import tv_tensors

from fcnseg.cli import main
from fcnseg.data import (
    SegmentationDataset,
    median_frequency_weights,
    open_dataset,
    rare_classes,
    scan_split,
)
from fcnseg.data.io import read_image, read_mask
from fcnseg.data.synthetic import make_synthetic_dataset
from fcnseg.data.transforms import FocusCrop, RandomScale, eval_transform, train_transform
from fcnseg.errors import DataError

DATASET1 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "dataset1"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_synthetic_dataset(
        tmp_path / "ds", counts={"train": 4, "val": 2}, size=(40, 48), seed=1
    )


def _first(data: Path, kind: str, split: str = "train") -> Path:
    return sorted((data / split / kind).iterdir())[0]


def _scan_all(data: Path) -> None:
    layout = open_dataset(data)
    for samples in layout.splits.values():
        scan_split(samples, layout.info)


def test_generic_layout_is_found(data: Path) -> None:
    layout = open_dataset(data)
    assert layout.kind == "folders" and set(layout.splits) == {"train", "val"}
    assert layout.info.class_names == ("background", "disk", "box", "bar")
    assert layout.validation_split() == "val"
    scan = scan_split(layout.split("train"), layout.info)
    assert len(scan.samples) == 4 and scan.uniform_size == (40, 48)
    assert scan.pixels.sum() == 4 * 40 * 48


def test_missing_dataset_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope: dataset folder not found"):
        open_dataset(tmp_path / "nope")


def test_missing_masks_folder(data: Path) -> None:
    shutil.rmtree(data / "val" / "masks")
    with pytest.raises(DataError, match=r"val/masks: folder not found"):
        open_dataset(data)


def test_image_without_mask(data: Path) -> None:
    _first(data, "masks").unlink()
    with pytest.raises(DataError, match=r"train_000\.png: image has no mask"):
        open_dataset(data)


def test_mask_without_image(data: Path) -> None:
    _first(data, "images").unlink()
    with pytest.raises(DataError, match=r"train_000\.png: mask has no image"):
        open_dataset(data)


def test_empty_split(data: Path) -> None:
    for p in (data / "val" / "images").iterdir():
        p.unlink()
    for p in (data / "val" / "masks").iterdir():
        p.unlink()
    with pytest.raises(DataError, match=r"val/images: empty split"):
        open_dataset(data)


def test_size_mismatch(data: Path) -> None:
    path = _first(data, "masks")
    Image.fromarray(np.zeros((40, 47), np.uint8)).save(path)
    with pytest.raises(DataError, match=r"train_000\.png: mask is 47x40 but its image is 48x40"):
        _scan_all(data)


def test_label_above_class_count(data: Path) -> None:
    path = _first(data, "masks")
    mask = np.array(Image.open(path))
    mask[0, 0] = 7
    Image.fromarray(mask).save(path)
    with pytest.raises(DataError, match=r"label ids \[7\] outside 0\.\.3 \(ignore label is 255\)"):
        _scan_all(data)


@pytest.mark.parametrize("kind", ["images", "masks"])
def test_truncated_file(data: Path, kind: str) -> None:
    path = _first(data, kind)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=r"train_000\.png: unreadable or truncated image"):
        _scan_all(data)


def test_non_image_file(data: Path) -> None:
    _first(data, "images").write_text("hello, I am text")
    with pytest.raises(DataError, match=r"train_000\.png: unreadable or truncated image"):
        _scan_all(data)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_grayscale_rgba_palette_16bit_images_are_converted(tmp_path: Path, mode: str) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    if mode == "I;16":
        gray = np.array(img.convert("L")).astype(np.uint16) * 257
        img = Image.fromarray(gray)
        assert img.mode == "I;16"
        expected = np.repeat(np.array(Image.fromarray(rgb).convert("L"))[..., None], 3, 2)
    else:
        img = img.convert(mode)
        expected = np.array(img.convert("RGB"))
    path = tmp_path / "x.png"
    img.save(path)
    out = read_image(path)
    assert out.shape == (9, 11, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_palette_and_16bit_masks_hold_ids(tmp_path: Path, data: Path) -> None:
    info = open_dataset(data).info
    ids = np.array([[0, 1], [2, 255]], np.uint8)
    p_mask = Image.fromarray(ids, mode="L").convert("P")
    p_mask.putpalette([v for i in range(256) for v in (i, 0, 0)])
    p_mask.save(tmp_path / "p.png")
    Image.fromarray(ids.astype(np.uint16)).save(tmp_path / "i16.png")
    for name in ("p.png", "i16.png"):
        np.testing.assert_array_equal(read_mask(tmp_path / name, info), ids)
    Image.fromarray(np.array([[0, 300]], np.uint16)).save(tmp_path / "big.png")
    with pytest.raises(DataError, match=r"big\.png: 16-bit mask has label ids up to 300"):
        read_mask(tmp_path / "big.png", info)


def test_rgb_masks_need_a_palette(tmp_path: Path, data: Path) -> None:
    info = open_dataset(data).info
    colours = np.array([[[220, 60, 60], [170, 170, 170]]], np.uint8)
    Image.fromarray(colours).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match=r"rgb\.png: mask is an RGB colour picture"):
        read_mask(tmp_path / "rgb.png", info)
    desc = yaml.safe_load((data / "dataset.yaml").read_text())
    (data / "dataset.yaml").write_text(yaml.safe_dump({**desc, "color_masks": True}))
    info = open_dataset(data).info
    np.testing.assert_array_equal(read_mask(tmp_path / "rgb.png", info), [[1, 0]])
    Image.fromarray(np.array([[[1, 2, 3]]], np.uint8)).save(tmp_path / "odd.png")
    with pytest.raises(DataError, match=r"odd\.png: colours not in the palette: \(1, 2, 3\)"):
        read_mask(tmp_path / "odd.png", info)


def test_bad_description(data: Path) -> None:
    (data / "dataset.yaml").write_text("classes: [a, b]\nignore_index: 1\n")
    with pytest.raises(DataError, match=r"'ignore_index' must be an integer in 2\.\.255"):
        open_dataset(data)


def test_skip_bad_counts_what_was_skipped(data: Path) -> None:
    _first(data, "images").write_text("not an image")
    layout = open_dataset(data)
    scan = scan_split(layout.split("train"), layout.info, skip_bad=True)
    assert len(scan.samples) == 3 and len(scan.skipped) == 1
    assert "train_000.png" in scan.skipped[0]


def test_cached_arrays_equal_files(data: Path) -> None:
    layout = open_dataset(data)
    scan = scan_split(layout.split("train"), layout.info)
    cached = SegmentationDataset(scan.samples, layout.info, eval_transform(), scan.decoded)
    fresh = SegmentationDataset(scan.samples, layout.info, eval_transform())
    for (a, b), (c, d) in zip(cached, fresh, strict=True):
        assert a.dtype == torch.float32 and 0 <= a.min() and a.max() <= 1 and b.dtype == torch.int64
        assert torch.equal(a, c) and torch.equal(b, d)


def test_median_frequency_weights_by_hand(data: Path) -> None:
    layout = open_dataset(data)
    scan = scan_split(layout.split("train"), layout.info)
    scan.pixels = np.array([60, 30, 10, 0, 5])  # last: ignore label
    scan.presence_pixels = np.array([100, 100, 50, 0])
    # freq = [0.6, 0.3, 0.2]; median 0.3 -> [0.5, 1, 1.5]; the absent class gets 1.
    np.testing.assert_allclose(median_frequency_weights(scan), [0.5, 1.0, 1.5, 1.0])


def _pair(h: int = 30, w: int = 40) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    mask = torch.zeros(h, w, dtype=torch.uint8)
    mask[:, : w // 3] = 1
    mask[: h // 2, w // 2 :] = 2
    image = torch.stack([mask * 100, torch.arange(w).expand(h, w).to(torch.uint8), mask * 50])
    return tv_tensors.Image(image), tv_tensors.Mask(mask)


def test_flip_moves_image_and_mask_together() -> None:
    torch.manual_seed(0)
    transform = train_transform("flip", ignore_index=255)
    flipped = 0
    for _ in range(10):
        image, mask = transform(*_pair())
        assert torch.equal((image[0] * 255).round().long(), mask * 100)
        flipped += int(image[1, 0, 0] > image[1, 0, -1])
    assert 0 < flipped < 10


def test_random_scale_keeps_mask_ids_and_shape() -> None:
    torch.manual_seed(0)
    for _ in range(5):
        image, mask = RandomScale(0.37, 1.9)(*_pair())
        assert image.shape[-2:] == mask.shape[-2:]
        assert set(mask.unique().tolist()) <= {0, 1, 2}  # nearest: no blended ids


def test_full_augment_pads_masks_with_ignore_label() -> None:
    torch.manual_seed(0)
    transform = train_transform("full", ignore_index=11, crop_size=64, scale=(1.0, 1.0))
    image, mask = transform(*_pair(30, 40))
    assert image.shape == (3, 64, 64) and mask.shape == (64, 64) and mask.dtype == torch.int64
    assert (mask == 11).sum() == 64 * 64 - 30 * 40
    assert set(mask.unique().tolist()) <= {0, 1, 2, 11}


def _one_rare_pixel(h: int = 120, w: int = 160) -> tuple[tv_tensors.Image, tv_tensors.Mask]:
    image = tv_tensors.Image(torch.randint(0, 256, (3, h, w), dtype=torch.uint8))
    mask = torch.zeros(h, w, dtype=torch.uint8)
    mask[: h // 2] = 1
    mask[100, 150] = 7  # one pixel of a rare class, near a corner
    return image, tv_tensors.Mask(mask)


def test_rare_crops_find_a_rare_pixel_that_uniform_crops_mostly_miss() -> None:
    random.seed(0)
    torch.manual_seed(0)
    image, mask = _one_rare_pixel()
    hits = {}
    for p in (0.0, 1.0):
        crop = FocusCrop(32, fill_mask=11, classes=(7, 9), p=p)
        hits[p] = 0
        for _ in range(200):
            img, m = crop(image, mask)
            assert img.shape == (3, 32, 32) and m.shape == (32, 32)
            hits[p] += int((m == 7).any())
    assert hits[1.0] == 200  # centred on it give or take a quarter of the side: always inside
    assert hits[0.0] < 40  # a uniform 32x32 crop of 120x160 holds that pixel about 5% of times


def test_rare_crops_pad_with_ignore_and_keep_image_and_mask_aligned() -> None:
    random.seed(1)
    ids = torch.arange(20 * 24).reshape(20, 24) % 5
    ids[5, 5] = 9
    image = tv_tensors.Image((ids * 20).to(torch.uint8).expand(3, -1, -1).clone())
    for _ in range(20):
        img, m = FocusCrop(32, fill_mask=11, classes=(9,), p=1.0)(image, tv_tensors.Mask(ids))
        valid = m != 11
        assert int((~valid).sum()) == 32 * 32 - 20 * 24  # padded with the ignore label
        assert torch.equal(img[0][valid].long(), m[valid] * 20)  # same pixels in both


def test_rare_classes_are_those_below_the_median_class(data: Path) -> None:
    layout = open_dataset(data)
    scan = scan_split(layout.split("train"), layout.info)
    counts = scan.pixels[:-1]
    rare = rare_classes(scan)
    median = np.median(counts[counts > 0])
    assert rare and all(counts[k] < median for k in rare)
    assert all(counts[k] >= median or counts[k] == 0 for k in range(len(counts)) if k not in rare)


def test_strong_augment_changes_colours_more_and_never_the_mask() -> None:
    torch.manual_seed(0)
    random.seed(0)
    spreads = {}
    for augment in ("full", "strong"):
        transform = train_transform(augment, ignore_index=11, crop_size=30, scale=(1.0, 1.0))
        means = []
        for _ in range(60):
            image, mask = transform(*_pair(30, 40))
            assert image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
            assert set(mask.unique().tolist()) <= {0, 1, 2}  # labels never blurred or jittered
            means.append(image.mean().item())
        spreads[augment] = torch.tensor(means).std().item()
    assert spreads["strong"] > 1.3 * spreads["full"]


def test_random_gamma_darkens_or_brightens_images_only() -> None:
    from fcnseg.data.transforms import RandomGamma

    image, mask = _pair()
    dark, same_mask = RandomGamma(1.5, 1.5, p=1.0)(image, mask)
    assert torch.equal(same_mask, mask)
    expected = ((image.float() / 255) ** 1.5 * 255).round()
    assert (dark.float() - expected).abs().max() <= 1
    untouched, _ = RandomGamma(1.5, 1.5, p=0.0)(image, mask)
    assert torch.equal(untouched, image)


def test_verify_data_cli_ok_and_bad(data: Path, capsys) -> None:
    assert main(["verify-data", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "OK: 6 pairs usable" in out and "median-freq" in out and "void" in out
    _first(data, "masks", "val").write_bytes(b"\x89PNG broken")
    assert main(["verify-data", "--data", str(data)]) == 1
    err = capsys.readouterr().err
    assert "val_000.png: unreadable or truncated image" in err


def test_verify_data_cli_missing_folder(tmp_path: Path, capsys) -> None:
    assert main(["verify-data", "--data", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dataset folder not found" in err[0]


@pytest.mark.skipif(not DATASET1.is_dir(), reason=f"dataset1 not found at {DATASET1}")
def test_dataset1_audit_matches_its_readme(capsys) -> None:
    assert main(["verify-data", "--data", str(DATASET1)]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split()[1]: line.split() for line in out.splitlines() if line[:3].strip().isdigit()
    }
    # Shares of train and test pixels as printed in shared/datasets/README.md.
    assert rows["sky"][2:6:2] == ["16.85%", "9.18%"]
    assert rows["bicyclist"][2:6:2] == ["0.29%", "2.22%"]
    assert rows["void"][3:5] == ["3.95%", "1.70%"]
    assert "train       367" in out and "test        101" in out
