"""What the two classification types share: a label set, a classification head, cross-entropy (also against
a teacher's annealed distribution), argmax."""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import Tensor, nn

from mtsent.batching import IGNORE_INDEX
from mtsent.config import HeadConfig
from mtsent.encoder import EncoderOutput, SentenceEncoder
from mtsent.heads import ClassificationHead
from mtsent.tasks.base import TaskType

__all__ = ["ClassificationType"]


class ClassificationType(TaskType):
    """A head that scores each of `labels` for its input features, trained with cross-entropy (against the gold
    labels, or against a teacher's distribution annealed towards them: `distillation_loss`)."""

    distillable = True

    @classmethod
    def check_config(cls, config: HeadConfig) -> None:
        if len(config.labels) < 2:
            raise ValueError(f"a {cls.name} head needs at least 2 labels, got {len(config.labels)}")

    @abstractmethod
    def _input_dim(self, sentence_dim: int, token_dim: int) -> int:
        """The size of the features `head_input` returns."""

    def build_head(self, sentence_dim: int, token_dim: int, encoder: SentenceEncoder | None = None) -> nn.Module:
        in_dim = self._input_dim(sentence_dim, token_dim)
        return ClassificationHead.from_options(in_dim, len(self.labels), self.config)

    @abstractmethod
    def head_input(self, encoded: EncoderOutput) -> Tensor: ...

    def loss(self, logits: Tensor, labels: Tensor, class_weights: Tensor | None = None) -> Tensor:
        """Cross-entropy in float32 over (batch, classes) or (batch, seq, classes), `IGNORE_INDEX` left out."""
        logits = logits.float()
        weight = class_weights.to(logits.device) if class_weights is not None else None
        return nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), labels.reshape(-1), weight=weight, ignore_index=IGNORE_INDEX
        )

    def distillation_target(self, labels: Tensor, teacher_probs: Tensor, gold_weight: float) -> Tensor:
        """Teacher annealing (Clark et al., 2019): gold_weight x one-hot(gold) + (1 - gold_weight) x teacher,
        one row per label the loss reads (`labels` != IGNORE_INDEX)."""
        gold = nn.functional.one_hot(labels[labels != IGNORE_INDEX], teacher_probs.size(-1)).float()
        return gold_weight * gold + (1.0 - gold_weight) * teacher_probs.float()

    def distillation_loss(self, logits: Tensor, labels: Tensor, teacher_probs: Tensor, gold_weight: float) -> Tensor:
        """Cross-entropy against the annealed target, averaged over the rows the loss reads (float32)."""
        rows = logits.float()[labels != IGNORE_INDEX]
        target = self.distillation_target(labels, teacher_probs.to(rows.device), gold_weight)
        return -(target * torch.log_softmax(rows, dim=-1)).sum(dim=-1).mean()

    def decode_batch(self, logits: Tensor) -> list[Tensor]:
        """The best label id of each row (of each position, for token logits)."""
        return list(logits.float().argmax(dim=-1).cpu())
