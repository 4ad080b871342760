"""Phone-sized copies of a dataset1 split: enlarged, JPEG, stored rotated with an EXIF tag.

Phones save 12-megapixel JPEGs whose pixels lie sideways, with an EXIF orientation tag saying
how to turn them upright. These copies are made the same way from dataset1's 480x360 street
scenes (enlarged ``factor`` times, bicubic), with each mask enlarged alike (nearest) and stored
upright, so ``fcnseg evaluate`` can compare the native and the phone-sized copies.

Run as a script to make a copy of a whole split (for the README's measurement)::

    python tests/phone_photos.py /work/shared/datasets/dataset1 /tmp/dataset1_phone
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ORIENTATION = 0x0112
ROTATED_90_CW = 6  # EXIF: turn the stored pixels 90 degrees clockwise to see them upright


def phone_copy(image: Path, mask: Path, images_out: Path, masks_out: Path, factor: int) -> None:
    """One pair: ``{stem}.jpg`` (stored sideways, EXIF-tagged, quality 90) and ``{stem}.png``."""
    upright = Image.open(image).convert("RGB")
    w, h = upright.size
    big = upright.resize((w * factor, h * factor), Image.Resampling.BICUBIC)
    stored = big.transpose(Image.Transpose.ROTATE_90)  # exif_transpose turns it back (tag 6)
    exif = Image.Exif()
    exif[ORIENTATION] = ROTATED_90_CW
    stored.save(images_out / f"{image.stem}.jpg", quality=90, exif=exif.tobytes())
    labels = Image.open(mask)
    labels.resize((w * factor, h * factor), Image.Resampling.NEAREST).save(
        masks_out / f"{mask.stem}.png"
    )


def make_copies(
    dataset1: Path, out: Path, split: str = "test", factor: int = 5, names: list[str] | None = None
) -> Path:
    """A dataset1-layout folder ``out`` with the phone-sized copies of ``split`` (or of the
    images named in ``names``)."""
    images_in = dataset1 / f"images_prepped_{split}"
    masks_in = dataset1 / f"annotations_prepped_{split}"
    images_out = out / f"images_prepped_{split}"
    masks_out = out / f"annotations_prepped_{split}"
    images_out.mkdir(parents=True)
    masks_out.mkdir(parents=True)
    for image in sorted(images_in.iterdir()):
        if names is None or image.name in names:
            phone_copy(image, masks_in / image.name, images_out, masks_out, factor)
    return out


def native_copies(dataset1: Path, out: Path, names: list[str], split: str = "test") -> Path:
    """A dataset1-layout folder ``out`` with the native files named in ``names``."""
    for kind in ("images", "annotations"):
        folder = out / f"{kind}_prepped_{split}"
        folder.mkdir(parents=True)
        for name in names:
            (folder / name).write_bytes((dataset1 / f"{kind}_prepped_{split}" / name).read_bytes())
    return out


if __name__ == "__main__":
    make_copies(Path(sys.argv[1]), Path(sys.argv[2]))
