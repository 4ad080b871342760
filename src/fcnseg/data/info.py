"""What a dataset's labels mean: class names, colour palette, ignore label."""

from __future__ import annotations

import functools
import json
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from fcnseg.errors import DataError, shown

DESCRIPTION_FILES = ("dataset.yaml", "dataset.yml", "dataset.json")
# Masks hold 8-bit labels and void needs one of them: at most 255 classes (labels 0..254).
MAX_CLASSES = 255
# Control characters (newline, escape...) and the Unicode line and paragraph separators.
_LINE_BREAKING = ("Cc", "Zl", "Zp")


@dataclass(frozen=True)
class DatasetInfo:
    """Class names, one RGB colour per class, and the label that is ignored (void).

    ``color_masks`` says masks are RGB pictures whose colours are the palette's (plus
    ``ignore_color`` for void) rather than 8-bit label ids. ``label_map`` translates the values
    stored in masks into class ids (or ``ignore_index``), as ``(value, id)`` pairs; a value it
    does not list is an error. Cityscapes' labelIds and ADE20K's 1-based ids need one.
    """

    name: str
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int = 255
    color_masks: bool = False
    ignore_color: tuple[int, int, int] | None = None
    notes: tuple[str, ...] = field(default=())
    label_map: tuple[tuple[int, int], ...] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def label_table(self) -> np.ndarray | None:
        """``label_map`` as a 256-entry lookup ``(256,)`` int16, -1 where a value is not listed."""
        if self.label_map is None:
            return None
        table = np.full(256, -1, dtype=np.int16)
        for value, target in self.label_map:
            table[value] = target
        return table

    def to_dict(self) -> dict:
        """Plain types only, for checkpoints (loadable with ``weights_only=True``) and YAML."""
        d = asdict(self)
        d["class_names"] = list(self.class_names)
        d["palette"] = [list(c) for c in self.palette]
        d["ignore_color"] = list(self.ignore_color) if self.ignore_color else None
        d["notes"] = list(self.notes)
        if self.label_map is None:
            del d["label_map"]  # descriptions without one are stored exactly as before
        else:
            d["label_map"] = [list(pair) for pair in self.label_map]
        return d

    @classmethod
    def from_dict(cls, d: object, source: str = "dataset description") -> DatasetInfo:
        """Build from a dict (a YAML/JSON description or a checkpoint); DataError on bad fields.

        Strict: unknown keys, wrong types (``color_masks: "false"`` is not a boolean), duplicate
        class names and ambiguous colour-mask palettes are refused with one line naming
        ``source``.
        """
        if not isinstance(d, dict):
            raise DataError(f"{source}: expected a mapping with 'classes'")
        unknown = [str(k) for k in d if k not in KNOWN_KEYS]
        if unknown:
            raise DataError(
                f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(KNOWN_KEYS)}"
            )
        if "classes" in d and "class_names" in d:
            raise DataError(f"{source}: give the class names once ('classes' or 'class_names')")
        names = _class_names(d.get("class_names", d.get("classes")), source)
        color_masks = d.get("color_masks", False)
        if not isinstance(color_masks, bool):
            raise DataError(
                f"{source}: 'color_masks' must be true or false, got {shown(color_masks)}"
            )
        palette = _palette(d.get("palette"), len(names), color_masks, source)
        ignore = d.get("ignore_index", 255)
        if not _is_int(ignore) or not len(names) <= ignore <= 255:
            raise DataError(
                f"{source}: 'ignore_index' must be an integer in {len(names)}..255, got {shown(ignore)}"
            )
        ignore_color = d.get("ignore_color")
        if ignore_color is not None and not _is_rgb(ignore_color):
            raise DataError(
                f"{source}: 'ignore_color' must be [r, g, b] (3 integers 0-255), "
                f"got {shown(ignore_color)}"
            )
        if color_masks and ignore_color is not None and tuple(ignore_color) in palette:
            clash = names[palette.index(tuple(ignore_color))]
            raise DataError(
                f"{source}: 'ignore_color' {list(ignore_color)} is also the colour of class "
                f"{clash!r}; colour masks would be ambiguous"
            )
        name = d.get("name", "dataset")
        if not isinstance(name, str) or not name:
            raise DataError(f"{source}: 'name' must be a non-empty string, got {shown(name)}")
        notes = d.get("notes", [])
        if not isinstance(notes, list | tuple) or not all(isinstance(n, str) for n in notes):
            raise DataError(f"{source}: 'notes' must be a list of strings, got {shown(notes)}")
        label_map = _label_map(d.get("label_map"), len(names), ignore, source)
        if label_map is not None and color_masks:
            raise DataError(f"{source}: 'label_map' is for id masks, not with 'color_masks: true'")
        return cls(
            name=name,
            class_names=tuple(names),
            palette=palette,
            ignore_index=ignore,
            color_masks=color_masks,
            ignore_color=tuple(ignore_color) if ignore_color is not None else None,
            notes=tuple(notes),
            label_map=label_map,
        )


# Keys of a description (``class_names`` is what checkpoints store; ``classes`` what people write).
KNOWN_KEYS = (
    "name",
    "classes",
    "class_names",
    "palette",
    "ignore_index",
    "color_masks",
    "ignore_color",
    "notes",
    "label_map",
)


def _is_int(v: object) -> bool:
    # YAML's true/false are Python bools, which are ints: refuse them where a number is meant.
    return isinstance(v, int) and not isinstance(v, bool)


def _is_rgb(c: object) -> bool:
    return (
        isinstance(c, list | tuple) and len(c) == 3 and all(_is_int(v) and 0 <= v <= 255 for v in c)
    )


def _class_names(names: object, source: str) -> list[str]:
    if not isinstance(names, list | tuple) or not names:
        raise DataError(f"{source}: 'classes' must be a non-empty list of class names")
    if len(names) > MAX_CLASSES:
        raise DataError(
            f"{source}: {len(names)} classes; at most {MAX_CLASSES} are supported (masks hold "
            f"8-bit labels and one label is left for void)"
        )
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise DataError(f"{source}: class names must be non-empty strings, got {bad[0]!r}")
    # A newline or escape code in a name would forge lines in reports and logs.
    bad = [n for n in names if any(unicodedata.category(ch) in _LINE_BREAKING for ch in n)]
    if bad:
        raise DataError(f"{source}: class names must not hold control characters, got {bad[0]!r}")
    seen: set[str] = set()
    dups = [n for n in names if n in seen or seen.add(n)]
    if dups:
        # Per-class IoUs are keyed by name: a repeated name would silently drop one of them.
        raise DataError(f"{source}: duplicate class name(s): {', '.join(map(repr, dups))}")
    return list(names)


def _label_map(
    given: object, n: int, ignore: int, source: str
) -> tuple[tuple[int, int], ...] | None:
    """``{value: id}`` (YAML) or ``[[value, id], ...]`` (checkpoints) as sorted pairs, checked."""
    if given is None:
        return None
    pairs = list(given.items()) if isinstance(given, dict) else given
    ok = isinstance(pairs, list | tuple) and all(
        isinstance(p, list | tuple) and len(p) == 2 and all(map(_is_int, p)) for p in pairs
    )
    if not ok or not pairs:
        raise DataError(f"{source}: 'label_map' must map mask values to class ids, e.g. {{7: 0}}")
    for value, target in pairs:
        if not 0 <= value <= 255 or not (0 <= target < n or target == ignore):
            raise DataError(
                f"{source}: 'label_map' entry {value}: {target} must map a value 0..255 to a "
                f"class id 0..{n - 1} or the ignore label {ignore}"
            )
    values = [v for v, _ in pairs]
    if len(set(values)) < len(values):
        raise DataError(f"{source}: 'label_map' lists a mask value twice")
    return tuple(sorted((int(v), int(t)) for v, t in pairs))


def _palette(
    palette: object, n: int, color_masks: bool, source: str
) -> tuple[tuple[int, int, int], ...]:
    if palette is None:
        # Colour masks without a palette keep the PASCAL VOC colours they were read with before.
        palette = voc_palette(n) if color_masks else default_palette(n)
    if not isinstance(palette, list | tuple) or len(palette) != n or not all(map(_is_rgb, palette)):
        got = len(palette) if isinstance(palette, list | tuple) else repr(palette)
        raise DataError(
            f"{source}: 'palette' must list one [r, g, b] (3 integers 0-255) per class "
            f"({n} classes, got {got})"
        )
    out = tuple((int(r), int(g), int(b)) for r, g, b in palette)
    if color_masks and len(set(out)) < n:
        dup = next(c for c in out if out.count(c) > 1)
        raise DataError(
            f"{source}: colour {list(dup)} is in the palette twice; with colour masks "
            f"each class needs its own colour"
        )
    return out


def voc_palette(n: int) -> list[list[int]]:
    """PASCAL VOC's bit-interleaved colours for ids 1..n (fcnseg's default palette up to 0.x).

    Still the palette of colour masks described without one, so that those keep reading.
    """
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


def default_palette(n: int) -> list[list[int]]:
    """``n`` colours that are far apart to the eye, for datasets described without a palette.

    Glasbey et al. (2007)'s greedy choice: each colour is the candidate (a 16-level RGB grid,
    lightness 30..92) farthest in CIELAB from black (void), white (the page) and the colours
    chosen before it. Deterministic; the first ones are saturated blue, green, red, pink, amber.
    VOC's scheme, used before, gave near-identical colours (two greens for classes 1 and 9).
    """
    if not 0 <= n <= 256:
        raise ValueError(f"palette size must be in 0..256, got {n}")
    return [list(c) for c in _glasbey(256)[:n]]


@functools.lru_cache(maxsize=1)
def _glasbey(n: int) -> tuple[tuple[int, int, int], ...]:
    levels = np.linspace(0, 255, 16).round()
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    lab = srgb_to_lab(grid)
    keep = (lab[:, 0] > 30) & (lab[:, 0] < 92)
    grid, lab = grid[keep], lab[keep]
    nearest = np.full(len(grid), np.inf)
    for avoid in ((0, 0, 0), (255, 255, 255)):
        nearest = np.minimum(nearest, np.linalg.norm(lab - srgb_to_lab(np.array(avoid)), axis=-1))
    chosen = []
    for _ in range(n):
        k = int(nearest.argmax())
        chosen.append(tuple(int(v) for v in grid[k]))
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[k], axis=-1))
    return tuple(chosen)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB ``(..., 3)`` in 0..255 -> CIELAB ``(..., 3)`` (D65); distances are the ΔE*76."""
    c = np.asarray(rgb, dtype=np.float64) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ _SRGB_TO_XYZ.T / _D65
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1
    )


_SRGB_TO_XYZ = np.array(
    [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]
)
_D65 = np.array([0.95047, 1.0, 1.08883])


# dataset1 of image-segmentation-keras (CamVid as prepared for SegNet), in SegNet's colours where
# they can be told apart: building red-brown, road purple, sidewalk blue, tree olive, sign pink,
# bicyclist blue. SegNet's car (64, 0, 128), fence (64, 64, 128) and pedestrian (64, 64, 0) were
# dark and close to road, sidewalk and tree (the closest pair 23.5 ΔE*76 apart; 6 under simulated
# deuteranopia). Here sky is a light grey-blue, pole a light yellow, fence green, car magenta and
# pedestrian orange: every two classes and void's black are >= 38 ΔE*76 apart, and >= 17 under
# simulated deuteranopia and protanopia (Machado et al. 2009), chosen by search over candidates.
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
        (180, 200, 230),
        (128, 0, 0),
        (255, 240, 150),
        (128, 64, 128),
        (0, 0, 192),
        (128, 128, 0),
        (192, 128, 128),
        (100, 200, 100),
        (255, 0, 255),
        (255, 160, 0),
        (0, 128, 192),
    ),
    ignore_index=11,
)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()  # a set, not a list: 40,000 keys were 20 s of quadratic search
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class says what is wrong with it
                continue
            if repeated:
                mark = key_node.start_mark
                raise yaml.MarkedYAMLError(problem=f"key {key!r} given twice", problem_mark=mark)
        return super().construct_mapping(node, deep=deep)


def _one_line(exc: Exception) -> str:
    """A parser's message on one line: YAML's are several lines with a code excerpt."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


class _NoAliasLoader(_UniqueKeyLoader):
    """Also refusing aliases (``*name``): a few hundred bytes of nested ones stand for billions of
    items, which any message or copy of the value would expand (minutes, gigabytes). fcnseg's YAML
    files (descriptions, recipes, config.yaml) never need them."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.MarkedYAMLError(
                problem="YAML aliases (*name) are not allowed here; write the value out",
                problem_mark=mark,
            )
        return super().compose_node(parent, index)


def load_yaml(text: str) -> object:
    """Parse YAML safely, in work bounded by the text's size: no code, no key given twice, no
    aliases. Raises ``yaml.YAMLError`` (a ``MarkedYAMLError`` names the line)."""
    return yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader)


def read_description(path: Path) -> object:
    """The parsed content of a ``dataset.yaml`` / ``dataset.json`` (unchecked); DataError names
    the file when it cannot be read or parsed."""
    try:
        text = path.read_text()
        if path.suffix == ".json":
            return json.loads(text)
        return load_yaml(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: cannot read the dataset description ({_one_line(exc)})") from exc


def load_description(path: Path) -> DatasetInfo:
    """Read a ``dataset.yaml`` / ``dataset.json`` description file; DataError names the file."""
    info = DatasetInfo.from_dict(read_description(path), str(path))
    if info.name == "dataset":
        info = DatasetInfo(**{**asdict(info), "name": path.parent.name})
    return info
