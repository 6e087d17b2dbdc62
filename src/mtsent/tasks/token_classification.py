"""Token classification (named entities): a BIO tag per word, read from the token embeddings.

Data: CoNLL files (one `token ... TAG` line per word). Training labels sit on each word's first sub-word.
Metrics: entity-level precision, recall and F1 (main; conlleval semantics via seqeval). Prediction: each word's
tag (probabilities averaged over the windows that hold the word) and the entity spans with character offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from mtsent.batching import first_subwords
from mtsent.config import register_task_type
from mtsent.data.alignment import align_token_labels
from mtsent.data.examples import TokenExample
from mtsent.encoder import EncoderOutput
from mtsent.metrics import token_metrics
from mtsent.spans import EntitySpan, Word, entity_spans, parse_tag
from mtsent.tasks.base import LongTexts, WindowOutput
from mtsent.tasks.classification import ClassificationType

__all__ = ["TokenClassification", "TokenPrediction", "bio_label_list"]


def bio_label_list(tags: set[str]) -> list[str]:
    """``O`` first, then ``B-X``/``I-X`` for every entity type (both, so I- is never unknown)."""
    types = sorted({kind for kind in (parse_tag(t)[1] for t in tags) if kind is not None})
    return ["O"] + [f"{prefix}-{t}" for t in types for prefix in ("B", "I")]


@dataclass
class TokenPrediction:
    """A token task's answer: entity spans, plus the words and the tag each received."""

    entities: list[EntitySpan]
    words: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"entities": [e.to_dict() for e in self.entities], "words": self.words, "tags": self.tags}

    def summary(self) -> str:
        """One line for a table: `Angela Merkel [PER 0.98], Paris [LOC 0.91]`."""
        return ", ".join(f"{e.text} [{e.type} {e.score:.2f}]" for e in self.entities) or "(no entities)"


@register_task_type
class TokenClassification(ClassificationType):
    name = "token_classification"
    level = "token"
    formats = ("conll",)
    main_metric = "f1"
    reads_all_windows = True

    @classmethod
    def example_labels(cls, example: TokenExample) -> Sequence[str]:
        return example.tags

    @classmethod
    def label_list(cls, seen: set[str]) -> list[str]:
        return bio_label_list(seen)

    def _input_dim(self, sentence_dim: int, token_dim: int) -> int:
        return token_dim

    def head_input(self, encoded: EncoderOutput) -> Tensor:
        return encoded.token_embeddings

    def tokenize(
        self, tokenizer: Any, examples: Sequence[TokenExample], max_length: int, label_all_subwords: bool = False
    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        label2id = {label: i for i, label in enumerate(self.labels)}
        features, stats = align_token_labels(tokenizer, list(examples), label2id, max_length, label_all_subwords)
        truncation = {
            "words": stats.words_total,
            "words_truncated": stats.words_truncated,
            "sentences_truncated": stats.sentences_truncated,
        }
        return features, truncation

    def score(
        self, examples: Sequence[TokenExample], features: Sequence[dict[str, Any]], outputs: Sequence[Tensor]
    ) -> dict:
        """Scored per word (its first sub-word's tag); words cut off by truncation count as `O`."""
        pred_tags = []
        for example, feature, ids in zip(examples, features, outputs):
            tags = ["O"] * len(example.tags)
            for pos, w in first_subwords(feature["word_ids"]):
                tags[w] = self.labels[int(ids[pos])]
            pred_tags.append(tags)
        return token_metrics([list(e.tags) for e in examples], pred_tags)

    def decode(
        self, text: str, words: list[Word], outputs: list[WindowOutput], long_texts: LongTexts
    ) -> TokenPrediction:
        """Each word's tag probabilities averaged over the windows that hold it (read at its first sub-word)."""
        sums = torch.zeros(len(words), len(self.labels))
        counts = torch.zeros(len(words))
        for out in outputs:
            firsts = first_subwords(out.window.word_ids)
            if not firsts:
                continue
            positions = torch.tensor([p for p, _ in firsts])
            word_index = torch.tensor([w for _, w in firsts])
            counts.index_add_(0, word_index, torch.ones(len(firsts)))
            sums.index_add_(0, word_index, torch.softmax(out.logits[positions], dim=-1))
        avg = sums / counts.clamp(min=1).unsqueeze(-1)
        unseen = counts == 0  # a word the tokenizer turned into no sub-word at all
        best = avg.argmax(dim=-1)
        tags = ["O" if unseen[j] else self.labels[int(best[j])] for j in range(len(words))]
        scores = [1.0 if unseen[j] else float(avg[j, best[j]]) for j in range(len(words))]
        return TokenPrediction(
            entities=entity_spans(text, words, tags, scores), words=[w.text for w in words], tags=tags
        )
