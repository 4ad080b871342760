"""fcnseg: semantic segmentation with Fully Convolutional Networks (Long et al., 2015).

Examples:
    >>> import fcnseg
    >>> result = fcnseg.train("dataset1_lite0_frozen", data="dataset1", out="runs/lite0")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "train"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `import fcnseg` stays fast and light.
    if name == "train":
        from fcnseg.training import train

        return train
    raise AttributeError(f"module 'fcnseg' has no attribute {name!r}")
