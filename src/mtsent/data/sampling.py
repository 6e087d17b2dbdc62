"""Choosing which task the next multi-task training step uses.

The sampler is stateless: the task for a step is a pure function of ``(seed, step)``, so a resumed
run makes exactly the same choices without saving RNG state.

Strategies (``n_i`` = training examples of task ``i``):

* ``proportional``: ``p_i ∝ n_i`` (every example seen about once per epoch; small tasks are rare).
* ``temperature``: ``p_i ∝ n_i ** (1 / T)``; ``T = 1`` is proportional, large ``T`` tends to uniform.
* ``round_robin``: step ``s`` uses task ``s % k`` in declared order (``probabilities`` reports 1/k).
* ``annealed``: temperature sampling with ``1/T = 1 - s / total_steps`` (clipped to ``[0, 1]``),
  i.e. proportional at step 0 and uniform from ``total_steps`` on.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any, Literal, get_args

Strategy = Literal["proportional", "temperature", "round_robin", "annealed"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)


def steps_per_epoch(task_sizes: Mapping[str, int], batch_size: int) -> int:
    """One multi-task epoch: ``sum_i ceil(n_i / batch_size)`` steps (each example once in expectation
    under proportional sampling)."""
    return sum(math.ceil(n / batch_size) for n in task_sizes.values())


class MultiTaskSampler:
    """Pick a task name per training step; deterministic given ``seed`` and ``step``."""

    def __init__(
        self,
        task_sizes: Mapping[str, int],
        strategy: Strategy = "proportional",
        temperature: float = 2.0,
        seed: int = 0,
        total_steps: int | None = None,
    ) -> None:
        self._configure(dict(task_sizes), strategy, temperature, seed, total_steps)

    def _configure(
        self,
        task_sizes: dict[str, int],
        strategy: str,
        temperature: float,
        seed: int,
        total_steps: int | None,
    ) -> None:
        if not task_sizes:
            raise ValueError("MultiTaskSampler needs at least one task")
        if any(n <= 0 for n in task_sizes.values()):
            raise ValueError(f"every task needs at least one training example, got {task_sizes}")
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown sampling strategy {strategy!r}; expected one of {STRATEGIES}")
        if strategy == "temperature" and temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if strategy == "annealed" and (total_steps is None or total_steps <= 0):
            raise ValueError("the 'annealed' strategy needs total_steps > 0")
        self.task_sizes = task_sizes
        self.tasks = list(task_sizes)
        self.strategy = strategy
        self.temperature = float(temperature)
        self.seed = int(seed)
        self.total_steps = total_steps

    def _exponent(self, step: int) -> float:
        if self.strategy == "proportional":
            return 1.0
        if self.strategy == "temperature":
            return 1.0 / self.temperature
        assert self.total_steps is not None
        return min(1.0, max(0.0, 1.0 - step / self.total_steps))

    def probabilities(self, step: int = 0) -> dict[str, float]:
        """Probability of each task at ``step`` (long-run frequency 1/k for round robin)."""
        if self.strategy == "round_robin":
            return {t: 1.0 / len(self.tasks) for t in self.tasks}
        alpha = self._exponent(step)
        weights = {t: float(n) ** alpha for t, n in self.task_sizes.items()}
        total = sum(weights.values())
        return {t: w / total for t, w in weights.items()}

    def sample(self, step: int) -> str:
        """Task for ``step``; the RNG is derived from ``(seed, step)`` so resuming repeats choices."""
        if self.strategy == "round_robin":
            return self.tasks[step % len(self.tasks)]
        u = random.Random(f"mtsent-sampler:{self.seed}:{step}").random()
        acc = 0.0
        probs = self.probabilities(step)
        for task in self.tasks:
            acc += probs[task]
            if u < acc:
                return task
        return self.tasks[-1]

    def state_dict(self) -> dict[str, Any]:
        """Everything that defines the choices (there is no hidden RNG state)."""
        return {
            "task_sizes": dict(self.task_sizes),
            "strategy": self.strategy,
            "temperature": self.temperature,
            "seed": self.seed,
            "total_steps": self.total_steps,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._configure(
            dict(state["task_sizes"]),
            state["strategy"],
            state["temperature"],
            state["seed"],
            state["total_steps"],
        )
