"""Batching: which rows share a batch (one function per algorithm) and padding."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtsent.batching import (
    DataCollator,
    bucketed_batches,
    invariant_rows,
    invariant_width,
    pad_batch,
    padded_rows,
    padding_ratio,
    random_batches,
    token_budget_batches,
    tokenize_texts,
)


def test_collator_sentence_batch(tokenizer) -> None:
    collate = DataCollator(tokenizer)
    batch = collate(
        [
            {"input_ids": [101, 5, 102], "attention_mask": [1, 1, 1], "labels": 1},
            {"input_ids": [101, 102], "attention_mask": [1, 1], "labels": 0},
        ]
    )
    assert batch["input_ids"].tolist() == [[101, 5, 102], [101, 102, tokenizer.pad_token_id]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [1, 0]


def test_collator_token_batch_pads_labels_and_drops_word_ids() -> None:
    collate = DataCollator(pad_token_id=7, pad_to_multiple_of=4)
    batch = collate(
        [
            {
                "input_ids": [1, 2, 3],
                "attention_mask": [1, 1, 1],
                "labels": [-100, 4, -100],
                "word_ids": [None, 0, None],
            },
            {"input_ids": [1, 3], "attention_mask": [1, 1], "labels": [-100, -100], "word_ids": [None, None]},
        ]
    )
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert batch["input_ids"].tolist() == [[1, 2, 3, 7], [1, 3, 7, 7]]
    assert batch["labels"].tolist() == [[-100, 4, -100, -100], [-100, -100, -100, -100]]


def test_collator_needs_pad_id() -> None:
    with pytest.raises(ValueError, match="pad"):
        DataCollator(object())


def test_bucketed_batches_cover_every_index_once_and_are_deterministic() -> None:
    lengths = [random.Random(i).randint(1, 100) for i in range(1000)]
    batches = bucketed_batches(lengths, 32, seed=3, chunk_multiplier=5)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches == bucketed_batches(lengths, 32, seed=3, chunk_multiplier=5)
    assert batches != bucketed_batches(lengths, 32, seed=4, chunk_multiplier=5)
    assert all(len(b) <= 32 for b in batches)
    assert padding_ratio(lengths, batches) < padding_ratio(lengths, random_batches(1000, 32, seed=3)) / 2


def test_eval_batches_are_sorted() -> None:
    lengths = [5, 1, 3, 2, 4]
    assert bucketed_batches(lengths, 2, seed=0, shuffle=False) == [[1, 3], [2, 4], [0]]


def test_padding_ratio() -> None:
    assert padding_ratio([2, 4, 3, 3], [[0, 1], [2, 3]]) == pytest.approx(2 / 14)
    assert padding_ratio([], []) == 0.0


def test_token_budget_batches() -> None:
    lengths = [5, 50, 3, 20, 20, 7, 300, 1]
    batches = token_budget_batches(lengths, max_tokens=60)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert [lengths[b[0]] for b in batches] == sorted((lengths[b[0]] for b in batches), reverse=True)
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 60
    assert all(len(b) <= 2 for b in token_budget_batches(lengths, max_tokens=10_000, max_batch=2))
    with pytest.raises(ValueError):
        token_budget_batches(lengths, max_tokens=0)


def test_fixed_size_batches_without_a_budget_are_sorted_longest_first_and_complete():
    batches = token_budget_batches([3, 9, 1, 9, 5], max_tokens=None, max_batch=2)
    assert batches == [[1, 3], [4, 0], [2]]
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        token_budget_batches([1], None, 0)


@given(st.lists(st.integers(1, 700), min_size=1, max_size=60), st.integers(16, 4096), st.integers(1, 40))
@settings(max_examples=60, deadline=None)
def test_invariant_batches_hold_one_width_within_budget(lengths, budget, max_batch) -> None:
    batches = token_budget_batches(lengths, budget, max_batch, invariant=True)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        widths = {invariant_width(lengths[i]) for i in batch}
        assert len(widths) == 1 and len(batch) <= max_batch
        assert len(batch) == 1 or len(batch) * widths.pop() <= budget


@given(st.integers(1, 5000))
def test_invariant_width_depends_on_the_row_alone(length: int) -> None:
    width = invariant_width(length)
    assert length <= width < max(1.5 * length + 16, 2 * 256) and width % 16 == 0
    assert invariant_width(width) == width  # a padded row stays in its bucket


def test_pad_batch_to_invariant_width() -> None:
    batch = pad_batch([{"input_ids": [1, 2, 3]}, {"input_ids": [4] * 17}], pad_token_id=0, invariant=True)
    assert batch["input_ids"].shape == (2, 32)


def test_padded_rows_only_inside_the_context() -> None:
    seen: list[int] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.size(0))
        return x * 2

    x = torch.ones(3, 4)
    assert torch.equal(padded_rows(fn, x), x * 2) and seen == [3]
    with invariant_rows():
        assert torch.equal(padded_rows(fn, x), x * 2)
        assert torch.equal(padded_rows(fn, torch.ones(2, 5, 4)), torch.ones(2, 5, 4) * 2)  # token rows: as they are
    assert seen == [3, 16, 2]


def test_tokenising_from_two_threads_keeps_each_calls_settings(encoder) -> None:
    """A fast tokenizer stores truncation on its Rust backend at every call: windows of a long text (counted
    untruncated) computed while another thread tokenises with truncation must still be the single-thread ones."""
    import threading

    from mtsent.batching import text_windows

    long_words = [("word " * 600).split()]  # about 600 sub-words: several windows, if counted untruncated
    expected = [w.input_ids for w in text_windows(encoder.tokenizer, long_words, 64)]
    stop = threading.Event()

    def truncating() -> None:
        while not stop.is_set():
            encoder.tokenize(["a short sentence"] * 8)

    other = threading.Thread(target=truncating)
    other.start()
    try:
        seen = [[w.input_ids for w in text_windows(encoder.tokenizer, long_words, 64)] for _ in range(300)]
    finally:
        stop.set()
        other.join()
    assert all(windows == expected for windows in seen)


TEXTS = [
    "A plain sentence.",
    "",
    "   ",
    "Héllo wörld ☃ 日本語 — naïve café",
    "EU rejects German call to boycott British lamb .",
    "word " * 400,  # longer than the window: truncated
    "[CLS] special [SEP] tokens typed as text",
]


@pytest.mark.parametrize("threads", [1, 2])
def test_tokenize_texts_returns_what_the_tokenizer_call_returns(tokenizer, threads, monkeypatch) -> None:
    """Same ids, masks and token types as `tokenizer(texts, truncation=True, max_length=...)`, in input order,
    on one thread and split across threads (600 texts: more than two chunks' worth), with the truncated texts
    reported."""
    import mtsent.batching as batching

    monkeypatch.setattr(batching, "TOKENIZE_CHUNK", 50)
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    texts = [f"{t} {i}" for i in range(86) for t in TEXTS]
    expected = tokenizer(texts, truncation=True, max_length=64)
    got = tokenize_texts(tokenizer, texts, 64)
    assert set(got.keys()) == set(expected.keys()) == {"input_ids", "token_type_ids", "attention_mask"}
    for key in expected:
        assert got[key] == expected[key], key
    assert [bool(e.overflowing) for e in got.encodings] == [bool(e.overflowing) for e in expected.encodings]
    assert sum(bool(e.overflowing) for e in got.encodings) == 86


def test_tokenize_texts_ignores_settings_left_on_the_backend(tokenizer) -> None:
    """The packaged tokenizer.json pads to 128 and truncates at 128; a call to `tokenize_texts` uses its own."""
    backend = tokenizer.backend_tokenizer
    backend.enable_padding(length=128)
    backend.enable_truncation(8)
    got = tokenize_texts(tokenizer, ["a short one", "word " * 40], 32)
    assert [len(ids) for ids in got["input_ids"]] == [5, 32]


def test_tokenize_texts_without_a_rust_backend_takes_the_tokenizer_call() -> None:
    calls = []

    class Slow:
        def __call__(self, texts, truncation, max_length):
            calls.append((texts, truncation, max_length))
            return {"input_ids": [[1]] * len(texts)}

    assert tokenize_texts(Slow(), ("a", "b"), 16) == {"input_ids": [[1], [1]]}
    assert calls == [(["a", "b"], True, 16)]
