"""fcnseg: semantic segmentation with Fully Convolutional Networks (Long et al., 2015).

The Python API, in two lines::

    import fcnseg

    seg = fcnseg.load("runs/d1/checkpoint_best.pt")
    labels = seg.predict("street.jpg")  # (H, W) uint8 class ids; seg.classes names them

``import fcnseg`` stays light: torch is imported when ``load`` or ``Segmenter`` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["FcnsegError", "Segmenter", "__version__", "load"]

from fcnseg.errors import FcnsegError

if TYPE_CHECKING:
    from fcnseg.api import Segmenter, load

_LAZY = {"load", "Segmenter"}


def __getattr__(name: str) -> Any:
    # PEP 562: the API (and torch with it) is imported on first use, not by `import fcnseg`.
    if name in _LAZY:
        from fcnseg import api

        return getattr(api, name)
    raise AttributeError(f"module 'fcnseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
