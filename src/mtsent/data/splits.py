"""Deterministic, stratified train/dev/test splitting for data sets shipped as a single file.

Kept instead of two calls to scikit-learn's `train_test_split(stratify=...)`: that cuts two ways per call
(three parts need two calls and ratios recomputed for the second), refuses a label with a single example,
and would move examples between the splits of every existing run, so results recorded in docs/results could
no longer be reproduced; a per-label shuffle-and-cut is a dozen lines and keeps every split as it was.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import TypeVar

from mtsent.data.examples import SentenceExample

E = TypeVar("E")
SPLIT_NAMES = ("train", "dev", "test")


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"split ratios must be three non-negative numbers summing to 1, got {tuple(ratios)}")
    return (float(ratios[0]), float(ratios[1]), float(ratios[2]))


def _cut(items: list[E], ratios: tuple[float, float, float]) -> tuple[list[E], list[E], list[E]]:
    """Cut by rounding cumulative boundaries, so sizes add up exactly and no part goes missing."""
    n = len(items)
    a = round(n * ratios[0])
    b = round(n * (ratios[0] + ratios[1]))
    return items[:a], items[a:b], items[b:]


def split_examples(
    examples: Sequence[E],
    ratios: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 13,
    stratify: bool = True,
) -> dict[str, list[E]]:
    """Split into ``train``/``dev``/``test``; the same input and seed always give the same split.

    With ``stratify`` (only applies to :class:`SentenceExample`), every label is shuffled and cut
    separately, so each split keeps the label proportions; each split is then shuffled again so
    labels are interleaved. Token examples are split without stratification.
    """
    r = _check_ratios(ratios)
    rng = random.Random(seed)
    items = list(examples)
    parts: dict[str, list[E]] = {name: [] for name in SPLIT_NAMES}
    if stratify and items and all(isinstance(e, SentenceExample) for e in items):
        groups: dict[str, list[E]] = defaultdict(list)
        for e in items:
            groups[e.label].append(e)  # type: ignore[attr-defined]
        for label in sorted(groups):
            group = groups[label]
            rng.shuffle(group)
            for name, part in zip(SPLIT_NAMES, _cut(group, r), strict=True):
                parts[name].extend(part)
        for name in SPLIT_NAMES:
            rng.shuffle(parts[name])
        return parts
    rng.shuffle(items)
    return dict(zip(SPLIT_NAMES, _cut(items, r), strict=True))
