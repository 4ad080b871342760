"""Options declared once: a dataclass field carries its type, default, help, bounds and choices.

:class:`fcnseg.training.TrainConfig` (training) and :class:`fcnseg.inference.InferenceConfig`
(prediction, evaluation, the app and the Python API) are such dataclasses. From a field this
module derives its value check (:func:`check_value`) and its command-line flag
(:func:`add_field_argument`), so a flag, a keyword argument and a YAML key of the same option
accept the same values and share one default.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import types
import typing
from collections.abc import Callable
from dataclasses import field
from typing import Any

from fcnseg.errors import FcnsegError, shown


def opt(
    default: Any,
    help: str,
    *,
    choices: tuple | None = None,
    low: float | None = None,
    high: float | None = None,
    metavar: str | tuple[str, ...] | None = None,
    nargs: int | str | None = None,
    check: Callable[[Any, str], Any] | None = None,
    yaml_only: bool = False,
    model_option: bool = False,
) -> Any:
    """A dataclass field with what the flags and the checks need to know about it.

    Args:
        default: the one default (flags, keyword arguments and YAML all fall back to it).
        help: the flag's help text; ``(default X)`` is added where there is a default.
        choices: the allowed values.
        low, high: inclusive bounds of a number (of each number of a tuple).
        metavar: how the help names the value(s).
        nargs: for a tuple: ``2`` is a pair ``LOW <= HIGH``, ``"+"`` one or more numbers.
        check: ``(value, flag) -> value`` for values no type describes (e.g. ``auto | none |
            PIXELS``); it replaces the type check and receives the flag's text as given.
        yaml_only: no flag (TrainConfig: recipe text only).
        model_option: passed to the model's builder (TrainConfig).
    """
    meta = {
        "help": help,
        "choices": choices,
        "low": low,
        "high": high,
        "metavar": metavar,
        "nargs": nargs,
        "check": check,
        "yaml_only": yaml_only,
        "model_option": model_option,
    }
    return field(default=default, metadata=meta)


def flag(name: str) -> str:
    """The command-line flag of an option: ``tta_scales`` -> ``--tta-scales``."""
    return "--" + name.replace("_", "-")


def kinds(cls: type, f: dataclasses.Field) -> set[type]:
    """The types a field's hint allows, ``None`` left out (``int | None`` -> ``{int}``)."""
    hint = typing.get_type_hints(cls)[f.name]
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return {typing.get_origin(a) or a for a in args} - {type(None)}


def check_value(
    cls: type, f: dataclasses.Field, value: Any, error: type[FcnsegError] = FcnsegError
) -> Any:
    """``value`` converted to the field's type, or ``error`` (one line naming the flag)."""
    name, meta = flag(f.name), f.metadata
    if meta["check"] is not None:
        return meta["check"](value, name)
    found = kinds(cls, f)
    if isinstance(value, os.PathLike):  # the Python API takes paths for data, out, init_from...
        value = os.fspath(value)
    if tuple in found:
        value = _check_numbers(name, value, meta, error)
    elif bool in found:
        if not isinstance(value, bool):
            raise error(f"{name} must be true or false, got {shown(value)}")
    elif int in found:
        if isinstance(value, bool) or not isinstance(value, int):
            raise error(f"{name} must be a whole number, got {shown(value)}")
    elif float in found:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise error(f"{name} must be a number, got {shown(value)}")
        value = float(value)
    elif not isinstance(value, str) or not value.strip():
        raise error(f"{name} must be a non-empty text, got {shown(value)}")
    if meta["choices"] and value not in meta["choices"]:
        raise error(f"{name} must be one of {', '.join(meta['choices'])}, got {shown(value)}")
    if not isinstance(value, tuple | str | bool):
        check_range(name, value, meta, error)
    return value


def _check_numbers(name: str, value: Any, meta: dict, error: type[FcnsegError]) -> tuple:
    """A tuple of floats: a pair ``LOW <= HIGH`` (``nargs=2``) or one or more numbers."""
    pair = meta["nargs"] == 2
    numbers = isinstance(value, list | tuple) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    )
    if pair and (not numbers or len(value) != 2 or not value[0] <= value[1]):
        raise error(f"{name} must be two numbers LOW <= HIGH, got {shown(value)}")
    if not pair and (not numbers or not value):
        raise error(f"{name} must be one or more numbers, got {shown(value)}")
    for v in value:
        check_range(name, v, meta, error)
    return tuple(float(v) for v in value)


def check_range(name: str, value: float, meta: dict, error: type[FcnsegError]) -> None:
    """``error`` unless ``value`` is finite and lies within the field's ``low``/``high``."""
    low, high = meta["low"], meta["high"]
    # NaN passes every comparison (nan < low is False): refuse it, and infinities, outright.
    finite = math.isfinite(value)
    if not finite or low is not None and value < low or high is not None and value > high:
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        what = "" if finite else "a finite number "
        raise error(f"{name} must be {what}{bounds}, got {value!r}")


def add_field_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    f: dataclasses.Field,
    help: str,
) -> None:
    """The flag of one field; its default is ``None`` ("not given"), so the declaration's own
    default applies unless the flag is given."""
    meta = f.metadata
    found = kinds(cls, f)
    kwargs: dict[str, Any] = {"default": None, "dest": f.name, "help": help}
    if meta["check"] is not None:  # the check reads the text as given
        kwargs["type"] = str
        if meta["nargs"] is not None:
            kwargs["nargs"] = meta["nargs"]
    elif bool in found:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif tuple in found:
        kwargs.update(type=float, nargs=meta["nargs"] or "+")
    elif int in found:
        kwargs["type"] = int
    elif float in found:
        kwargs["type"] = float
    if meta["choices"]:
        kwargs["choices"] = meta["choices"]
    if meta["metavar"]:
        kwargs["metavar"] = meta["metavar"]
    parser.add_argument(flag(f.name), **kwargs)


def help_text(f: dataclasses.Field) -> str:
    """The field's help with its default, ``%`` escaped for argparse."""
    default = f.default
    if isinstance(default, tuple):
        default = " ".join(str(v) for v in default)
    elif isinstance(default, bool):
        default = "on" if default else "off"
    text = f.metadata["help"] if default is None else f"{f.metadata['help']} (default {default})"
    return text.replace("%", "%%")
