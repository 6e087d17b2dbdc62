"""How inputs become batches: sub-word windows of words, which rows share a batch, and padding.

One name per algorithm:

- `token_budget_batches`: inference. Longest first, each batch holds at most a budget of padded tokens; with
  `invariant=True` rows are padded to a width of their own (`invariant_width`) and share a batch only with rows
  of that width, so a row's result does not depend on its batch mates.
- `bucketed_batches`: training (shuffled chunks sorted by length) and evaluation (`shuffle=False`: sorted).
- `random_batches`: plain shuffled batches, the baseline that bucketing is measured against.
- `word_windows` / `text_windows`: texts longer than the encoder's window cut into overlapping windows of
  whole words; `first_subwords` maps a window's sub-words back to the words they start.
- `pad_batch` / `DataCollator`: right padding to the longest row, or to its invariant width (labels padded with
  `IGNORE_INDEX`).
- `tokenize_texts`: plain texts to unpadded, truncated ids, on several threads for large calls.
- `TOKENIZING`: held around every inference-time tokenizer call, so a model can be called from several threads.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "IGNORE_INDEX",
    "TOKENIZING",
    "DataCollator",
    "Window",
    "bucketed_batches",
    "first_subwords",
    "invariant_rows",
    "invariant_width",
    "pad_batch",
    "padded_rows",
    "padding_ratio",
    "random_batches",
    "rows_invariant",
    "text_windows",
    "token_budget_batches",
    "tokenize_texts",
    "word_windows",
]

DEFAULT_MAX_TOKENS = 2048
"""Padded tokens per batch: measured best on a 2-core AMX CPU (1024-2048 beat both fixed batches of 32 and 8192)."""
DEFAULT_BATCH_SIZE = 32
"""Sentences per batch when no token budget is given."""
IGNORE_INDEX = -100
"""Label id ignored by ``torch.nn.CrossEntropyLoss`` (special tokens, padding, non-first sub-words)."""

_PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0}
TOKENIZING = threading.Lock()
"""Serialises inference-time tokenizer calls: a Hugging Face fast tokenizer stores truncation and padding on its
Rust backend at every call, so two threads tokenising at once (a service's two model lanes, a user's thread pool)
could each run with the other's settings. Tokenising takes a fraction of a model pass, so they rarely wait."""
TOKENIZE_CHUNK = 256
"""Texts per tokenizer thread: below twice this a call runs on one thread (a thread costs more than it saves)."""
INVARIANT_WIDTHS = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)
"""Padded widths of batch-invariant batches: each step at most 1.5x the last, so padding stays under a third."""


def invariant_width(length: int) -> int:
    """The padded width of a row of `length` tokens in a batch-invariant batch: a function of the row alone.

    On CPU a row's float result depends on the padded width (kernel summation order over the sequence) but not
    on the other rows of a batch of that width (measured bit-identical for batches of 1 to 64 rows at fp32,
    bf16 autocast and 1 or 2 threads; tests/test_batching.py and the model tests check it).
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    for width in INVARIANT_WIDTHS:
        if length <= width:
            return width
    return -(-length // 256) * 256


INVARIANT_ROW_MULTIPLE = 16
"""Row count that every matrix product of a batch-invariant pass is padded to a multiple of."""
_row_multiple: ContextVar[int | None] = ContextVar("mtsent_row_multiple", default=None)


@contextmanager
def invariant_rows(multiple: int = INVARIANT_ROW_MULTIPLE) -> Iterator[None]:
    """Inside this context, `padded_rows` pads (rows, features) inputs with zero rows to a multiple of `multiple`.

    CPU matrix kernels choose their code path by the row count: a product over 1 to 3 rows (or 17 to 19 with 15
    threads) sums in another order than one over 16 or 32 rows, so a sentence head's logits for a text moved by
    ~1e-7 with the number of texts in its batch. Row counts that are multiples of 16 gave every row the same
    result in every measured case; the encoder's token products always have such counts (`invariant_width`).
    """
    token = _row_multiple.set(multiple)
    try:
        yield
    finally:
        _row_multiple.reset(token)


def rows_invariant() -> bool:
    """Whether this call runs inside `invariant_rows`: a row's result must not depend on its batch mates."""
    return _row_multiple.get() is not None


def padded_rows(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """`fn(x)` for a (rows, features) `x`, computed on zero-padded rows inside `invariant_rows` (else as is)."""
    multiple = _row_multiple.get()
    if multiple is None or x.dim() != 2 or x.size(0) % multiple == 0:
        return fn(x)
    pad = x.new_zeros(-x.size(0) % multiple, x.size(1))
    return fn(torch.cat([x, pad]))[: x.size(0)]


# ---------------------------------------------------------------------------------------------- choosing rows
def token_budget_batches(
    lengths: Sequence[int], max_tokens: int | None, max_batch: int | None = None, invariant: bool = False
) -> list[list[int]]:
    """Indices sorted longest first, cut so that each batch holds at most `max_tokens` padded tokens.

    Short sentences travel in large batches (less per-call overhead), long ones in small batches (bounded
    activation and attention memory); `max_batch` optionally caps the number of sentences too. A sentence
    longer than the budget gets a batch of its own. `max_tokens=None` gives fixed batches of `max_batch`
    (default 32), still longest first. With `invariant`, widths are `invariant_width` of each row and a batch
    holds rows of one width only (pad them with `pad_batch(..., invariant=True)`).
    """
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if max_batch is not None and max_batch < 1:
        raise ValueError(f"batch_size must be >= 1, got {max_batch}")
    if max_tokens is None:
        max_batch = max_batch or DEFAULT_BATCH_SIZE
    widths = [invariant_width(n) for n in lengths] if invariant else lengths
    order = sorted(range(len(lengths)), key=lambda i: (-widths[i], -lengths[i]))
    batches: list[list[int]] = []
    for i in order:
        # longest first: the batch's first sentence sets its padded width
        last = batches[-1] if batches else None
        fits = (
            last is not None
            and (not invariant or widths[i] == widths[last[0]])
            and (max_tokens is None or (len(last) + 1) * widths[last[0]] <= max_tokens)
            and (max_batch is None or len(last) < max_batch)
        )
        if fits:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


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


# ---------------------------------------------------------------------------------------------- windows of words
def word_windows(piece_counts: Sequence[int], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Cut words (given their sub-word counts) into [start, end) windows of at most `budget` sub-words.

    Consecutive windows share up to `overlap` sub-words of whole words, so words near a cut see context on both
    sides in one of the windows. A single word longer than the budget gets a window of its own (truncated).
    """
    n = len(piece_counts)
    if n == 0:
        return [(0, 0)]
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and used + piece_counts[end] <= budget:
            used += piece_counts[end]
            end += 1
        end = max(end, start + 1)
        windows.append((start, end))
        if end >= n:
            return windows
        nxt, back = end, 0
        while (
            nxt - 1 > start
            and back + piece_counts[nxt - 1] <= overlap
            and back + piece_counts[nxt - 1] + piece_counts[end] <= budget  # the next window must add a word
        ):
            nxt -= 1
            back += piece_counts[nxt]
        start = nxt


@dataclass
class Window:
    """One encoder input cut from a text: its sub-word ids and, per position, the text's word index (or None)."""

    text_index: int
    first_word: int
    input_ids: list[int]
    word_ids: list[int | None]


def text_windows(tokenizer: Any, words: Sequence[Sequence[str]], max_length: int) -> list[Window]:
    """Windows of at most `max_length` sub-words (special tokens included) over each text's words, in order.

    A text that fits is one window; a longer one becomes overlapping windows of whole words (a quarter of the
    budget shared between neighbours). `word_ids` are indices into the text's words, not the window's.
    """
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    with TOKENIZING:
        pieces = tokenizer(
            [list(ws) for ws in words], is_split_into_words=True, add_special_tokens=False, verbose=False
        )
    spans: list[tuple[int, int, int]] = []
    for i, ws in enumerate(words):
        counts = [0] * len(ws)
        for w in pieces.word_ids(i):
            if w is not None:
                counts[w] += 1
        spans += [(i, s, e) for s, e in word_windows(counts, budget, overlap=budget // 4)]
    with TOKENIZING:
        enc = tokenizer(
            [list(words[i][s:e]) for i, s, e in spans], is_split_into_words=True, truncation=True, max_length=max_length
        )
    return [
        Window(i, s, enc["input_ids"][k], [None if w is None else s + w for w in enc.word_ids(k)])
        for k, (i, s, _) in enumerate(spans)
    ]


def tokenize_texts(tokenizer: Any, texts: Sequence[str], max_length: int) -> Any:
    """Unpadded ids of plain texts, truncated to `max_length` sub-words, special tokens added: what
    `tokenizer(texts, truncation=True, max_length=max_length)` returns (a `BatchEncoding` whose `encodings` say
    what truncation cut), faster.

    A fast tokenizer's Rust backend is called directly (`encode_batch_fast`, no character offsets) and, for
    large calls, on up to `torch.get_num_threads()` threads at once, each on a slice of the texts: the backend
    releases the GIL, and tokenising happens before the model runs, when the cores are free. (Its own
    parallelism stays off: `mtsent` sets `TOKENIZERS_PARALLELISM=false` so that forked processes do not
    inherit a thread pool.) Tokenizers without a Rust backend take the ordinary call. Holds `TOKENIZING`.
    """
    from transformers import BatchEncoding

    texts = list(texts)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    with TOKENIZING:
        if backend is None or not hasattr(backend, "encode_batch_fast"):
            return tokenizer(texts, truncation=True, max_length=max_length)
        backend.no_padding()
        backend.enable_truncation(max_length, strategy="longest_first", direction=tokenizer.truncation_side)
        workers = max(1, min(torch.get_num_threads(), len(texts) // TOKENIZE_CHUNK))
        if workers == 1:
            encodings = backend.encode_batch_fast(texts)
        else:
            step = -(-len(texts) // workers)
            with ThreadPoolExecutor(workers) as pool:
                parts = pool.map(backend.encode_batch_fast, [texts[i : i + step] for i in range(0, len(texts), step)])
                encodings = [e for part in parts for e in part]
    fields = {"input_ids": "ids", "token_type_ids": "type_ids", "attention_mask": "attention_mask"}
    data = {k: [getattr(e, fields[k]) for e in encodings] for k in tokenizer.model_input_names if k in fields}
    return BatchEncoding(data, encoding=encodings)


def first_subwords(word_ids: Sequence[int | None]) -> list[tuple[int, int]]:
    """(position, word) of each word's first sub-word: where a word's tag is read and written."""
    return [(pos, w) for pos, w in enumerate(word_ids) if w is not None and (pos == 0 or word_ids[pos - 1] != w)]


# ---------------------------------------------------------------------------------------------- padding
def pad_batch(
    rows: Sequence[dict[str, Any]], pad_token_id: int, pad_to_multiple_of: int | None = None, invariant: bool = False
) -> dict[str, torch.Tensor]:
    """Right-pad `input_ids` (with `pad_token_id`), `attention_mask`, `token_type_ids` and list `labels`.

    Integer labels (one per row) become a long tensor; keys that are not model inputs (``word_ids``, ...)
    are dropped. ``pad_to_multiple_of`` rounds the padded length up (helps tensor cores; keep ``None`` on CPU);
    ``invariant`` pads to `invariant_width` of the longest row.
    """
    if not rows:
        raise ValueError("cannot collate an empty batch")
    width = max(len(r["input_ids"]) for r in rows)
    if invariant:
        width = invariant_width(width)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    pads = {**_PAD_VALUES, "input_ids": pad_token_id}
    batch = {
        key: torch.tensor([list(r[key]) + [value] * (width - len(r[key])) for r in rows], dtype=torch.long)
        for key, value in pads.items()
        if key in rows[0]
    }
    if "labels" in rows[0]:
        if isinstance(rows[0]["labels"], list | tuple):
            labels = [list(r["labels"]) + [IGNORE_INDEX] * (width - len(r["labels"])) for r in rows]
            batch["labels"] = torch.tensor(labels, dtype=torch.long)
        else:
            batch["labels"] = torch.tensor([r["labels"] for r in rows])
    return batch


class DataCollator:
    """Pad a list of features to the longest one in the batch and stack them into tensors (see `pad_batch`).

    Kept instead of transformers' `DataCollatorWithPadding` / `DataCollatorForTokenClassification`: those need
    a tokenizer object and route through `tokenizer.pad`, which converts every row field by field (including
    ``word_ids``, whose `None`s it cannot pad), and each handles only one label shape; one plain function over
    lists of ids covers sentence, token and score labels, with or without a tokenizer.
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
        return pad_batch(features, self.pad_token_id, self.pad_to_multiple_of)
