"""Inference: labels and probabilities for images of any size, at the model's working scale.

:mod:`.core` runs a model on images (batches, tiles, test-time augmentation, precision),
:mod:`.resize` brings images to the working scale and scores back to the input's size, and
:mod:`.options` declares every inference option once (:class:`InferenceConfig`).
"""

from fcnseg.inference.core import (
    DEFAULT_OVERLAP,
    DEFAULT_TILE,
    autocast,
    check_scales,
    check_tiling,
    class_scores,
    pick_device,
    predict_batch,
    predict_labels,
    predict_many,
    predict_probabilities,
    prepare,
    score_map,
    tile_starts,
)
from fcnseg.inference.options import InferenceConfig, make_config
from fcnseg.inference.resize import check_resize, recorded_size, working_size

__all__ = [
    "DEFAULT_OVERLAP",
    "DEFAULT_TILE",
    "InferenceConfig",
    "autocast",
    "check_resize",
    "check_scales",
    "check_tiling",
    "class_scores",
    "make_config",
    "pick_device",
    "predict_batch",
    "predict_labels",
    "predict_many",
    "predict_probabilities",
    "prepare",
    "recorded_size",
    "score_map",
    "tile_starts",
    "working_size",
]
