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
        self.averages: dict[str, list[Tensor]] = {}  # per task, one tensor per parameter
        self.counts = {t: {"steps": 0, **{f"projected_against_{o}": 0 for o in tasks if o != t}} for t in tasks}

    @staticmethod
    def _dot(xs: Sequence[Tensor | None], ys: Sequence[Tensor]) -> Tensor:
        return sum(
            (torch.vdot(x.reshape(-1), y.reshape(-1)) for x, y in zip(xs, ys, strict=True) if x is not None),
            torch.zeros(()),
        )

    @torch.no_grad()
    def project(self, task: str) -> None:
        """Project the current gradient of the shared parameters (a step of `task`) in place.

        Works parameter by parameter (no flattened copy of the gradient): a missing gradient counts as zeros and
        stays missing."""
        if task not in self.counts:
            raise KeyError(f"no gradient average for task {task!r}; tasks: {self.tasks}")
        grads = [p.grad for p in self.params]
        # the task's own average follows its unprojected gradients
        if task in self.averages:
            for average, grad in zip(self.averages[task], grads, strict=True):
                average.mul_(self.momentum)
                if grad is not None:
                    average.add_(grad, alpha=1 - self.momentum)
        else:
            self.averages[task] = [
                g.detach().float().clone() if g is not None else torch.zeros_like(p)
                for g, p in zip(grads, self.params, strict=True)
            ]
        others = [t for t in self.tasks if t != task and t in self.averages]
        self.order.shuffle(others)
        present = [g for g in grads if g is not None]
        for other in others:
            average = self.averages[other]
            dot = float(self._dot(grads, average))
            if dot < 0:
                norm = max(float(self._dot(average, average)), 1e-30)
                kept = [a for a, g in zip(average, grads, strict=True) if g is not None]
                torch._foreach_add_(present, kept, alpha=-dot / norm)
                self.counts[task][f"projected_against_{other}"] += 1
        self.counts[task]["steps"] += 1

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
        """The averages, one flat tensor per task named `projection.<task>`, for a checkpoint's tensors."""
        return {f"projection.{t}": torch.cat([x.reshape(-1) for x in a]) for t, a in self.averages.items()}

    def load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore the averages from a checkpoint's tensors (those `state_tensors()` named)."""
        sizes = [p.numel() for p in self.params]
        for name, value in tensors.items():
            task = name.removeprefix("projection.")
            if name.startswith("projection.") and task in self.counts:
                if value.numel() != sum(sizes):
                    raise ValueError(
                        f"checkpoint's gradient average for {task!r} has {value.numel()} values, the shared "
                        f"parameters {sum(sizes)}: was it saved from another model?"
                    )
                parts = value.float().reshape(-1).split(sizes)
                self.averages[task] = [x.view_as(p).clone() for x, p in zip(parts, self.params, strict=True)]
