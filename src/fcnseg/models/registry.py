"""A registry of model builders, in the style of timm's ``create_model``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from fcnseg.models.weights_sources import WeightsSource

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_WEIGHTS: dict[str, WeightsSource] = {}


def register_model(
    name: str, *, weights: WeightsSource | None = None
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder ``fn(*, num_classes, weights_backbone, **kwargs) -> nn.Module``.

    ``weights`` says where its ``imagenet`` backbone weights come from (``fcnseg models
    --summary`` shows it).
    """

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _MODELS:
            raise RuntimeError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        if weights is not None:
            _WEIGHTS[name] = weights
        return fn

    return wrap


def model_weights(name: str) -> WeightsSource | None:
    """Where model ``name``'s ImageNet backbone weights come from, or None if not declared."""
    return _WEIGHTS.get(name)


def list_models() -> list[str]:
    """Names accepted by :func:`build_model`, sorted."""
    return sorted(_MODELS)


def build_model(
    name: str, *, num_classes: int, weights_backbone: str | None = None, **kwargs: Any
) -> nn.Module:
    """Build a registered model.

    Args:
        name: one of :func:`list_models`.
        num_classes: number of output channels (classes scored; the ignore label is not one).
        weights_backbone: ``"imagenet"``, ``None`` (random init) or a path to a state-dict file.
        **kwargs: builder options; ``None`` values are dropped so CLI defaults never override
            the model's own defaults.

    Returns:
        A module mapping images ``(N, 3, H, W)`` in [0, 1] to logits ``(N, num_classes, H, W)``.
        Its ``arch`` attribute holds what is needed to rebuild it (name and constructor args).
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    model = _MODELS[name](num_classes=num_classes, weights_backbone=weights_backbone, **kwargs)
    # Constructor arguments without the weights: a checkpoint restores the state itself.
    model.arch = {"name": name, "num_classes": num_classes, **kwargs}
    return model
