"""Inference options of the commands (``predict``, ``evaluate``, ``app``): the flags generated
from :class:`fcnseg.inference.InferenceConfig`, and the checked options read back."""

from __future__ import annotations

import argparse
import dataclasses

from fcnseg.inference.options import InferenceConfig, add_inference_arguments, config_from_args

__all__ = ["add_checkpoint_argument", "add_inference_arguments", "inference_config"]


def add_checkpoint_argument(p: argparse.ArgumentParser) -> None:
    """``--checkpoint``, the model of ``predict``, ``evaluate`` and ``export``."""
    p.add_argument(
        "--checkpoint",
        required=True,
        metavar="CKPT_OR_NAME",
        help="a checkpoint written by fcnseg train, or a built-in model's name such as "
        "camvid_lite2 (fcnseg models lists them)",
    )


def inference_config(args: argparse.Namespace) -> InferenceConfig:
    """The checked inference options of a command line (declared defaults for those not given);
    written back into ``args`` too, so code that reads ``args.batch_size`` sees the value used."""
    config = config_from_args(args)
    for name, value in dataclasses.asdict(config).items():
        if hasattr(args, name):
            setattr(args, name, value)
    return config
