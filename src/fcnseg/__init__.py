"""fcnseg: semantic segmentation with Fully Convolutional Networks (Long et al., 2015).

The Python API, in two lines::

    import fcnseg

    seg = fcnseg.load("runs/d1/checkpoint_best.pt")
    labels = seg.predict("street.jpg")  # (H, W) uint8 class ids; seg.classes names them

Examples:
    >>> import fcnseg
    >>> result = fcnseg.train("dataset1_lite0_frozen", data="dataset1", out="runs/lite0")

``import fcnseg`` stays light: torch is imported when ``load``, ``Segmenter`` or ``train`` is
first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["FcnsegError", "Segmenter", "__version__", "load", "train"]

from fcnseg.errors import FcnsegError
from fcnseg.version import __version__

if TYPE_CHECKING:
    from fcnseg.api import Segmenter, load
    from fcnseg.training import train

_LAZY = {"load": "fcnseg.api", "Segmenter": "fcnseg.api", "train": "fcnseg.training"}


def __getattr__(name: str) -> Any:
    # PEP 562: the API (and torch with it) is imported on first use, not by `import fcnseg`.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fcnseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
