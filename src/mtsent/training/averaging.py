"""An exponential moving average of the weights (`optim.ema_decay`): the model a run evaluates and saves.

The average is read from the weights after each optimizer step and never feeds back into training, so a run with
it follows the same trajectory as one without; only what is scored and saved differs. It smooths the step-to-step
noise of the last stretch of training, which in a multi-task run includes the other tasks' pulls on the shared
encoder between two steps of a rare task. Built on `torch.optim.swa_utils.AveragedModel`; the decay warms up as
`min(decay, (1 + n) / (10 + n))` after `n` updates, so short runs are not dominated by their first weights.
"""

from __future__ import annotations

import torch
from torch.optim.swa_utils import AveragedModel

from mtsent.model import MultiTaskModel

__all__ = ["WeightAverage", "warmed_decay"]


def warmed_decay(decay: float, updates: int) -> float:
    """The decay of update number `updates + 1`: `decay`, capped by `(1 + n) / (10 + n)` early on."""
    return min(decay, (1 + updates) / (10 + updates))


class WeightAverage:
    """The moving average of a model's parameters, kept in a copy of the model (`.model`).

    `update(model)` after each optimizer step; `raw_tensors(model)` / `load_raw(model, tensors)` carry the
    training weights through a checkpoint that holds the average, so a resumed run continues both.
    """

    def __init__(self, model: MultiTaskModel, decay: float, updates: int = 0) -> None:
        self.decay = decay

        @torch.no_grad()
        def ema(averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
            # AveragedModel calls this with its count of updates so far (the first update copies)
            torch._foreach_lerp_(averaged, current, 1 - warmed_decay(self.decay, int(n) - 1))

        self.averaged = AveragedModel(model, multi_avg_fn=ema, use_buffers=False)
        self.averaged.n_averaged.fill_(updates)

    @property
    def model(self) -> MultiTaskModel:
        return self.averaged.module

    @property
    def updates(self) -> int:
        return int(self.averaged.n_averaged)

    def update(self, model: MultiTaskModel) -> None:
        self.averaged.update_parameters(model)

    @staticmethod
    def raw_tensors(model: MultiTaskModel) -> dict[str, torch.Tensor]:
        """The training weights, keyed `raw.<parameter>`, for the trainer state of a checkpoint."""
        return {f"raw.{n}": p.detach() for n, p in model.named_parameters()}

    @staticmethod
    def load_raw(model: MultiTaskModel, tensors: dict[str, torch.Tensor]) -> None:
        """Put the training weights saved by `raw_tensors` back into `model` (loaded from the average)."""
        params = dict(model.named_parameters())
        missing = sorted(set(params) - {k.removeprefix("raw.") for k in tensors if k.startswith("raw.")})
        if missing:
            raise ValueError(
                f"cannot resume the weight average: the checkpoint's trainer state lacks the training weights of "
                f"{len(missing)} parameters (first: {missing[0]}); was it saved without optim.ema_decay?"
            )
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(tensors[f"raw.{name}"])
