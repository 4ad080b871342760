"""``python -m fcnseg.zoo``: list the built-in models, or ship a trained checkpoint as one.

Example (from a source checkout; writes src/fcnseg/zoo/camvid_lite2.{pt,json}):

    python -m fcnseg.zoo ship runs/d1_best_finetune/checkpoint_best.pt --name camvid_lite2 \\
        --data ../shared/datasets/dataset1 --recipe configs/dataset1_best_finetune.yaml \\
        --tta-scales 0.75 1 1.25 1.5 --tta-flip
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fcnseg.errors import FcnsegError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fcnseg.zoo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="the shipped models with their dataset1 test metrics")
    listing.add_argument("--root", help="zoo folder (default: the package's, src/fcnseg/zoo)")
    p = sub.add_parser(
        "ship",
        help="convert a checkpoint into a built-in model (fp16) + manifest, replacing that name",
    )
    p.add_argument("checkpoint", help="a checkpoint written by fcnseg train")
    p.add_argument("--name", required=True, help="built-in name, e.g. camvid_lite2")
    p.add_argument("--data", required=True, help="dataset whose test split is evaluated")
    p.add_argument("--recipe", required=True, help="the recipe(s) that trained it")
    p.add_argument("--command", help="the training command (default: recorded in the checkpoint)")
    p.add_argument(
        "--tta-scales",
        type=float,
        nargs="+",
        metavar="S",
        help="also record metrics with test-time augmentation at these scales",
    )
    p.add_argument("--tta-flip", action="store_true", help="with --tta-scales: also mirror")
    p.add_argument("--device", default="auto", help="cpu | cuda | auto (default auto)")
    p.add_argument("--root", help="zoo folder (default: the package's, src/fcnseg/zoo)")
    p.add_argument(
        "--trained-on", metavar="TEXT", help="its training data in words, for the manifest"
    )
    p.add_argument(
        "--test-in-training",
        action="store_true",
        help="the test split was in its training data: its numbers there are recorded but "
        "not shown; --recipe-metrics are",
    )
    p.add_argument(
        "--recipe-metrics",
        nargs="+",
        default=[],
        metavar="JSON",
        help="with --test-in-training: evaluate --json file(s) of the recipe trained without "
        "the test split (single scale, then TTA)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from fcnseg import zoo

    try:
        if args.command == "list":
            print("\n".join(zoo.format_builtin_table(args.root)))
            return 0
        from fcnseg.zoo.ship import ship_model

        model = ship_model(
            args.checkpoint,
            args.name,
            data=args.data,
            recipe=args.recipe,
            command=args.command,
            tta_scales=args.tta_scales,
            tta_flip=args.tta_flip,
            device=args.device,
            root=args.root,
            trained_on=args.trained_on,
            test_in_training=args.test_in_training,
            recipe_metrics=args.recipe_metrics,
        )
    except FcnsegError as exc:
        print(f"python -m fcnseg.zoo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    man = model.manifest
    shown = zoo.shown_metrics(man)
    tta = shown["metrics_tta"]
    extra = f", {tta['mean_iu']:.4f} with TTA {tta['tta']}" if tta else ""
    whose = " (its recipe trained without the test split)" if man.get("test_in_training") else ""
    print(
        f"shipped {model.name}: {model.file} ({man['size_bytes'] / 1e6:.1f} MB, sha256 "
        f"{man['sha256'][:12]}...), mean IU {shown['metrics']['mean_iu']:.4f} on "
        f"{man['evaluated_on']['data']} test{extra}{whose}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
