"""What the two classification types share: a label set, a classification head, cross-entropy, argmax."""

from __future__ import annotations

from abc import abstractmethod

from torch import Tensor, nn

from mtsent.batching import IGNORE_INDEX
from mtsent.config import HeadConfig
from mtsent.encoder import EncoderOutput
from mtsent.heads import ClassificationHead
from mtsent.tasks.base import TaskType

__all__ = ["ClassificationType"]


class ClassificationType(TaskType):
    """A head that scores each of `labels` for its input features, trained with cross-entropy."""

    @classmethod
    def check_config(cls, config: HeadConfig) -> None:
        if len(config.labels) < 2:
            raise ValueError(f"a {cls.name} head needs at least 2 labels, got {len(config.labels)}")

    @abstractmethod
    def _input_dim(self, sentence_dim: int, token_dim: int) -> int:
        """The size of the features `head_input` returns."""

    def build_head(self, sentence_dim: int, token_dim: int) -> nn.Module:
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

    def decode_batch(self, logits: Tensor) -> list[Tensor]:
        """The best label id of each row (of each position, for token logits)."""
        return list(logits.float().argmax(dim=-1).cpu())
