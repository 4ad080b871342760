"""Learning-rate schedules that tolerate parameter groups added mid-run (unfreezing)."""

from __future__ import annotations

import torch

SCHEDULES = ("constant", "poly")


class LRSchedule:
    """Sets every group's lr to ``group["base_lr"] * factor(step)``; ``poly``: (1 - t/T) ** 0.9."""

    def __init__(self, optimizer: torch.optim.Optimizer, kind: str, total_steps: int) -> None:
        if kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {kind!r}; choose one of: {', '.join(SCHEDULES)}")
        self.optimizer, self.kind, self.total = optimizer, kind, max(1, total_steps)
        self.steps = 0
        self._apply()

    def factor(self) -> float:
        if self.kind == "constant":
            return 1.0
        return max(0.0, 1 - self.steps / self.total) ** 0.9

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group.setdefault("base_lr", group["lr"])
            group["lr"] = group["base_lr"] * self.factor()

    def step(self) -> None:
        self.steps += 1
        self._apply()

    def refresh(self) -> None:
        """Apply the current factor to groups added since the last step."""
        self._apply()

    def state_dict(self) -> dict:
        return {"steps": self.steps, "kind": self.kind, "total": self.total}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        self._apply()
