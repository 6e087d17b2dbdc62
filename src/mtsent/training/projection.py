"""Projecting conflicting task gradients on the shared encoder (PCGrad, Yu et al., NeurIPS 2020), one task a step.

PCGrad takes every task's gradient of a step and removes from each the component along any other task's gradient
it conflicts with (a negative dot product), so that no task's update undoes another's. mtsent's steps carry one
task's batch, so the other tasks' gradients are their recent directions instead: an exponential moving average of
each task's gradients on the shared parameters, updated on that task's own steps. A step's gradient is projected
onto the normal plane of every other task's average it conflicts with, in a random order (as PCGrad orders
tasks), before clipping and the optimizer step. Task heads have one task's gradients only and are left alone.
Config: `optim.gradient_projection: conflicting` (`optim.projection_momentum` sets the average's momentum).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["GradientProjection"]


class GradientProjection:
    """Per-task moving averages of the shared gradients, and the projection of a step's gradient against them.

    Call `project(task)` after the backward pass of a step of `task` (one task per optimizer step). `counts`
    says, per task, how many of its steps were projected against each other task. A checkpoint carries the
    averages (`state_tensors()` / `load_state_tensors()`) and the counts and task order (`state_dict()` /
    `load_state_dict()`), so a resumed run projects as the uninterrupted one would.
    """

    def __init__(self, params: Sequence[nn.Parameter], tasks: Sequence[str], momentum: float, seed: int) -> None:
        if not 0 <= momentum < 1:
            raise ValueError(f"projection momentum must be in [0, 1), got {momentum}")
        self.params = list(params)
        self.tasks = list(tasks)
        self.momentum = momentum
        self.order = random.Random(seed)
        self.averages: dict[str, Tensor] = {}
        self.counts = {t: {"steps": 0, **{f"projected_against_{o}": 0 for o in tasks if o != t}} for t in tasks}

    def _flat_gradient(self) -> Tensor:
        return torch.cat(
            [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in self.params]
        )

    @torch.no_grad()
    def project(self, task: str) -> None:
        """Project the current gradient of the shared parameters (a step of `task`) in place."""
        if task not in self.counts:
            raise KeyError(f"no gradient average for task {task!r}; tasks: {self.tasks}")
        gradient = self._flat_gradient()
        others = [t for t in self.tasks if t != task and t in self.averages]
        self.order.shuffle(others)
        projected = gradient.clone() if others else gradient
        for other in others:
            average = self.averages[other]
            dot = torch.dot(projected, average)
            if dot < 0:
                projected.sub_(average, alpha=float(dot / torch.dot(average, average).clamp_min(1e-30)))
                self.counts[task][f"projected_against_{other}"] += 1
        self.counts[task]["steps"] += 1
        if others:
            offset = 0
            for p in self.params:
                size = p.numel()
                if p.grad is not None:
                    p.grad.copy_(projected[offset : offset + size].view_as(p.grad))
                offset += size
        if task in self.averages:  # the task's own average follows its unprojected gradients
            self.averages[task].mul_(self.momentum).add_(gradient, alpha=1 - self.momentum)
        else:
            self.averages[task] = gradient

    def state_dict(self) -> dict:
        """The counts and the task-order generator's state (JSON-ready)."""
        version, internal, gauss = self.order.getstate()
        return {"counts": self.counts, "order": [version, list(internal), gauss]}

    def load_state_dict(self, state: dict) -> None:
        version, internal, gauss = state["order"]
        self.order.setstate((version, tuple(internal), gauss))
        for task, counts in state["counts"].items():
            if task in self.counts:
                self.counts[task].update(counts)

    def state_tensors(self) -> dict[str, Tensor]:
        """The averages, named `projection.<task>`, for a checkpoint's tensors."""
        return {f"projection.{t}": a for t, a in self.averages.items()}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore the averages from a checkpoint's tensors (those `state_tensors()` named)."""
        size = sum(p.numel() for p in self.params)
        for name, value in tensors.items():
            task = name.removeprefix("projection.")
            if name.startswith("projection.") and task in self.counts:
                if value.numel() != size:
                    raise ValueError(
                        f"checkpoint's gradient average for {task!r} has {value.numel()} values, the shared "
                        f"parameters {size}: was it saved from another model?"
                    )
                self.averages[task] = value.float().reshape(-1).clone()
