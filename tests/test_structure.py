"""The shape of the package: every module of src/fcnseg has a layer, and imports only its own
layer or lower ones (issue 23, "A house whose layers show")."""

from __future__ import annotations

import ast
from pathlib import Path

import fcnseg

SRC = Path(fcnseg.__file__).parent

# Low to high. A name stands for a top-level module or package; a dotted name (``training.loop``)
# places one part of a package apart from the rest (the longest match wins).
LAYERS: tuple[tuple[str, ...], ...] = (
    # 0. leaves: no fcnseg import above errors
    (
        "errors",
        "version",
        "files",
        "progress",
        "metrics",
        "engine",
        "inference.precision",
        "configs",
        "options",
    ),
    # 1. the two domains; they never import each other (FORBIDDEN below)
    ("data", "models"),
    # 2. records and pictures of models and data; what an image or a video is to the API;
    # the training run's parts
    ("checkpoint", "viz", "inference.inputs", "inference.video", "training"),
    # 3. running a model (batches, tiles, the working scale); exporting it; the built-in models'
    # catalogue (resolving a name is an API's job)
    ("inference.core", "inference.resize", "inference.export", "inference.export_cache", "zoo"),
    # 4. other runtimes of an exported model
    ("inference.backends", "inference.openvino_backend", "inference.quantize"),
    # 5. the inference options (their choices come from the runtimes) and the package's face
    ("inference.options", "inference.__init__"),
    # 6. the two workflows
    ("evaluation", "training.setup", "training.distill", "training.loop", "training.__init__"),
    # 7. what a user calls: the Python API (and the package root that re-exports it), the app,
    # shipping a model
    ("api", "__init__", "app", "zoo.ship"),
    # 8. the command line's commands (and the zoo's own little command line)
    ("commands", "zoo.__main__"),
    # 9. the entry points
    ("cli", "__main__"),
)

# Same layer, but neither may know the other.
FORBIDDEN = {("data", "models"), ("models", "data")}

# Known violations, each with the reason it is still there. Keep this list short and dated.
ALLOWED: set[tuple[str, str]] = set()  # none left: checkpoint no longer resolves the zoo's names


def _module_name(path: Path) -> str:
    """``training/loop.py`` -> ``training.loop``; ``data/__init__.py`` -> ``data.__init__``."""
    return ".".join(path.relative_to(SRC).with_suffix("").parts)


def _layer(name: str) -> int | None:
    """The layer of module ``name`` (as :func:`_module_name` spells it), by its longest match."""
    best: tuple[int, int] | None = None  # (length of the match, layer)
    for layer, members in enumerate(LAYERS):
        for member in members:
            if name == member or name.startswith(member + "."):
                if best is None or len(member) > best[0]:
                    best = (len(member), layer)
    return None if best is None else best[1]


def _resolve(dotted: str) -> str:
    """``fcnseg.training`` -> ``training.__init__``; ``fcnseg.data.io`` -> ``data.io``."""
    parts = dotted.split(".")[1:]
    path = SRC.joinpath(*parts)
    if path.is_dir() or not parts:
        return ".".join([*parts, "__init__"])
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every fcnseg module that ``path`` imports, at the top or inside a function."""
    package = _module_name(path).split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(_resolve(a.name) for a in node.names if a.name.split(".")[0] == "fcnseg")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the module's own package upwards
                base = ["fcnseg", *package[: len(package) - node.level + 1]]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "fcnseg":
                continue
            for alias in node.names:  # ``from fcnseg import zoo`` imports the module fcnseg.zoo
                sub = SRC.joinpath(*module.split(".")[1:], alias.name)
                is_module = sub.is_dir() or sub.with_suffix(".py").is_file()
                found.add(_resolve(f"{module}.{alias.name}" if is_module else module))
    return found


def _top(name: str) -> str:
    """The top-level module or package: ``data.io`` -> ``data``; ``__init__`` stays."""
    return name.split(".")[0]


def test_every_module_has_a_layer() -> None:
    missing = [_module_name(p) for p in SRC.rglob("*.py") if _layer(_module_name(p)) is None]
    assert not missing, f"modules without a layer (add them to LAYERS): {missing}"


def test_no_module_imports_a_module_above_it() -> None:
    """Every violation at once: ``module (layer) imports other (layer)``."""
    violations, used = [], set()
    for path in sorted(SRC.rglob("*.py")):
        module = _module_name(path)
        low = _layer(module)
        for other in sorted(_imports(path)):
            high = _layer(other)
            if low is None or high is None:
                continue  # test_every_module_has_a_layer says so
            pair = (_top(module), _top(other))
            if high > low or pair in FORBIDDEN:
                if pair in ALLOWED:
                    used.add(pair)
                    continue
                violations.append(f"{module} (layer {low}) imports {other} (layer {high})")
    assert not violations, "\n".join(["imports against the layering:", *violations])
    assert used == ALLOWED, f"allow-list entries no longer needed: {sorted(ALLOWED - used)}"


def test_the_layering_test_sees_violations() -> None:
    """The helpers find lazy, ``from fcnseg import x`` and relative imports."""
    assert _layer("training.loop") == 6 and _layer("training.config") == 2
    assert _layer("zoo.ship") == 7 and _layer("zoo") == 3 and _layer("zoo.__init__") == 3
    assert _resolve("fcnseg") == "__init__" and _resolve("fcnseg.data") == "data.__init__"
    assert "inference.video" in _imports(SRC / "inference" / "inputs.py")  # inside a function
    assert "training.setup" in _imports(SRC / "training" / "loop.py")
