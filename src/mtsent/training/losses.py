"""How task losses are combined (each task type computes its own loss: `TaskType.loss`).

Static weighting multiplies each task's loss by its configured weight. Uncertainty weighting (Kendall, Gal
and Cipolla, 2018) learns one log-variance s_t per task and minimises exp(-s_t) * L_t + s_t / 2, so noisy or
hard tasks are down-weighted automatically; the s_t train with the heads' learning rate. Embedding distillation
(`mtsent.training.distillation`) adds its own weighted term to the batches of the tasks it covers, and
cross-task targets (`mtsent.training.teachers`) one for the other tasks' heads on a batch that carries them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from mtsent.model import MultiTaskModel
from mtsent.precision import precision_context
from mtsent.training.distillation import EmbeddingDistillation

__all__ = ["FOREIGN_LABELS", "FOREIGN_PROBS", "StepLosses", "TrainingObjective", "UncertaintyWeighting"]

FOREIGN_LABELS, FOREIGN_PROBS = "foreign_labels.", "foreign_probs."
"""Batch keys of another task's cross-task targets: `foreign_labels.<task>` and `foreign_probs.<task>`."""


class StepLosses(NamedTuple):
    """One batch's losses: the task's own, the total to back-propagate, and the optional extra terms."""

    loss: Tensor
    weighted: Tensor
    embedding: Tensor | None = None
    """Embedding distillation (`distillation.embedding_weight`), unweighted."""
    cross_task: Tensor | None = None
    """The other tasks' heads against their teachers on this batch (`distillation.cross_task_weights`), unweighted
    and summed."""


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


class TrainingObjective(nn.Module):
    """The module the trainer hands to accelerate: one task's forward pass, its loss and the weighted loss.

    The learned loss weights are a submodule next to the model, so under DDP their gradients are averaged
    across processes together with the model's (every process keeps the same weights).
    """

    def __init__(
        self,
        model: MultiTaskModel,
        precision: str,
        loss_weights: dict[str, float],
        class_weights: dict[str, Tensor | None],
        weighting: UncertaintyWeighting | None = None,
        distillation: EmbeddingDistillation | None = None,
        cross_task_weights: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.model, self.weighting, self.distillation = model, weighting, distillation
        self.precision, self.loss_weights, self.class_weights = precision, loss_weights, class_weights
        self.cross_task_weights = cross_task_weights or {}

    def forward(self, batch: dict[str, Tensor], task: str, gold_weight: float = 1.0) -> StepLosses:
        """The batch's losses; the forward pass runs under the training precision. A batch with
        `teacher_embeddings` (a batch of a task that `distillation.embedding_tasks` covers) adds the
        embedding-distillation term.

        A batch with `teacher_probs` (a task with a teacher) is trained on gold_weight x gold + (1 - gold_weight)
        x teacher through its type's `distillation_loss`; class weights apply to the gold-only loss. A batch with
        `foreign_labels.<other>` / `foreign_probs.<other>` also runs `other`'s head and adds its loss against its
        teacher on these texts.
        """
        others = [key.removeprefix(FOREIGN_LABELS) for key in batch if key.startswith(FOREIGN_LABELS)]
        with precision_context(self.model.device, self.precision):
            out = self.model(batch["input_ids"], batch["attention_mask"], tasks=[task, *others])
        task_type, logits = self.model.task_types[task], out.logits[task]
        if "teacher_probs" in batch:
            loss = task_type.distillation_loss(logits, batch["labels"], batch["teacher_probs"], gold_weight)
        else:
            loss = task_type.loss(logits, batch["labels"], self.class_weights[task])
        weighted = self.weighting(task, loss) if self.weighting is not None else loss * self.loss_weights[task]
        distilled = None
        if "teacher_embeddings" in batch:
            distilled = self.distillation.loss(out.sentence_embedding, batch["teacher_embeddings"])
            weighted = weighted + self.distillation.config.embedding_weight * distilled
        cross = None
        for other in others:
            other_loss = self.model.task_types[other].distillation_loss(
                out.logits[other], batch[FOREIGN_LABELS + other], batch[FOREIGN_PROBS + other], 0.0
            )
            weighted = weighted + self.cross_task_weights[other] * other_loss
            cross = other_loss if cross is None else cross + other_loss
        return StepLosses(loss, weighted, distilled, cross)
