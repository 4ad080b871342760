"""``fcnseg train``: parse the options, call :func:`fcnseg.train`."""

from __future__ import annotations

import argparse

from fcnseg.training import train
from fcnseg.training.config import add_arguments, given_flags, recipe_names

HELP = """\
Train an FCN by transfer learning. Options come from the defaults, then --config (a recipe name
or a YAML file), then the flags given here (flags win). The run folder receives config.yaml,
metrics.csv, checkpoint_last.pt (every epoch), checkpoint_best.pt (best validation mean IU), img/
(a picture per epoch of fixed validation images) and curves.png. Validation uses the dataset's
val split, or its test split where it has none (dataset1).

Transfer-learning modes (--freeze): features = the backbone's trunk frozen (for VGG16, fc6/fc7
and the upsampling part learn: the classic recipe); backbone = everything pretrained frozen (the
paper's FCN-32s-fixed); none = fine-tune everything. --unfreeze-at N fine-tunes everything from
epoch N. With a frozen part and no or flip-only augmentation, the frozen outputs are computed
once and cached (--feature-cache auto), which makes epochs many times faster.

A kill at any moment loses at most the epoch in progress: --resume RUN continues from the last
committed epoch and gives the same result as an uninterrupted run. A run folder is locked while
a process trains into it.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train an FCN (frozen backbone or fine-tuning), writing a run folder",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        metavar="RECIPE",
        help=f"a YAML file of options, or a shipped recipe: {', '.join(recipe_names())}",
    )
    p.add_argument(
        "--resume", metavar="RUN", help="continue the run in folder RUN from its last epoch"
    )
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    train(args.config, resume=args.resume, **given_flags(args))
    return 0
