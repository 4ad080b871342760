"""The one progress-bar convention of the toolkit.

Every bar fcnseg draws is a :func:`progress_bar`: it goes to stderr, erases itself when done
(``leave=False``: the command prints its own one-line summary, so finished bars would only
stack up), follows the terminal's width, and is not drawn at all when it is switched off
(``enabled=False``, e.g. on the processes of a run other than the first) or when stderr is
not a terminal (a log file or a pipe would otherwise collect every redraw).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tqdm import tqdm


def progress_bar(
    iterable: Iterable | None = None,
    *,
    desc: str | None = None,
    total: float | None = None,
    unit: str = "it",
    enabled: bool = True,
    **options: Any,
) -> tqdm:
    """A tqdm bar by the convention above; ``options`` go to tqdm as they are (``initial=``,
    ``unit_scale=``). Use it as tqdm: iterate over it, or ``with`` it and ``update()``."""
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        leave=False,
        dynamic_ncols=True,
        disable=None if enabled else True,  # None: tqdm's own "only on a terminal"
        **options,
    )
