"""The ``fcnseg`` command line: one sub-command per task, errors as one line and exit code 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from fcnseg.errors import FcnsegError
from fcnseg.version import __version__

DESCRIPTION = """\
Semantic segmentation with Fully Convolutional Networks (FCN-8s/16s/32s, Long et al. 2015)
by transfer learning from an ImageNet backbone.

Typical use:
  fcnseg demo                              the whole pipeline on built-in synthetic data
  fcnseg download dataset1 --to DIR        fetch the sample dataset (resumable, checked)
  fcnseg verify-data --data DIR            audit a dataset before training
  fcnseg train --data DIR --out RUN         train (frozen backbone or fine-tuning)
  fcnseg evaluate --checkpoint CKPT --data DIR
  fcnseg predict --checkpoint CKPT --input IMG_OR_DIR --out DIR

Bad input ends with one line "fcnseg COMMAND: error: ..." and exit code 2.
"""
MAX_MESSAGE = 600  # characters of an error message shown on its one line


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (plus exit 2) rather than the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command."""
    parser = Parser(
        prog="fcnseg", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"fcnseg {__version__}")
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=Parser
    )

    from fcnseg.commands import register_commands

    register_commands(sub)
    return parser


def one_line(message: str) -> str:
    """A message folded onto one line and cut to a readable length."""
    text = " ".join(str(message).split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _close_progress_bars() -> None:
    """So that the error starts on its own line, not glued to a half-drawn progress bar."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.leave = False
        bar.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fcnseg`` console script."""
    try:  # building the parser imports torch: seconds in which Ctrl-C is likely
        parser = build_parser()
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        return interrupted("fcnseg")
    if empty := empty_option(args):
        print(f"fcnseg {args.command}: error: {empty}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except FcnsegError as exc:
        message = str(exc)
    except BrokenPipeError:  # `fcnseg models | head`: the reader left; leave quietly as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:  # a disk, permission or file problem not foreseen elsewhere
        where = f"{exc.filename}: " if exc.filename else ""
        message = f"{where}{exc.strerror or exc}"
    except MemoryError:
        message = OUT_OF_MEMORY
    except RuntimeError as exc:  # PyTorch reports a failed allocation as a RuntimeError
        if not is_out_of_memory(exc):
            raise
        message = OUT_OF_MEMORY
    except KeyboardInterrupt:
        _close_progress_bars()
        return interrupted(f"fcnseg {args.command}")
    _close_progress_bars()
    print(f"fcnseg {args.command}: error: {one_line(message)}", file=sys.stderr)
    return 2


def empty_option(args: argparse.Namespace) -> str | None:
    """The complaint about an option given an empty value (``--out ''``), else None.

    An empty path means the current folder to the operating system: ``--out ''`` would write
    there, ``--input ''`` read it. No option of fcnseg takes an empty value.
    """
    for dest, value in vars(args).items():
        values = value if isinstance(value, list | tuple) else [value]
        if any(isinstance(v, str) and not v.strip() for v in values):
            name = "--" + dest.replace("_", "-")
            return f"{name} is empty; give a value (for the current folder: '.')"
    return None


OUT_OF_MEMORY = "out of memory (try a smaller --batch-size, --tile or image)"
# What PyTorch's allocators say when an allocation fails (CPU on Linux/macOS, Windows; CUDA, MPS).
_OOM_WORDS = ("can't allocate memory", "not enough memory", "out of memory")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for PyTorch's errors of a failed allocation (``torch.OutOfMemoryError`` and the
    CPU allocator's ``RuntimeError``), which are not ``MemoryError``."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and any(w in text for w in _OOM_WORDS)
    )


def interrupted(prog: str) -> int:
    """Ctrl-C: one line and exit code 130 (128 + SIGINT), as shells expect."""
    print(f"{prog}: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
    sys.exit(main())
