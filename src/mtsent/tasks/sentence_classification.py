"""Sentence classification: one label per text, read from the pooled sentence embedding.

Data: TSV, CSV, JSONL or a Hugging Face dataset of text/label pairs. Metrics: accuracy (main), macro-F1,
per-class scores and the confusion matrix. Prediction: the best label, its probability and every label's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from mtsent.config import register_task_type
from mtsent.data.alignment import encode_sentences
from mtsent.data.examples import SentenceExample
from mtsent.encoder import EncoderOutput
from mtsent.metrics import sentence_metrics
from mtsent.spans import Word
from mtsent.tasks.base import LongTexts, WindowOutput
from mtsent.tasks.classification import ClassificationType

__all__ = ["SentenceClassification", "SentencePrediction"]


@dataclass
class SentencePrediction:
    """A sentence task's answer: the best label, its probability and every label's probability."""

    label: str
    score: float
    scores: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self, min_score: float = 0.0) -> str:
        """One line for a table: `label (0.93)`; `uncertain (label 0.41)` below `min_score`, or when the answer is
        closer to chance than to certainty (below (1 + 1/labels) / 2: 0.75 with two labels, 0.625 with four), so
        that a coin-flip 0.51 between two labels is not shown as an answer."""
        if self.score < max(min_score, (1 + 1 / max(len(self.scores), 1)) / 2):
            return f"uncertain ({self.label} {self.score:.2f})"
        return f"{self.label} ({self.score:.2f})"


@register_task_type
class SentenceClassification(ClassificationType):
    name = "sentence_classification"
    level = "sentence"
    formats = ("tsv", "csv", "jsonl", "hf")
    main_metric = "accuracy"
    reads_all_windows = False

    @classmethod
    def example_labels(cls, example: SentenceExample) -> Sequence[str]:
        return (example.label,)

    @classmethod
    def label_list(cls, seen: set[str]) -> list[str]:
        return sorted(seen)

    def _input_dim(self, sentence_dim: int, token_dim: int) -> int:
        return sentence_dim

    def head_input(self, encoded: EncoderOutput) -> Tensor:
        return encoded.pooled

    def tokenize(
        self, tokenizer: Any, examples: Sequence[SentenceExample], max_length: int, label_all_subwords: bool = False
    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        label2id = {label: i for i, label in enumerate(self.labels)}
        return encode_sentences(tokenizer, list(examples), label2id, max_length), {}

    def teacher_targets(
        self,
        features: Sequence[dict[str, Any]],
        teacher_features: Sequence[dict[str, Any]],
        teacher_logits: list[Tensor],
    ) -> list[Tensor]:
        """The teacher's class distribution of each text: one (1, labels) row."""
        return [torch.softmax(logits.float(), dim=-1).unsqueeze(0) for logits in teacher_logits]

    def foreign_labels(self, word_ids: Sequence[int | None]) -> int:
        """The whole text: one row."""
        return 0

    def score(
        self, examples: Sequence[SentenceExample], features: Sequence[dict[str, Any]], outputs: Sequence[Tensor]
    ) -> dict:
        gold = [e.label for e in examples]
        pred = [self.labels[int(p)] for p in outputs]
        return sentence_metrics(gold, pred, self.labels)

    def decode(
        self, text: str, words: list[Word], outputs: list[WindowOutput], long_texts: LongTexts
    ) -> SentencePrediction:
        """The first window's probabilities, or (`long_texts="mean"`) their mean over every window."""
        read = outputs if long_texts == "mean" else outputs[:1]
        p = torch.stack([torch.softmax(o.logits, dim=-1) for o in read]).mean(dim=0)
        best = int(p.argmax())
        return SentencePrediction(self.labels[best], float(p[best]), dict(zip(self.labels, p.tolist())))
