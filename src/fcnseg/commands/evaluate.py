"""``fcnseg evaluate``: the paper's metrics on a split, at the images' original resolution."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from fcnseg.commands.tta import add_checkpoint_argument, add_inference_arguments, inference_config
from fcnseg.errors import FcnsegError
from fcnseg.files import check_output_file, check_outside_data, check_writable_dir


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="pixel accuracy, mean accuracy, mean IU, frequency-weighted IU and per-class IoU",
        description="Evaluate a checkpoint on a dataset split, labels at the images' original "
        "resolution (each image runs at the model's working scale, see --resize; ignore label "
        "excluded; classes absent from both truth and prediction left out of the "
        "means). Prints a table and writes confusion_matrix.png, per_class_iou.png and "
        "worst_images.png to --out. Training validates each epoch with the same function.",
    )
    add_checkpoint_argument(p)
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="test", help="split to evaluate (default test)")
    p.add_argument("--json", metavar="FILE", help="also write the metrics as JSON")
    p.add_argument(
        "--out", help="folder for the pictures (default: eval_SPLIT beside the checkpoint)"
    )
    p.add_argument(
        "--worst", type=int, default=4, help="images in the worst-images panel (default 4)"
    )
    add_inference_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fcnseg.evaluation import (
        REPORT_FILES,
        evaluate_checkpoint,
        format_table,
        save_json,
        save_report,
    )

    config = inference_config(args)  # every option and output path is checked before any work
    if args.worst < 0:
        raise FcnsegError(f"--worst must be >= 0, got {args.worst}")
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / f"eval_{args.split}"
    check_writable_dir(out, "pictures folder (--out)")
    check_outside_data(out, args.data, "pictures folder (--out)")
    checkpoint = [("the checkpoint (--checkpoint)", args.checkpoint)]
    for name in REPORT_FILES:  # replaces only what an earlier evaluate wrote there
        check_output_file(out / name, "picture", inputs=checkpoint)
    if args.json:
        check_output_file(args.json, "--json file", inputs=checkpoint)
        if os.path.realpath(args.json) in {os.path.realpath(out / n) for n in REPORT_FILES}:
            raise FcnsegError(f"{args.json}: the --json file would replace a picture of --out")
    result = evaluate_checkpoint(
        args.checkpoint, args.data, args.split, worst=args.worst, **dataclasses.asdict(config)
    )
    metrics = result.metrics
    extra = "" if metrics["tta"] == {"scales": [1.0], "flip": False} else f", TTA {metrics['tta']}"
    print(f"{args.checkpoint} on {args.data} [{args.split}], {metrics['num_images']} images{extra}")
    print(format_table(metrics))
    save_report(result, out, worst=args.worst)
    if args.json:
        save_json(result, args.json)
    print(f"pictures: {out}")
    return 0
