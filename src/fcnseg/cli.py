"""The ``fcnseg`` command line: one sub-command per task, errors as one line and a non-zero exit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fcnseg import __version__
from fcnseg.errors import FcnsegError

DESCRIPTION = """\
Semantic segmentation with Fully Convolutional Networks (FCN-8s/16s/32s, Long et al. 2015)
by transfer learning from an ImageNet backbone.

Typical use:
  fcnseg verify-data --data DIR            audit a dataset before training
  fcnseg train --data DIR --out RUN         train (frozen backbone or fine-tuning)
  fcnseg evaluate --checkpoint CKPT --data DIR
  fcnseg predict --checkpoint CKPT --input IMG_OR_DIR --out DIR
  fcnseg demo                              the whole pipeline on built-in synthetic data
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="fcnseg", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"fcnseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from fcnseg.commands import register_commands

    register_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fcnseg`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FcnsegError as exc:
        print(f"fcnseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fcnseg {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
