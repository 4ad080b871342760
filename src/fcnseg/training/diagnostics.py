"""Diagnostics that watch a run and explain what they see (class collapse, unlearned classes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLLAPSE_PATIENCE = 3


@dataclass
class CollapseWatch:
    """Notices predictions collapsing onto a few classes, or classes never recalled."""

    class_names: tuple[str, ...]
    patience: int = COLLAPSE_PATIENCE

    def __post_init__(self) -> None:
        self.zero_streak = np.zeros(len(self.class_names), dtype=int)
        self.warned: set[int] = set()

    def check(self, cm: np.ndarray) -> list[str]:
        """Warnings for this epoch's validation confusion matrix ``(C, C)`` (rows = truth)."""
        messages = []
        used = int((cm.sum(axis=0) > 0).sum())
        truth = cm.sum(axis=1)
        if used <= 2 and len(self.class_names) > 2:
            messages.append(
                f"class collapse: predictions use only {used} class(es). Likely causes: a loss "
                "dominated by the big classes (try --class-weights median-freq or --loss focal / "
                "ce+dice), a learning rate too high or too low, or too few epochs"
            )
        recall_zero = (np.diag(cm) == 0) & (truth > 0)
        self.zero_streak = np.where(recall_zero, self.zero_streak + 1, 0)
        late = [
            i
            for i in np.flatnonzero(self.zero_streak >= self.patience)
            if int(i) not in self.warned
        ]
        if late:
            self.warned.update(int(i) for i in late)
            names = ", ".join(self.class_names[i] for i in late)
            messages.append(
                f"classes never predicted for {self.patience} epochs: {names}. Likely causes: rare "
                "classes outweighed (try --class-weights median-freq), too small a crop, or an "
                "output too coarse (FCN-32s: try fcn8s)"
            )
        return messages
