"""Models: ``build_model(name, *, num_classes, weights_backbone)`` and ``list_models()``."""

from fcnseg.models import builders as _builders  # noqa: F401  (registers the models)
from fcnseg.models.fcn import FCN
from fcnseg.models.registry import (
    build_model,
    check_model_options,
    list_models,
    model_options,
    model_weights,
    register_model,
)

__all__ = [
    "FCN",
    "build_model",
    "check_model_options",
    "list_models",
    "model_options",
    "model_weights",
    "register_model",
]
