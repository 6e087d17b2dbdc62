"""Token classification (named entities): a BIO tag per word, read from the token embeddings.

Data: CoNLL files (one `token ... TAG` line per word). Training labels sit on each word's first sub-word.
Metrics: entity-level precision, recall and F1 (main; conlleval semantics via seqeval). Prediction: each word's
tag (probabilities averaged over the windows that hold the word) and the entity spans with character offsets.
Decoding (`decoding` in the head config): each word's most probable tag (`argmax`), or the most probable valid
BIO sequence (`viterbi`, `mtsent.decoding`); evaluation, `mtsent evaluate` and `predict` all decode the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mtsent.batching import IGNORE_INDEX, first_subwords
from mtsent.config import HeadConfig, register_task_type
from mtsent.data.alignment import align_token_labels
from mtsent.data.examples import TokenExample
from mtsent.decoding import bio_constraints, viterbi
from mtsent.encoder import EncoderOutput, SentenceEncoder
from mtsent.heads import TopLayersHead
from mtsent.metrics import token_metrics
from mtsent.spans import EntitySpan, Word, entity_spans, is_bio_tag, parse_tag
from mtsent.tasks.base import LongTexts, WindowOutput
from mtsent.tasks.classification import ClassificationType

__all__ = ["TokenClassification", "TokenOptions", "TokenPrediction", "bio_label_list"]


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

    def summary(self, min_score: float = 0.0) -> str:
        """One line for a table: `Angela Merkel [PER 0.98], Paris [LOC 0.91]`; entities below `min_score` left out."""
        kept = [e for e in self.entities if e.score >= min_score]
        return ", ".join(f"{e.text} [{e.type} {e.score:.2f}]" for e in kept) or "(no entities)"


class TokenOptions(BaseModel):
    """`options` of a token_classification head."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    own_layers: int = Field(
        0,
        ge=0,
        description="copies of the backbone's top N layers that only this head reads through (from the states of "
        "the layer below them); 0 = read the shared encoder's last layer",
    )


@register_task_type
class TokenClassification(ClassificationType):
    name = "token_classification"
    level = "token"
    formats = ("conll",)
    main_metric = "f1"
    reads_all_windows = True
    decodings = ("argmax", "viterbi")
    options_model = TokenOptions

    @classmethod
    def check_config(cls, config: HeadConfig) -> None:
        super().check_config(config)
        if config.decoding != "viterbi":
            return
        labels = config.labels
        not_bio = [label for label in labels if not is_bio_tag(label)]
        if not_bio or "O" not in labels:
            raise ValueError(
                "decoding 'viterbi' needs BIO labels (O, B-TYPE, I-TYPE); "
                + (f"not BIO: {not_bio}" if not_bio else "'O' is missing")
            )
        orphans = [label for label in labels if label.startswith("I-") and f"B-{label[2:]}" not in labels]
        if orphans:
            raise ValueError(f"decoding 'viterbi' needs the B- label of every I- label; missing for {orphans}")

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

    @property
    def needs_hidden_states(self) -> bool:
        return self.options.own_layers > 0

    def build_head(self, sentence_dim: int, token_dim: int, encoder: SentenceEncoder | None = None) -> nn.Module:
        """A classifier on the token states; with `own_layers`, behind copies of the encoder's top layers."""
        classifier = super().build_head(sentence_dim, token_dim)
        if not self.options.own_layers:
            return classifier
        if encoder is None:
            raise ValueError(f"task {self.config.name!r}: a head with own_layers is built from the model's encoder")
        return TopLayersHead(encoder.top_layers(self.options.own_layers), classifier, encoder.backbone.config)

    def logits(self, head: nn.Module, encoded: EncoderOutput) -> Tensor:
        if not self.options.own_layers:
            return super().logits(head, encoded)
        if encoded.hidden_states is None or encoded.attention_mask is None:
            raise ValueError(f"task {self.config.name!r} reads the encoder's hidden states; none were computed")
        return head(encoded.hidden_states[-1 - self.options.own_layers], encoded.attention_mask)

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

    def teacher_targets(
        self,
        features: Sequence[dict[str, Any]],
        teacher_features: Sequence[dict[str, Any]],
        teacher_logits: list[Tensor],
    ) -> list[Tensor]:
        """Per labelled sub-word of the student, the teacher's distribution for its word (read at the word's first
        sub-word in the teacher's own tokenisation, so the two tokenizers may differ). A position the teacher
        cannot speak for keeps its gold label: a later sub-word of a word (`label_all_subwords`), or a word the
        teacher's truncation cut off."""
        targets = []
        for feature, teacher_feature, logits in zip(features, teacher_features, teacher_logits):
            by_word = {w: pos for pos, w in first_subwords(teacher_feature["word_ids"])}
            probs = torch.softmax(logits.float(), dim=-1)
            firsts = dict(first_subwords(feature["word_ids"]))
            rows = []
            for pos, label in enumerate(feature["labels"]):
                if label == IGNORE_INDEX:
                    continue
                word = firsts.get(pos)
                if word is not None and word in by_word:
                    rows.append(probs[by_word[word]])
                else:
                    rows.append(torch.nn.functional.one_hot(torch.tensor(label), len(self.labels)).float())
            targets.append(torch.stack(rows) if rows else torch.zeros(0, len(self.labels)))
        return targets

    def foreign_labels(self, word_ids: Sequence[int | None]) -> list[int]:
        """Each word's first sub-word, where training labels sit (later sub-words are never trained on gold)."""
        labels = [IGNORE_INDEX] * len(word_ids)
        for pos, _ in first_subwords(word_ids):
            labels[pos] = 0
        return labels

    def decode_batch(self, logits: Tensor) -> list[Tensor]:
        """Each row's log-probabilities per position (float32, CPU): `score` reads them at each word's first
        sub-word and decodes the word sequence (a Viterbi path needs the whole sentence, not one position)."""
        return list(torch.log_softmax(logits.float(), dim=-1).cpu())

    def word_label_ids(self, log_probs: Tensor) -> list[int]:
        """A sentence's label ids from its words' log-probabilities (words, labels), as `decoding` says."""
        if self.config.decoding == "viterbi":
            start, transitions = bio_constraints(tuple(self.labels))
            return viterbi(log_probs.double().numpy(), start, transitions).tolist()
        return log_probs.argmax(dim=-1).tolist()

    def _word_log_probs(self, log_probs: Tensor, positions: list[tuple[int, int]], n_words: int) -> Tensor:
        """(words, labels) rows at each word's first sub-word; a word with no sub-word (cut off by truncation, or
        nothing the tokenizer keeps) is `O` for certain, so both decodings tag it `O`."""
        table = torch.full((n_words, len(self.labels)), -torch.inf)
        table[:, self.labels.index("O") if "O" in self.labels else 0] = 0.0
        if positions:
            table[[w for _, w in positions]] = log_probs[[p for p, _ in positions]]
        return table

    def predicted_tags(
        self, examples: Sequence[TokenExample], features: Sequence[dict[str, Any]], outputs: Sequence[Tensor]
    ) -> list[list[str]]:
        """Each example's word tags from `decode_batch`'s outputs."""
        tags = []
        for example, feature, log_probs in zip(examples, features, outputs):
            table = self._word_log_probs(log_probs, first_subwords(feature["word_ids"]), len(example.tags))
            tags.append([self.labels[i] for i in self.word_label_ids(table)])
        return tags

    def score(
        self, examples: Sequence[TokenExample], features: Sequence[dict[str, Any]], outputs: Sequence[Tensor]
    ) -> dict:
        """Scored per word (its first sub-word's tag); words cut off by truncation count as `O`."""
        gold = [list(e.tags) for e in examples]
        return token_metrics(gold, self.predicted_tags(examples, features, outputs))

    def decode(
        self, text: str, words: list[Word], outputs: list[WindowOutput], long_texts: LongTexts
    ) -> TokenPrediction:
        """Each word's tag probabilities averaged over the windows that hold it (read at its first sub-word),
        then decoded as `decoding` says; a word's score is its tag's probability."""
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
        seen = [(j, j) for j in range(len(words)) if counts[j] > 0]  # a word the tokenizer kept: its own row
        best = self.word_label_ids(self._word_log_probs(avg.clamp_min(1e-30).log(), seen, len(words)))
        tags = [self.labels[i] for i in best]
        scores = [float(avg[j, best[j]]) if counts[j] > 0 else 1.0 for j in range(len(words))]
        return TokenPrediction(
            entities=entity_spans(text, words, tags, scores), words=[w.text for w in words], tags=tags
        )
