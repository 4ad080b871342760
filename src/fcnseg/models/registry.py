"""A registry of model builders, in the style of timm's ``create_model``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from fcnseg.errors import FcnsegError
from fcnseg.models.weights_sources import WeightsSource

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_OPTIONS: dict[str, tuple[str, ...]] = {}
_WEIGHTS: dict[str, WeightsSource] = {}
_COMMON = ("num_classes", "weights_backbone")


class ModelOptionError(FcnsegError):
    """An option that the chosen model does not take."""


def register_model(
    name: str,
    options: tuple[str, ...] | None = None,
    *,
    weights: WeightsSource | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder ``fn(*, num_classes, weights_backbone, **options) -> nn.Module``.

    ``options`` names the builder's own keyword options; by default they are read from its
    signature (its keyword parameters other than ``num_classes`` and ``weights_backbone``).
    ``weights`` says where its ``imagenet`` backbone weights come from (``fcnseg models
    --summary`` shows it).
    """

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise RuntimeError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        _OPTIONS[name] = tuple(options) if options is not None else _keyword_options(fn)
        if weights is not None:
            _WEIGHTS[name] = weights
        return fn

    return wrap


def _keyword_options(fn: Callable[..., nn.Module]) -> tuple[str, ...]:
    params = inspect.signature(fn).parameters.values()
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in params if p.kind in kinds and p.name not in _COMMON)


def model_weights(name: str) -> WeightsSource | None:
    """Where model ``name``'s ImageNet backbone weights come from, or None if not declared."""
    return _WEIGHTS.get(name)


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`, sorted."""
    return sorted(_MODELS)


def model_options(name: str) -> tuple[str, ...]:
    """The keyword options that model ``name`` takes besides ``num_classes`` and weights."""
    check_model_name(name)
    return _OPTIONS[name]


def check_model_name(name: str) -> None:
    """ModelOptionError listing the registered models when ``name`` is not one of them."""
    if name not in _MODELS:
        raise ModelOptionError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")


def check_model_options(name: str, options: dict[str, Any]) -> None:
    """ModelOptionError when ``options`` (``None`` values ignored) holds one ``name`` does not take.

    The message names the option as a CLI flag and lists what the model does take, so that
    ``--fc-channels`` on a ResNet is one clear line rather than a ``TypeError``.
    """
    takes = model_options(name)
    wrong = [k for k, v in options.items() if v is not None and k not in takes]
    if wrong:
        flags = ", ".join("--" + k.replace("_", "-") for k in wrong)
        own = ", ".join("--" + k.replace("_", "-") for k in takes) or "none"
        raise ModelOptionError(f"{flags} does not apply to {name} (its options: {own})")


def build_model(
    name: str, *, num_classes: int, weights_backbone: str | None = None, **kwargs: Any
) -> nn.Module:
    """Build a registered model.

    Args:
        name: one of :func:`list_models`.
        num_classes: number of output channels (classes scored; the ignore label is not one).
        weights_backbone: ``"imagenet"``, ``None`` (random init) or a path to a state-dict file.
        **kwargs: builder options (:func:`model_options`); ``None`` values are dropped so CLI
            defaults never override the model's own defaults.

    Returns:
        A module mapping images ``(N, 3, H, W)`` in [0, 1] to logits ``(N, num_classes, H, W)``.
        Its ``arch`` attribute holds what is needed to rebuild it (name and constructor args).

    Raises:
        ModelOptionError: unknown model, bad ``num_classes`` or an option the model does not take.
    """
    check_model_options(name, kwargs)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ModelOptionError(f"num_classes must be a positive integer, got {num_classes!r}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    model = _MODELS[name](num_classes=num_classes, weights_backbone=weights_backbone, **kwargs)
    # Constructor arguments without the weights: a checkpoint restores the state itself.
    model.arch = {"name": name, "num_classes": num_classes, **kwargs}
    return model
