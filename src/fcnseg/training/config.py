"""Every training option, declared once: type, default, help, choices and checks.

:class:`TrainConfig` is the single declaration. The ``fcnseg train`` flags are generated from it
(:func:`add_arguments`), YAML recipes are read into it and written from it (:func:`read_yaml`,
:meth:`TrainConfig.to_yaml`), and :func:`resolve` merges defaults < recipe < flags and checks the
result. An option declared with ``yaml_only=True`` has no flag (a test fails for any other
option without one).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from fcnseg.data.info import load_yaml
from fcnseg.data.transforms import AUGMENTS
from fcnseg.errors import FcnsegError
from fcnseg.models import check_model_options, list_models, model_options
from fcnseg.models.fcn import FREEZE_MODES
from fcnseg.options import add_field_argument, check_value, flag, help_text, opt
from fcnseg.training.losses import LOSSES, parse_class_weights
from fcnseg.training.schedule import SCHEDULES

__all__ = ["ConfigError", "TrainConfig", "add_arguments", "flag", "given_flags", "opt", "resolve"]

OPTIMIZERS = ("sgd", "adamw")
PRECISIONS = ("32", "bf16-mixed", "16-mixed", "32-true")
RECIPE_PACKAGE = "fcnseg.configs"


class ConfigError(FcnsegError):
    """A bad option value, an unknown option or an unreadable recipe."""


@dataclass(frozen=True)
class TrainConfig:
    """The options of one training run (``fcnseg train``; ``fcnseg.train``)."""

    data: str | None = opt(None, "dataset folder (dataset1 layout or train/val/test folders)")
    out: str | None = opt(None, "run folder to create (must not exist, or be empty)")
    model: str = opt("fcn8s_vgg16", "architecture (fcnseg models lists them)", metavar="NAME")
    weights_backbone: str = opt(
        "imagenet",
        "backbone weights: imagenet | none | PATH to a state-dict file",
        metavar="W",
    )
    freeze: str = opt(
        "features",
        "what stays frozen: features = the backbone trunk (for VGG16 fc6/fc7 still learn), "
        "backbone = everything pretrained, none = fine-tune all",
        choices=FREEZE_MODES,
    )
    unfreeze_at: int | None = opt(
        None, "fine-tune everything from this epoch on", low=1, metavar="EPOCH"
    )
    init_from: str | None = opt(
        None,
        "initialise matching layers from a checkpoint (FCN-32s -> 16s -> 8s, or a frozen stage)",
        metavar="CKPT",
    )
    epochs: int = opt(50, "training epochs", low=1)
    batch_size: int = opt(8, "images per step and device", low=1)
    optimizer: str = opt("sgd", "optimizer", choices=OPTIMIZERS)
    lr: float = opt(0.01, "learning rate", low=0)
    momentum: float = opt(0.9, "SGD momentum", low=0, high=1)
    weight_decay: float = opt(5e-4, "weight decay", low=0)
    backbone_lr_mult: float = opt(
        1.0, "learning-rate multiplier of the pretrained layers that are not frozen", low=0
    )
    lr_schedule: str = opt("poly", "poly = (1 - step/steps)^0.9, reaching 0; or constant",
                           choices=SCHEDULES)  # fmt: skip
    loss: str = opt(
        "ce",
        "loss; seed = the classic one-vs-all log loss; ohem = CE over the hardest pixels; "
        "lovasz = the Lovasz-softmax surrogate of IoU",
        choices=LOSSES,
    )
    class_weights: str = opt("none", "none | median-freq | w1,w2,... (one per class)", metavar="W")
    augment: str = opt(
        "flip",
        "none | flip | full = random scale, crop, flip and colour jitter | strong = full with "
        "stronger light and colour changes",
        choices=AUGMENTS,
    )
    crop_size: int = opt(320, "square crop of --augment full", low=8)
    scale_range: tuple[float, float] = opt(
        (0.5, 2.0),
        "random scale range of --augment full",
        low=0.01,
        metavar=("LOW", "HIGH"),
        nargs=2,
    )
    rare_crops: float = opt(
        0.0,
        "share of --augment full crops centred on a pixel of a rare class (one with fewer "
        "training pixels than the median class: poles, signs, pedestrians); 0 = uniform crops",
        low=0,
        high=1,
        metavar="P",
    )
    distill_from: str | None = opt(
        None,
        "teacher checkpoint (or built-in model) for distillation: it segments every training "
        "image once with test-time augmentation, and the loss adds the KL divergence from its "
        "probabilities to the model's (needs --augment full or strong)",
        metavar="CKPT",
    )
    distill_weight: float = opt(
        1.0, "weight of the distillation term in the loss", low=0, metavar="W"
    )
    distill_scales: tuple[float, ...] = opt(
        (0.75, 1.0, 1.25), "the teacher's test-time scales", low=0.1, high=4, metavar="S"
    )
    distill_flip: bool = opt(True, "the teacher also segments each scale mirrored")
    average_from: int | None = opt(
        None,
        "from this epoch on, the weights at the end of each epoch are averaged (stochastic "
        "weight averaging); validation, the checkpoints and the result are the average",
        low=1,
        metavar="EPOCH",
    )
    norm_eval: bool = opt(
        False, "keep the pretrained layers' BatchNorm statistics fixed while fine-tuning"
    )
    feature_cache: str = opt(
        "auto",
        "auto = compute frozen outputs once when the frozen part sees fixed inputs; off",
        choices=("auto", "off"),
    )
    skip_bad: bool = opt(False, "skip bad image/mask pairs (counted) instead of stopping")
    seed: int = opt(0, "random seed (every epoch's randomness derives from it)", low=0)
    workers: int | None = opt(None, "data-loader processes (default: min(4, CPUs))", low=0)
    accelerator: str = opt("auto", "cpu | gpu | cuda | mps | auto (Lightning Fabric)")
    devices: str = opt("1", "devices per node: a count, a list like 0,1, or auto")
    num_nodes: int = opt(1, "machines taking part in distributed training", low=1)
    strategy: str = opt("auto", "auto | ddp | ddp_spawn | ... (Lightning Fabric)")
    precision: str = opt("32", "numeric precision of training", choices=PRECISIONS)
    num_vis: int = opt(4, "validation images drawn each epoch (0: none)", low=0, high=64)
    patience: int | None = opt(
        None, "stop when validation mean IU has not improved for this many epochs", low=1
    )
    tensorboard: bool = opt(
        False,
        "also log to RUN/tensorboard (needs the tensorboard extra: pip install fcnseg[tensorboard])",
    )
    dropout: float | None = opt(
        None, "dropout of fc6/fc7 (VGG16 models; default 0.5)", low=0, high=1, model_option=True
    )
    fc_channels: int | None = opt(
        None,
        "fc6/fc7 width (VGG16 models; 4096 is needed for VGG16's own fc weights)",
        low=1,
        model_option=True,
    )
    head_channels: int | None = opt(
        None, "width of the 3x3 layer before each score layer (timm / EfficientNet models)",
        low=1, model_option=True,
    )  # fmt: skip
    input_scale: float | None = opt(
        None,
        "the model runs on images resized by this factor and returns labels at the input size; "
        "kept with the model (default 1)",
        low=0.1,
        high=4,
        model_option=True,
    )
    description: str | None = opt(
        None, "free text describing a recipe (kept in config.yaml)", yaml_only=True
    )

    @classmethod
    def fields(cls) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(cls)

    def to_dict(self) -> dict[str, Any]:
        """Plain types (lists, not tuples), for YAML and checkpoints."""
        d = dataclasses.asdict(self)
        d["scale_range"] = list(self.scale_range)
        d["distill_scales"] = list(self.distill_scales)
        return d

    def to_yaml(self, **extra: Any) -> str:
        return yaml.safe_dump({**self.to_dict(), **extra}, sort_keys=False)

    def model_kwargs(self) -> dict[str, Any]:
        """The model-specific options that were set."""
        return {
            f.name: getattr(self, f.name)
            for f in self.fields()
            if f.metadata["model_option"] and getattr(self, f.name) is not None
        }


OPTION_NAMES = tuple(f.name for f in TrainConfig.fields())


def resolve(*layers: dict[str, Any] | None, require_paths: bool = True) -> TrainConfig:
    """Defaults, then each layer in turn (later wins; ``None`` values mean "not given").

    Raises:
        ConfigError: an unknown option, a value of the wrong type or out of range, or a model
            option the chosen model does not take.
    """
    values: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            key = key.replace("-", "_")
            if key not in OPTION_NAMES:
                raise ConfigError(_unknown(key))
            if value is not None:
                values[key] = value
    checked = {f.name: _check(f, values[f.name]) for f in TrainConfig.fields() if f.name in values}
    cfg = TrainConfig(**checked)
    _check_together(cfg, require_paths)
    return cfg


def _unknown(key: str) -> str:
    close = difflib.get_close_matches(key, OPTION_NAMES, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(OPTION_NAMES)})"
    return f"unknown option {key!r}{hint}"


def _check(f: dataclasses.Field, value: Any) -> Any:
    """The value converted to the field's type, or ConfigError naming the option."""
    if f.name == "devices" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return check_value(TrainConfig, f, value, ConfigError)


PATH_OPTIONS = ("data", "init_from", "weights_backbone", "distill_from")


def absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with its input paths made absolute, so that the run's ``config.yaml`` resumes from
    any folder (a relative ``data`` was resolved against the folder of the resuming shell).

    Only values that exist as paths change: ``imagenet`` or a built-in model's name stay names.
    """
    changes = {}
    for name in PATH_OPTIONS:
        value = getattr(cfg, name)
        if value and os.path.exists(value):
            changes[name] = os.path.abspath(value)
    return dataclasses.replace(cfg, **changes)


def _check_together(cfg: TrainConfig, require_paths: bool) -> None:
    if require_paths and not cfg.data:
        raise ConfigError("--data is required (a dataset folder)")
    if require_paths and not cfg.out:
        raise ConfigError("--out is required (the run folder to write)")
    if cfg.model not in list_models():
        raise ConfigError(f"--model must be one of {', '.join(list_models())}, got {cfg.model!r}")
    check_model_options(cfg.model, cfg.model_kwargs())
    if cfg.class_weights not in ("none", "median-freq"):
        try:  # the count is checked against the dataset's classes once it is read
            parse_class_weights(cfg.class_weights, len(cfg.class_weights.split(",")))
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    if cfg.rare_crops and cfg.augment not in ("full", "strong"):
        raise ConfigError(f"--rare-crops needs crops: --augment full or strong, not {cfg.augment}")
    if cfg.distill_from and cfg.augment not in ("full", "strong"):
        raise ConfigError(
            f"--distill-from needs --augment full or strong (the teacher's probabilities follow "
            f"the crops), not {cfg.augment}"
        )
    if cfg.unfreeze_at is not None and cfg.freeze == "none":
        raise ConfigError("--unfreeze-at needs a frozen part (--freeze features or backbone)")
    if cfg.unfreeze_at is not None and cfg.unfreeze_at > cfg.epochs:
        raise ConfigError(f"--unfreeze-at {cfg.unfreeze_at} is after the last epoch ({cfg.epochs})")
    if cfg.average_from is not None and cfg.average_from > cfg.epochs:
        raise ConfigError(
            f"--average-from {cfg.average_from} is after the last epoch ({cfg.epochs})"
        )


# -- recipes (YAML) ----------------------------------------------------------------------------


def recipe_names() -> list[str]:
    """The recipes shipped inside the package, usable as ``--config NAME``."""
    root = resources.files(RECIPE_PACKAGE)
    return sorted(p.name[: -len(".yaml")] for p in root.iterdir() if p.name.endswith(".yaml"))


def recipe_path(spec: str | Path) -> Path:
    """A recipe file: an existing path, or the name of a shipped recipe (with or without .yaml)."""
    path = Path(spec)
    if path.is_file():
        return path
    name = path.name[: -len(".yaml")] if path.name.endswith(".yaml") else path.name
    if str(spec) in (name, f"{name}.yaml") and name in recipe_names():
        return Path(str(resources.files(RECIPE_PACKAGE) / f"{name}.yaml"))
    if path.is_dir():
        raise ConfigError(f"{spec}: is a folder; --config takes a YAML file or a recipe name")
    raise ConfigError(
        f"{spec}: no such config file or shipped recipe (recipes: {', '.join(recipe_names())})"
    )


def read_yaml(spec: str | Path) -> dict[str, Any]:
    """The options of a recipe file or shipped recipe (``run_info`` of a run folder is skipped)."""
    path = recipe_path(spec)
    try:
        data = load_yaml(path.read_text()) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of option: value")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    data.pop("run_info", None)
    for key in data:
        if key not in OPTION_NAMES:
            raise ConfigError(f"{path}: {_unknown(key)}")
    return data


# -- the command line --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option that is not YAML-only; every default is ``None`` ("not given")."""
    group = parser.add_argument_group(
        "training options (defaults shown; a --config overrides them)"
    )
    for f in TrainConfig.fields():
        if not f.metadata["yaml_only"]:
            add_field_argument(group, TrainConfig, f, _help(f))


def _help(f: dataclasses.Field) -> str:
    if f.metadata["model_option"]:
        models = [n for n in list_models() if f.name in model_options(n)]
        shown = f"{f.metadata['help']}; models: {', '.join(models)}"
        return shown.replace("%", "%%")
    return help_text(f)


def given_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on the command line (argparse leaves the others ``None``)."""
    out = {}
    for name in OPTION_NAMES:
        value = getattr(args, name, None)
        if value is not None:
            out[name] = tuple(value) if isinstance(value, list) else value
    return out
