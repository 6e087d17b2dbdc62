"""Embedding distillation: keep the student's sentence embedding near the starting encoder's on the training texts.

The teacher is the encoder as training starts (frozen). Its embedding of every training text is computed once,
before the first step, and cached, rather than by a second forward pass at every step: a run sees each text
several times (configs/multitask_sts.yaml: 7,500 steps x 32 = 240,000 examples against 90,154 texts), so the
cache costs about a third of the teacher passes, and no second encoder stays in memory (the cache is 90,154 x 384
float32 = 138 MB). The cached rows follow the encoder inputs of each training feature (`texts_per_example` rows
per feature), so the teacher sees exactly what the student sees, truncation included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mtsent.batching import bucketed_batches
from mtsent.encoder import SentenceEncoder
from mtsent.precision import eval_mode, precision_context
from mtsent.training.config import DistillationConfig

__all__ = ["EmbeddingDistillation"]


class EmbeddingDistillation:
    """The teacher's embeddings of each task's training features, and the loss that pulls the student to them."""

    def __init__(self, config: DistillationConfig, cache: dict[str, Tensor]) -> None:
        self.config = config
        self.cache = cache  # task -> (texts_per_example, features, dim)

    @classmethod
    @torch.no_grad()
    def from_teacher(
        cls,
        config: DistillationConfig,
        teacher: SentenceEncoder,
        tasks: dict[str, tuple[int, Sequence[dict[str, Any]], Callable[[Sequence[dict[str, Any]]], dict[str, Tensor]]]],
        precision: str,
        batch_size: int = 128,
    ) -> EmbeddingDistillation:
        """Run `teacher` once over every task's features; `tasks` maps a task to (texts per example, features,
        collator). no_grad rather than inference_mode: the cached rows are constants of the student's backward."""
        cache: dict[str, Tensor] = {}
        with eval_mode(teacher), precision_context(teacher.device, precision):
            for name, (texts, features, collate) in tasks.items():
                rows = torch.empty(texts, len(features), teacher.dim)
                for batch in bucketed_batches([len(f["input_ids"]) for f in features], batch_size, 0, shuffle=False):
                    inputs = collate([features[i] for i in batch])
                    out = teacher(inputs["input_ids"].to(teacher.device), inputs["attention_mask"].to(teacher.device))
                    rows[:, batch] = out.sentence_embedding.float().cpu().view(texts, len(batch), -1)
                cache[name] = rows
        return cls(config, cache)

    def targets(self, task: str, indices: Sequence[int]) -> Tensor:
        """The teacher rows of a batch of `task`'s features, in the batch's row order (text k of example i at
        row k * n + i)."""
        return self.cache[task][:, list(indices)].flatten(0, 1)

    def loss(self, student: Tensor, teacher: Tensor) -> Tensor:
        """Mean (1 - cosine) or mean squared error between the student's and the teacher's embeddings."""
        student, teacher = student.float(), teacher.to(student.device, torch.float32)
        if self.config.loss == "cosine":
            return (1 - nn.functional.cosine_similarity(student, teacher, dim=-1)).mean()
        return nn.functional.mse_loss(student, teacher)
