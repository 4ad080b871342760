"""Built-in models shipped inside the package: usable offline by name wherever a checkpoint is.

Each built-in model is two files in this folder: ``NAME.pt``, an fcnseg checkpoint whose
parameters are stored in fp16 (loading upcasts them to fp32), and ``NAME.json``, its manifest:
the recipe and command that trained it, the git commit, its dataset1 test metrics, the file's
sha256 and size. ``python -m fcnseg.zoo ship`` (see :mod:`fcnseg.zoo.ship`) writes both.

Example:
    >>> from fcnseg import zoo
    >>> [m.name for m in zoo.builtin_models()]          # doctest: +SKIP
    ['camvid_lite2']
    >>> zoo.resolve("camvid_lite2")                     # the checked file  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcnseg.errors import CheckpointError
from fcnseg.files import file_digest

ZOO_DIR = Path(__file__).resolve().parent
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class BuiltinModel:
    """A shipped model: its name, its checkpoint file and its manifest (a dict from JSON)."""

    name: str
    file: Path
    manifest: dict[str, Any]

    @property
    def mean_iu(self) -> float | None:
        """Mean IU on dataset1 test as recorded when it was shipped (single scale); for a model
        trained on the test split too, its recipe's, trained without it."""
        value = shown_metrics(self.manifest)["metrics"].get("mean_iu")
        return float(value) if value is not None else None


def shown_metrics(manifest: dict[str, Any]) -> dict[str, Any]:
    """``{"metrics", "metrics_tta"}`` to show for a model: its own re-evaluation on the test
    split, or, when that split was in its training data (``test_in_training``), the numbers of
    its recipe trained without it (``recipe_metrics``)."""
    if manifest.get("test_in_training"):
        recipe = manifest.get("recipe_metrics") or {}
        return {"metrics": recipe.get("metrics") or {}, "metrics_tta": recipe.get("metrics_tta")}
    return {"metrics": manifest.get("metrics") or {}, "metrics_tta": manifest.get("metrics_tta")}


def _root(root: str | Path | None) -> Path:
    return ZOO_DIR if root is None else Path(root)


def builtin_models(root: str | Path | None = None) -> list[BuiltinModel]:
    """Every shipped model (a ``NAME.json`` manifest beside its ``NAME.pt``), sorted by name."""
    found = []
    for manifest_path in sorted(_root(root).glob("*.json")):
        name = manifest_path.stem
        if not NAME_PATTERN.match(name):
            continue
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{manifest_path}: unreadable built-in model manifest") from exc
        found.append(BuiltinModel(name, manifest_path.with_suffix(".pt"), manifest))
    return found


def find(name: str, root: str | Path | None = None) -> BuiltinModel | None:
    """The built-in model called ``name``, or None."""
    return next((m for m in builtin_models(root) if m.name == name), None)


def builtin_for_file(path: str | Path) -> BuiltinModel | None:
    """The built-in model whose checkpoint file ``path`` is, or None."""
    path = Path(path).resolve()
    if path.parent != ZOO_DIR:
        return None
    return find(path.stem)


def best(root: str | Path | None = None) -> BuiltinModel | None:
    """The shipped model with the highest recorded mean IU, or None when none is shipped."""
    models = [m for m in builtin_models(root) if m.mean_iu is not None]
    return max(models, key=lambda m: m.mean_iu, default=None)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (:func:`fcnseg.files.file_digest`)."""
    return file_digest(path, "sha256")


def verify(model: BuiltinModel) -> Path:
    """The model's file, after checking it exists and matches its manifest's sha256."""
    if not model.file.is_file():
        raise CheckpointError(f"{model.name}: built-in model file {model.file} is missing")
    digest = sha256_file(model.file)
    expected = model.manifest.get("sha256")
    if digest != expected:
        raise CheckpointError(
            f"{model.name}: built-in model file {model.file} is damaged "
            f"(sha256 {digest[:12]}... != manifest {str(expected)[:12]}...); reinstall fcnseg"
        )
    return model.file


def resolve(path_or_name: str | Path, root: str | Path | None = None) -> Path:
    """An existing path as given; else the checked file of the built-in model of that name;
    else the path as given (so the caller reports it as not found)."""
    path = Path(path_or_name)
    if path.exists() or not NAME_PATTERN.match(str(path_or_name)):
        return path
    model = find(str(path_or_name), root)
    return verify(model) if model is not None else path


def load_checkpoint(path_or_name: str | Path) -> dict[str, Any]:
    """:func:`fcnseg.checkpoint.load_checkpoint` of a checkpoint file or of a built-in model
    named like ``camvid_lite2`` (its sha256-checked file, with what its manifest records and the
    file does not: ``working_size``, so shipped files stay bit-identical when the manifest
    learns more). A missing name close to a built-in one gets "did you mean ...?"."""
    from fcnseg import checkpoint

    if not isinstance(path_or_name, str | os.PathLike) or not str(path_or_name).strip():
        return checkpoint.load_checkpoint(path_or_name)  # its one-line refusal
    path = resolve(path_or_name)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found{_did_you_mean(path_or_name)}")
    ckpt = checkpoint.load_checkpoint(path)
    model = builtin_for_file(path)
    if model is not None and "working_size" not in ckpt and "working_size" in model.manifest:
        ckpt["working_size"] = model.manifest["working_size"]
    return ckpt


def _did_you_mean(given: str | Path) -> str:
    """``; did you mean camvid_lite2?`` for a name close to a built-in model's, else ``""``."""
    import difflib

    text = str(given)
    if "/" in text or "\\" in text or Path(text).suffix == ".pt":
        text = Path(text).stem  # camvid_lite.pt, ./camvid-lite2: the name part
    names = [m.name for m in builtin_models()]
    close = difflib.get_close_matches(text.lower().replace("-", "_"), names, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}? (fcnseg models lists the built-in models)" if close else ""


def builtin_rows(root: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per shipped model for ``fcnseg models``: name, architecture, size, metrics.

    Keys: ``name``, ``arch``, ``size_mb``, ``mean_iu``, ``pixel_acc``, ``mean_iu_tta``
    (None when no TTA evaluation was recorded), ``recipe``, ``classes`` (their number) and
    ``data`` (the dataset whose test split gave the metrics).
    """
    rows = []
    for m in builtin_models(root):
        man = m.manifest
        shown = shown_metrics(man)
        metrics, tta = shown["metrics"], shown["metrics_tta"] or {}
        rows.append(
            {
                "name": m.name,
                "arch": man.get("arch", {}).get("name"),
                "size_mb": man.get("size_bytes", 0) / 1e6,
                "mean_iu": metrics.get("mean_iu"),
                "pixel_acc": metrics.get("pixel_acc"),
                "mean_iu_tta": tta.get("mean_iu"),
                "recipe": man.get("recipe"),
                "classes": len(man.get("classes", [])),
                "data": man.get("evaluated_on", {}).get("data"),
                "test_in_training": bool(man.get("test_in_training")),
            }
        )
    return rows


def format_builtin_table(root: str | Path | None = None) -> list[str]:
    """``fcnseg models`` lines for the shipped models (a header, then one line each)."""
    rows = builtin_rows(root)
    if not rows:
        return ["built-in models: none shipped"]

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    lines = [
        "built-in models (offline; the name works as --checkpoint; metrics on the test split):",
        f"  {'name':<16} {'architecture':<28} {'size':>8} {'tested on':<10} {'mean IU':>8} "
        f"{'+TTA':>6} {'pixel acc':>9}  recipe",
    ]
    for r in rows:
        data = (r["data"] or "-") + ("*" if r["test_in_training"] else "")
        lines.append(
            f"  {r['name']:<16} {r['arch'] or '-':<28} {r['size_mb']:>6.1f}MB "
            f"{data:<10} {num(r['mean_iu']):>8} {num(r['mean_iu_tta']):>6} "
            f"{num(r['pixel_acc']):>9}  {r['recipe'] or '-'}"
        )
    if any(r["test_in_training"] for r in rows):
        lines.append(
            "  * trained on that test split too: the numbers are its recipe's, trained without it"
        )
    return lines
