from __future__ import annotations

import pytest

from mtsent.batching import IGNORE_INDEX
from mtsent.data import (
    DataError,
    SentenceExample,
    TokenExample,
    align_token_labels,
    encode_sentences,
)

LABELS = ["O", "B-PER", "I-PER", "B-MISC", "I-MISC"]
L2I = {t: i for i, t in enumerate(LABELS)}


def test_encode_sentences(tokenizer) -> None:
    feats = encode_sentences(
        tokenizer, [SentenceExample("Good film", "pos"), SentenceExample("word " * 50, "neg")], {"neg": 0, "pos": 1}, 8
    )
    assert feats[0]["input_ids"][0] == tokenizer.cls_token_id
    assert feats[0]["labels"] == 1 and feats[1]["labels"] == 0
    assert len(feats[1]["input_ids"]) == 8 and feats[1]["input_ids"][-1] == tokenizer.sep_token_id
    assert set(feats[0]) == {"input_ids", "attention_mask", "labels"}


def test_encode_unknown_label_names_source(tokenizer) -> None:
    with pytest.raises(DataError, match=r"f.tsv:3: label 'x' has no id"):
        encode_sentences(tokenizer, [SentenceExample("a", "x", "f.tsv:3")], {"a": 0}, 8)


def test_first_subword_gets_the_tag(tokenizer) -> None:
    ex = TokenExample(["Peter", "Supercalifragilistic", "x"], ["B-PER", "B-MISC", "O"])
    (feat,), stats = align_token_labels(tokenizer, [ex], L2I, max_length=64)
    word_ids = feat["word_ids"]
    n_pieces = word_ids.count(1)
    assert n_pieces > 3  # a word split into many sub-words
    expected = [IGNORE_INDEX, L2I["B-PER"], L2I["B-MISC"]] + [IGNORE_INDEX] * (n_pieces - 1) + [L2I["O"], IGNORE_INDEX]
    assert feat["labels"] == expected
    assert len(feat["labels"]) == len(feat["input_ids"]) == len(word_ids)
    assert (stats.words_total, stats.words_truncated, stats.sentences_truncated) == (3, 0, 0)


def test_label_all_subwords_turns_b_into_i(tokenizer) -> None:
    ex = TokenExample(["Supercalifragilistic"], ["B-MISC"])
    (feat,), _ = align_token_labels(tokenizer, [ex], L2I, max_length=64, label_all_subwords=True)
    inner = feat["labels"][1:-1]
    assert inner[0] == L2I["B-MISC"] and set(inner[1:]) == {L2I["I-MISC"]}
    assert feat["labels"][0] == feat["labels"][-1] == IGNORE_INDEX


def test_truncation_is_counted(tokenizer) -> None:
    long = TokenExample([f"w{i}" for i in range(20)], ["O"] * 20)
    short = TokenExample(["a", "b"], ["O", "O"])
    feats, stats = align_token_labels(tokenizer, [long, short], L2I, max_length=10)
    assert len(feats[0]["input_ids"]) == 10
    kept = {w for w in feats[0]["word_ids"] if w is not None}
    assert stats.words_total == 22
    assert stats.words_truncated == 20 - len(kept)
    assert stats.sentences_truncated == 1
    assert 0 < stats.word_truncation_rate < 1


def test_words_without_subwords_are_not_truncation(tokenizer) -> None:
    ex = TokenExample(["a", "\u200b", "b"], ["O", "B-PER", "O"])
    (feat,), stats = align_token_labels(tokenizer, [ex], L2I, max_length=32)
    assert 1 not in feat["word_ids"]
    assert stats.words_without_subwords == 1 and stats.words_truncated == 0


def test_slow_tokenizer_rejected() -> None:
    class Slow:
        is_fast = False

    with pytest.raises(TypeError, match="fast tokenizer"):
        align_token_labels(Slow(), [], L2I, 8)
