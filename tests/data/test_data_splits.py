from __future__ import annotations

from collections import Counter

import pytest

from mtsent.data import SentenceExample, TokenExample, split_examples


def make(n_pos: int, n_neg: int) -> list[SentenceExample]:
    return [SentenceExample(f"p{i}", "pos") for i in range(n_pos)] + [
        SentenceExample(f"n{i}", "neg") for i in range(n_neg)
    ]


def test_split_is_stable_for_a_seed_and_changes_with_it() -> None:
    data = make(300, 100)
    a, b, c = split_examples(data, seed=1), split_examples(data, seed=1), split_examples(data, seed=2)
    assert a == b
    assert a["train"] != c["train"]


def test_split_partitions_exactly_with_requested_sizes() -> None:
    data = make(300, 100)
    parts = split_examples(data, (0.7, 0.15, 0.15), seed=13)
    assert sorted(e.text for p in parts.values() for e in p) == sorted(e.text for e in data)
    assert [len(parts[k]) for k in ("train", "dev", "test")] == [280, 60, 60]


def test_split_is_stratified() -> None:
    parts = split_examples(make(300, 100), seed=5)
    for name, part in parts.items():
        share = Counter(e.label for e in part)["pos"] / len(part)
        assert share == pytest.approx(0.75, abs=0.01), name


def test_token_examples_split_without_stratification() -> None:
    data = [TokenExample([f"w{i}"], ["O"]) for i in range(10)]
    parts = split_examples(data, (0.6, 0.2, 0.2), seed=0)
    assert [len(parts[k]) for k in ("train", "dev", "test")] == [6, 2, 2]


def test_bad_ratios() -> None:
    with pytest.raises(ValueError, match="sum"):
        split_examples(make(3, 3), (0.5, 0.5, 0.5))
