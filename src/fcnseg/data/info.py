"""What a dataset's labels mean: class names, colour palette, ignore label."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from fcnseg.errors import DataError

DESCRIPTION_FILES = ("dataset.yaml", "dataset.yml", "dataset.json")


@dataclass(frozen=True)
class DatasetInfo:
    """Class names, one RGB colour per class, and the label that is ignored (void).

    ``color_masks`` says masks are RGB pictures whose colours are the palette's (plus
    ``ignore_color`` for void) rather than 8-bit label ids.
    """

    name: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = 255
    color_masks: bool = False
    ignore_color: tuple[int, int, int] | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_dict(self) -> dict:
        """Plain types only, for checkpoints (loadable with ``weights_only=True``) and YAML."""
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        d["palette"] = [list(c) for c in self.palette]
        d["ignore_color"] = list(self.ignore_color) if self.ignore_color else None
        d["notes"] = list(self.notes)
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "dataset description") -> DatasetInfo:
        """Build from a dict (a YAML/JSON description or a checkpoint); DataError on bad fields."""
        if not isinstance(d, dict):
            raise DataError(f"{source}: expected a mapping with 'classes'")
        names = d.get("class_names", d.get("classes"))
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise DataError(f"{source}: 'classes' must be a non-empty list of class names")
        palette = d.get("palette") or default_palette(len(names))
        if len(palette) != len(names) or not all(_is_rgb(c) for c in palette):
            raise DataError(
                f"{source}: 'palette' must list one [r, g, b] (0-255) per class "
                f"({len(names)} classes, {len(palette)} colours)"
            )
        ignore = d.get("ignore_index", 255)
        if not isinstance(ignore, int) or not 0 <= ignore <= 255 or ignore < len(names):
            raise DataError(
                f"{source}: 'ignore_index' must be an integer in {len(names)}..255, got {ignore!r}"
            )
        ignore_color = d.get("ignore_color")
        if ignore_color is not None and not _is_rgb(ignore_color):
            raise DataError(f"{source}: 'ignore_color' must be [r, g, b]")
        return cls(
            name=str(d.get("name", "dataset")),
            class_names=tuple(names),
            palette=tuple(tuple(int(v) for v in c) for c in palette),
            ignore_index=ignore,
            color_masks=bool(d.get("color_masks", False)),
            ignore_color=tuple(ignore_color) if ignore_color else None,
            notes=tuple(d.get("notes", ())),
        )


def _is_rgb(c: object) -> bool:
    return (
        isinstance(c, list | tuple)
        and len(c) == 3
        and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
    )


def default_palette(n: int) -> list[list[int]]:
    """Distinct colours (the PASCAL VOC bit-interleaving scheme)."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i + 1
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append([r, g, b])
    return out


# dataset1 of image-segmentation-keras (CamVid as prepared for SegNet); colours as in SegNet.
DATASET1 = DatasetInfo(
    name="dataset1",
    class_names=(
        "sky",
        "building",
        "pole",
        "road",
        "sidewalk",
        "tree",
        "sign",
        "fence",
        "car",
        "pedestrian",
        "bicyclist",
    ),
    palette=(
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (0, 0, 192),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
    ),
    ignore_index=11,
)


def load_description(path: Path) -> DatasetInfo:
    """Read a ``dataset.yaml`` / ``dataset.json`` description file."""
    try:
        text = path.read_text()
        d = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: cannot read the dataset description ({exc})") from exc
    info = DatasetInfo.from_dict(d, str(path))
    if info.name == "dataset":
        info = DatasetInfo(**{**asdict(info), "name": path.parent.name})
    return info
