"""Sentence similarity: a score for a pair of texts, the cosine of their sentence embeddings.

Data: TSV, CSV or JSONL with two text columns (`text_column`, `text_pair_column`) and a numeric gold score
(`label_column`), such as GLUE STS-B. There are no head parameters: the loss trains the shared encoder's
sentence embedding itself, which is what keeps `encode()` good while other tasks train the same encoder.
Loss (head `options`): CoSENT (Su, 2022; `loss: cosent`, the default, `scale` 20 as in sentence-transformers'
CoSENTLoss), which only asks that pairs be ordered like their gold scores, or the mean squared error between the
cosine and the gold score mapped onto 0..1 (`loss: mse` with `score_range: [low, high]`).
Metrics: Spearman (main) and Pearson correlation of cosine and gold, as fractions.
Prediction: a pair task answers pairs, not single texts, so `MultiTaskModel.predict` leaves it out and
`MultiTaskModel.similarity(texts_a, texts_b)` gives each pair's cosine in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from mtsent.batching import DataCollator, pad_batch
from mtsent.config import HeadConfig, register_task_type
from mtsent.data.alignment import encode_texts
from mtsent.data.errors import DataError
from mtsent.data.examples import PairExample
from mtsent.encoder import EncoderOutput, SentenceEncoder
from mtsent.metrics import similarity_metrics
from mtsent.spans import Word
from mtsent.tasks.base import LongTexts, TaskType, WindowOutput

__all__ = ["PairCollator", "SentenceSimilarity", "SimilarityOptions", "cosent_loss"]


class SimilarityOptions(BaseModel):
    """`options` of a sentence_similarity head."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    loss: Literal["cosent", "mse"] = "cosent"
    scale: float = Field(20.0, gt=0, description="cosent: cosines are multiplied by this (sentence-transformers: 20)")
    score_range: tuple[float, float] | None = Field(
        None, description="mse: the gold scale [low, high], mapped linearly onto a cosine of 0..1"
    )

    @model_validator(mode="after")
    def _range_for_mse(self) -> SimilarityOptions:
        if self.loss == "mse" and self.score_range is None:
            raise ValueError("loss 'mse' needs score_range: [low, high], the gold scale (STS-B: [0, 5])")
        if self.score_range is not None and self.score_range[0] >= self.score_range[1]:
            raise ValueError(f"score_range must be [low, high] with low < high, got {list(self.score_range)}")
        return self


def cosent_loss(cosines: Tensor, scores: Tensor, scale: float = 20.0) -> Tensor:
    """CoSENT: log(1 + sum over pairs (i, j) with gold_i < gold_j of exp(scale * (cos_i - cos_j))).

    Every pair the gold ranks below another should get the lower cosine; only the order counts, so gold scores
    on any scale work unchanged.
    """
    x = cosines.float() * scale
    diff = x[:, None] - x[None, :]
    diff = diff.masked_fill(~(scores[:, None] < scores[None, :]), float("-inf"))
    return torch.logsumexp(torch.cat([diff.new_zeros(1), diff.flatten()]), dim=0)


class PairCollator(DataCollator):
    """Pads every first text and then every second text into one batch of 2N rows, with N float scores."""

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Tensor]:
        rows = [{"input_ids": f["input_ids"], "attention_mask": f["attention_mask"]} for f in features]
        rows += [{"input_ids": f["pair_input_ids"], "attention_mask": f["pair_attention_mask"]} for f in features]
        batch = pad_batch(rows, self.pad_token_id, self.pad_to_multiple_of)
        batch["labels"] = torch.tensor([float(f["labels"]) for f in features], dtype=torch.float32)
        return batch


@register_task_type
class SentenceSimilarity(TaskType):
    name = "sentence_similarity"
    level = "pair"
    formats = ("tsv", "csv", "jsonl")
    main_metric = "spearman"
    reads_all_windows = False
    texts_per_example = 2
    options_model = SimilarityOptions

    @classmethod
    def check_config(cls, config: HeadConfig) -> None:
        if config.labels:
            raise ValueError(f"a {cls.name} head takes no labels (its gold is a score), got {config.labels}")
        if config.hidden_dim is not None:
            raise ValueError(f"a {cls.name} head has no layers: it compares sentence embeddings; drop hidden_dim")

    @classmethod
    def example_labels(cls, example: PairExample) -> Sequence[str]:
        return ()

    @classmethod
    def label_list(cls, seen: set[str]) -> list[str]:
        return []

    def build_head(self, sentence_dim: int, token_dim: int, encoder: SentenceEncoder | None = None) -> nn.Module:
        return nn.Identity()

    def head_input(self, encoded: EncoderOutput) -> Tensor:
        return encoded.sentence_embedding

    def logits(self, head: nn.Module, encoded: EncoderOutput) -> Tensor:
        """The cosine of each pair: row i of the batch's first half against row i of its second half."""
        embeddings = head(self.head_input(encoded)).float()
        if embeddings.size(0) % 2:
            raise ValueError(f"a {self.name} batch holds pairs: expected an even number of rows, got {len(embeddings)}")
        first, second = embeddings.chunk(2)
        return nn.functional.cosine_similarity(first, second, dim=-1)

    def loss(self, logits: Tensor, labels: Tensor, class_weights: Tensor | None = None) -> Tensor:
        if self.options.loss == "cosent":
            return cosent_loss(logits, labels, self.options.scale)
        low, high = self.options.score_range
        return nn.functional.mse_loss(logits.float(), (labels.float() - low) / (high - low))

    def tokenize(
        self, tokenizer: Any, examples: Sequence[PairExample], max_length: int, label_all_subwords: bool = False
    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        if self.options.score_range is not None:
            low, high = self.options.score_range
            for e in examples:
                if not low <= e.score <= high:
                    where = e.source or "<example>"
                    raise DataError(f"{where}: score {e.score} is outside score_range [{low}, {high}]")
        first = encode_texts(tokenizer, [e.text for e in examples], max_length)
        second = encode_texts(tokenizer, [e.text_pair for e in examples], max_length)
        features = [
            {**a, "pair_input_ids": b["input_ids"], "pair_attention_mask": b["attention_mask"], "labels": e.score}
            for a, b, e in zip(first, second, examples)
        ]
        return features, {}

    def collator(self, tokenizer: Any) -> PairCollator:
        return PairCollator(tokenizer)

    def decode_batch(self, logits: Tensor) -> list[float]:
        return logits.float().cpu().tolist()

    def score(
        self, examples: Sequence[PairExample], features: Sequence[dict[str, Any]], outputs: Sequence[float]
    ) -> dict:
        return similarity_metrics([e.score for e in examples], list(outputs))

    def decode(self, text: str, words: list[Word], outputs: list[WindowOutput], long_texts: LongTexts) -> Any:
        """Never called: `predict` answers single texts and leaves pair tasks out."""
        raise TypeError(f"a {self.name} task answers pairs of texts: use MultiTaskModel.similarity(texts_a, texts_b)")
