"""Speed in the machine's terms: tokens/s, and the fraction of a peak measured on the same machine in the same run.

Sentences/s hides how long the sentences are and how much padding a contender's batching adds; tokens/s
(non-padding tokens under the model's tokenizer, truncated at the contender's max length) does not, and the
fraction of peak says how much of the machine a contender leaves unused.

FLOPs per token of a BERT-style encoder (embeddings, pooling and task heads ignored), summed over its layers:

    2 x (4 d^2 + 2 d d_ff)    Q, K, V and output projections, and the two feed-forward matrices
  + 2 x 2 x s x d             attention scores (Q K^T) and the weighted sum of V

with d the hidden size, d_ff the intermediate size and s the padded length of the token's batch, averaged over
the corpus's tokens: wider padding costs a contender attention work, and padding tokens are never counted as
tokens. A contender running several models (Hugging Face x3) executes that many passes per token.

The peak is measured, not read from a data sheet: the best of a few square matmuls under torch at the run's
thread count, in bf16 and in fp32. Fractions are given against the bf16 peak, the faster of the two where the
CPU has bf16 units.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

FLOPS_FORMULA = "layers x (2 x (4 d^2 + 2 d d_ff) + 2 x 2 x s x d), s = padded length of the token's batch"

Batcher = Callable[[Sequence[str], list[int]], list[list[int]]]
"""Texts and their token lengths -> the batches (lists of text indices) a contender runs."""


def by_characters(batch_size: int) -> Batcher:
    """sentence-transformers' `encode`: longest text (in characters) first, fixed batches."""

    def plan(texts: Sequence[str], lengths: list[int]) -> list[list[int]]:
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    return plan


def in_order(batch_size: int) -> Batcher:
    """The usual loop over a list: fixed batches in input order."""

    def plan(texts: Sequence[str], lengths: list[int]) -> list[list[int]]:
        return [list(range(i, min(i + batch_size, len(texts)))) for i in range(0, len(texts), batch_size)]

    return plan


@dataclass(frozen=True)
class Load:
    """What a contender's model sees of a corpus: its real tokens and the padded length around them."""

    tokens: int
    mean_padded_length: float


def corpus_load(tokenizer: Any, texts: Sequence[str], max_length: int, batcher: Batcher) -> Load:
    """Non-padding tokens of `texts` and their batches' padded length (token-weighted mean)."""
    lengths = [len(ids) for ids in tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]]
    batches = batcher(texts, lengths)
    tokens = sum(lengths)
    padded = sum(max(lengths[i] for i in b) * sum(lengths[i] for i in b) for b in batches)
    return Load(tokens, padded / tokens)


def flops_per_token(config: Any, mean_padded_length: float) -> float:
    """Encoder FLOPs per token per pass (see the module docstring) from a transformers config."""
    d, d_ff = config.hidden_size, config.intermediate_size
    return config.num_hidden_layers * (2 * (4 * d * d + 2 * d * d_ff) + 2 * 2 * mean_padded_length * d)


def matmul_peaks(size: int, repeats: int = 3) -> dict[str, float]:
    """Best FLOP/s of a (size x size) @ (size x size) matmul in bf16 and fp32, at torch's thread count."""
    peaks = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        a @ b  # warm-up: kernel choice, packing buffers
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        peaks[name] = 2 * size**3 / best
    return peaks


def rates(count: int, seconds: float, load: Load, config: Any, passes: int, bf16_peak: float) -> dict[str, float]:
    """Texts/s, tokens/s and the achieved share of the bf16 peak for one corpus and one contender."""
    flops = flops_per_token(config, load.mean_padded_length) * passes
    return {
        "per_s": count / seconds,
        "tokens_per_s": load.tokens / seconds,
        "mean_padded_length": load.mean_padded_length,
        "gflop_per_s": load.tokens * flops / seconds / 1e9,
        "fraction_of_bf16_peak": load.tokens * flops / seconds / bf16_peak,
    }
