"""Batch construction: dynamic padding and length-bucketed batches (less compute wasted on padding)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import torch

from mtsent.data.alignment import IGNORE_INDEX

_PADDED_KEYS = ("input_ids", "attention_mask", "token_type_ids")


class DataCollator:
    """Pad a list of features to the longest one in the batch and stack them into tensors.

    Token-task labels (lists) are padded with ``-100``; sentence-task labels (ints) become a long
    tensor. Keys that are not model inputs (``word_ids``, ...) are dropped. ``pad_to_multiple_of``
    rounds the padded length up (helps tensor cores; keep ``None`` on CPU).
    """

    def __init__(
        self, tokenizer: Any = None, pad_token_id: int | None = None, pad_to_multiple_of: int | None = None
    ) -> None:
        if pad_token_id is None:
            pad_token_id = getattr(tokenizer, "pad_token_id", None)
        if pad_token_id is None:
            raise ValueError("DataCollator needs a tokenizer with a pad token or an explicit pad_token_id")
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        width = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            width = (width + m - 1) // m * m
        batch: dict[str, torch.Tensor] = {}
        pads = {"input_ids": self.pad_token_id, "attention_mask": 0, "token_type_ids": 0}
        for key in _PADDED_KEYS:
            if key in features[0]:
                batch[key] = torch.tensor(
                    [list(f[key]) + [pads[key]] * (width - len(f[key])) for f in features], dtype=torch.long
                )
        if "labels" in features[0]:
            first = features[0]["labels"]
            if isinstance(first, (list, tuple)):
                batch["labels"] = torch.tensor(
                    [list(f["labels"]) + [IGNORE_INDEX] * (width - len(f["labels"])) for f in features],
                    dtype=torch.long,
                )
            else:
                batch["labels"] = torch.tensor([int(f["labels"]) for f in features], dtype=torch.long)
        return batch


def bucketed_batches(
    lengths: Sequence[int],
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    chunk_multiplier: int = 50,
) -> list[list[int]]:
    """Group indices of similar length into batches to cut padding, but keep batches random.

    Training (``shuffle=True``): shuffle all indices, cut them into chunks of
    ``batch_size * chunk_multiplier``, sort each chunk by length, cut chunks into batches, then
    shuffle the batch order. Evaluation (``shuffle=False``): sort everything by length (stable) and
    cut into batches, fully deterministic. The last batch may be smaller; every index appears once.
    """
    if batch_size < 1 or chunk_multiplier < 1:
        raise ValueError("batch_size and chunk_multiplier must be >= 1")
    indices = list(range(len(lengths)))
    if not shuffle:
        indices.sort(key=lambda i: lengths[i])
        return [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    rng = random.Random(seed)
    rng.shuffle(indices)
    chunk = batch_size * chunk_multiplier
    batches: list[list[int]] = []
    for start in range(0, len(indices), chunk):
        part = sorted(indices[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def random_batches(n: int, batch_size: int, seed: int) -> list[list[int]]:
    """Plain shuffled batches without bucketing (the baseline bucketing is compared against)."""
    indices = list(range(n))
    random.Random(seed).shuffle(indices)
    return [indices[i : i + batch_size] for i in range(0, n, batch_size)]


def padding_ratio(lengths: Sequence[int], batches: Sequence[Sequence[int]]) -> float:
    """Fraction of positions that are padding when each batch is padded to its longest member."""
    total = pad = 0
    for batch in batches:
        if not batch:
            continue
        width = max(lengths[i] for i in batch)
        total += width * len(batch)
        pad += sum(width - lengths[i] for i in batch)
    return pad / total if total else 0.0
