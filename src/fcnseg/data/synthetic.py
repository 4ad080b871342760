"""A small synthetic segmentation dataset, generated on the fly (the demo's embedded default)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image

CLASSES = ["background", "disk", "box", "bar"]
PALETTE = [[170, 170, 170], [220, 60, 60], [60, 200, 80], [70, 90, 230]]
IGNORE = 255
# Mean colour of each class in the images: distinct but noisy, so a model has to learn.
_TINTS = np.array([[110, 110, 100], [190, 80, 70], [80, 170, 90], [80, 100, 190]], dtype=np.float32)


def render(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One image ``(H, W, 3)`` uint8 and its mask ``(H, W)`` uint8 with a few shapes and a void patch."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    mask = np.zeros((height, width), dtype=np.uint8)
    for _ in range(rng.integers(2, 5)):
        cls = int(rng.integers(1, len(CLASSES)))
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(0.1, 0.25) * min(height, width)
        if cls == 1:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        elif cls == 2:
            inside = (abs(yy - cy) < r) & (abs(xx - cx) < r * 0.8)
        else:
            inside = abs((yy - cy) * 0.6 + (xx - cx) * 0.8) < r * 0.35
        mask[inside] = cls
    image = _TINTS[mask] + rng.normal(0, 18, (height, width, 3)).astype(np.float32)
    image += (yy / height * 30 - 15)[..., None]  # a brightness gradient, like daylight
    # A void patch: unlabelled noise the loss and metrics must ignore.
    vh, vw = max(1, height // 6), max(1, width // 6)
    y0, x0 = int(rng.integers(0, height - vh + 1)), int(rng.integers(0, width - vw + 1))
    image[y0 : y0 + vh, x0 : x0 + vw] = rng.uniform(0, 255, (vh, vw, 3))
    mask[y0 : y0 + vh, x0 : x0 + vw] = IGNORE
    return np.clip(image, 0, 255).astype(np.uint8), mask


def make_synthetic_dataset(
    root: str | Path,
    *,
    counts: dict[str, int] | None = None,
    size: tuple[int, int] = (96, 128),
    seed: int = 0,
) -> Path:
    """Write a generic-layout dataset (``{split}/images``, ``{split}/masks``, ``dataset.yaml``).

    Args:
        root: folder to create.
        counts: images per split (default 48 train, 16 val, 16 test).
        size: ``(H, W)`` of every image.
        seed: random seed; the same seed writes the same files.
    """
    root = Path(root)
    counts = counts or {"train": 48, "val": 16, "test": 16}
    rng = np.random.default_rng(seed)
    for split, n in counts.items():
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        for i in range(n):
            image, mask = render(rng, *size)
            Image.fromarray(image).save(root / split / "images" / f"{split}_{i:03d}.png")
            Image.fromarray(mask).save(root / split / "masks" / f"{split}_{i:03d}.png")
    description = {
        "name": "synthetic",
        "classes": CLASSES,
        "palette": PALETTE,
        "ignore_index": IGNORE,
    }
    (root / "dataset.yaml").write_text(yaml.safe_dump(description, sort_keys=False))
    return root
