"""How task losses are combined (each task type computes its own loss: `TaskType.loss`).

Static weighting multiplies each task's loss by its configured weight. Uncertainty weighting (Kendall, Gal
and Cipolla, 2018) learns one log-variance s_t per task and minimises exp(-s_t) * L_t + s_t / 2, so noisy or
hard tasks are down-weighted automatically; the s_t train with the heads' learning rate.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["UncertaintyWeighting"]


class UncertaintyWeighting(nn.Module):
    """Learned per-task loss weights; `weights()` reports the effective exp(-s_t) for the logs."""

    def __init__(self, tasks: list[str]) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))

    def forward(self, task: str, loss: Tensor) -> Tensor:
        s = self.log_vars[self.tasks.index(task)]
        return torch.exp(-s) * loss + 0.5 * s

    def weights(self) -> dict[str, float]:
        return {t: float(torch.exp(-s)) for t, s in zip(self.tasks, self.log_vars.detach())}
