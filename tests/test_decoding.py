"""Constrained BIO decoding: Viterbi returns the most probable valid tag sequence (checked by brute force)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mtsent.decoding import bio_constraints, viterbi

LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


def is_valid(tags: list[str]) -> bool:
    """`I-X` only after `B-X` or `I-X` (and never first)."""
    before = "O"
    for tag in tags:
        if tag.startswith("I-") and before[2:] != tag[2:]:
            return False
        before = tag
    return True


def brute_force(scores: np.ndarray) -> float:
    """The best score over every valid sequence."""
    n, k = scores.shape
    return max(
        sum(scores[j, y] for j, y in enumerate(path))
        for path in itertools.product(range(k), repeat=n)
        if is_valid([LABELS[y] for y in path])
    )


def test_constraints_forbid_exactly_the_invalid_transitions():
    start, transitions = bio_constraints(LABELS)
    assert [LABELS[i] for i in np.flatnonzero(np.isinf(start))] == ["I-PER", "I-LOC"]
    forbidden = {(LABELS[i], LABELS[j]) for i, j in zip(*np.nonzero(np.isinf(transitions)))}
    assert forbidden == {
        (a, b)
        for a in LABELS
        for b in ("I-PER", "I-LOC")
        if a[2:] != b[2:]  # O, or another type
    }


def test_viterbi_repairs_a_sequence_argmax_gets_wrong():
    # word 0: O barely beats B-PER; word 1: I-PER clearly best; word 2: I-LOC after a PER entity
    probs = np.array(
        [
            [0.50, 0.45, 0.01, 0.02, 0.02],
            [0.10, 0.05, 0.80, 0.03, 0.02],
            [0.30, 0.05, 0.05, 0.20, 0.40],
        ]
    )
    argmax = [LABELS[i] for i in probs.argmax(axis=1)]
    assert argmax == ["O", "I-PER", "I-LOC"] and not is_valid(argmax)
    path = [LABELS[i] for i in viterbi(np.log(probs), *bio_constraints(LABELS))]
    # the best valid sequence: 0.45 * 0.80 * 0.30 (B-PER I-PER O) beats 0.50 * 0.10 * 0.40 and friends
    assert path == ["B-PER", "I-PER", "O"]


def test_viterbi_keeps_a_valid_argmax_and_handles_empty_and_single_words():
    probs = np.array([[0.1, 0.7, 0.1, 0.05, 0.05], [0.1, 0.1, 0.6, 0.1, 0.1], [0.9, 0.02, 0.02, 0.03, 0.03]])
    assert viterbi(np.log(probs), *bio_constraints(LABELS)).tolist() == [1, 2, 0]
    assert viterbi(np.zeros((0, 5)), *bio_constraints(LABELS)).tolist() == []
    only_inside = np.log(np.array([[0.1, 0.2, 0.7, 0.0, 0.0]]) + 1e-12)
    assert viterbi(only_inside, *bio_constraints(LABELS)).tolist() == [1]  # a text cannot start inside


@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.just(5)), elements=st.floats(-6.0, 0.0)))
@settings(max_examples=150, deadline=None)
def test_viterbi_matches_brute_force(scores):
    path = viterbi(scores, *bio_constraints(LABELS))
    tags = [LABELS[i] for i in path]
    assert is_valid(tags)
    assert sum(scores[j, y] for j, y in enumerate(path)) == pytest.approx(brute_force(scores), abs=1e-9)
