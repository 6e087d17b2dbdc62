"""Data set statistics behind ``mtsent data inspect``: counts, labels, lengths and truncation.

Everything here returns plain dicts (JSON-serialisable) so it is testable; ``cli.py`` prints them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mtsent.config import registered_task_types
from mtsent.data.alignment import load_tokenizer
from mtsent.data.config import DataConfig, read_task_specs
from mtsent.data.errors import DataError
from mtsent.data.examples import PairExample, SentenceExample, TokenExample
from mtsent.data.readers import table_format_from_suffix
from mtsent.data.tasks import TaskSplits, load_task_data
from mtsent.spans import parse_tag

CONLL_SUFFIXES = {".conll", ".txt", ".iob", ".bio"}
CONFIG_SUFFIXES = {".yaml", ".yml"}
_CHUNK = 4096


def percentiles(values: Sequence[int]) -> dict[str, int]:
    """Nearest-rank p50/p90/p99 and max (exact values that occur, no interpolation)."""
    if not values:
        return {"p50": 0, "p90": 0, "p99": 0, "max": 0}
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> int:
        return ordered[max(0, math.ceil(q * n) - 1)]

    return {"p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99), "max": ordered[-1]}


def subword_lengths(tokenizer: Any, examples: Sequence[SentenceExample | TokenExample]) -> list[int]:
    """Untruncated sub-word counts including special tokens ([CLS]/[SEP]), as the model would see them."""
    lengths: list[int] = []
    for start in range(0, len(examples), _CHUNK):
        chunk = examples[start : start + _CHUNK]
        if chunk and isinstance(chunk[0], TokenExample):
            enc = tokenizer([list(e.tokens) for e in chunk], is_split_into_words=True)  # type: ignore[union-attr]
        else:
            enc = tokenizer([e.text for e in chunk])  # type: ignore[union-attr]
        lengths.extend(len(ids) for ids in enc["input_ids"])
    return lengths


def _label_counts(examples: Sequence[SentenceExample | TokenExample]) -> dict[str, int]:
    """Sentence examples: examples per label. Token examples: entity mentions per type (``B-`` tags). Pairs: none."""
    counts: Counter[str] = Counter()
    for e in examples:
        if isinstance(e, PairExample):
            continue  # a pair's label is a score, not a class
        if isinstance(e, TokenExample):
            counts.update(kind for prefix, kind in map(parse_tag, e.tags) if prefix == "B")
        else:
            counts[e.label] += 1
    return dict(sorted(counts.items()))


def _counted(examples: Sequence[SentenceExample | TokenExample]) -> str:
    """What `_label_counts` counts, for table titles."""
    return "entity mentions" if examples and isinstance(examples[0], TokenExample) else "examples"


def split_report(tokenizer: Any, examples: Sequence[SentenceExample | TokenExample], max_length: int) -> dict[str, Any]:
    """Statistics of one split: size, labels, word/sub-word length percentiles, truncation, duplicates."""
    words = [len(e.tokens) if isinstance(e, TokenExample) else len(e.text.split()) for e in examples]
    subwords = subword_lengths(tokenizer, examples) if examples else []
    keys = [tuple(e.tokens) if isinstance(e, TokenExample) else e.text for e in examples]
    truncated = sum(n > max_length for n in subwords)
    return {
        "examples": len(examples),
        "labels": _label_counts(examples),
        "words": percentiles(words),
        "subwords": percentiles(subwords),
        "truncated": truncated,
        "truncation_rate": truncated / len(examples) if examples else 0.0,
        "duplicates": len(keys) - len(set(keys)),
    }


def task_report(name: str, task_type: str, splits: TaskSplits, tokenizer: Any, max_length: int) -> dict[str, Any]:
    """Report for one task: every non-empty split plus the label list and skipped counts."""
    return {
        "task": name,
        "type": task_type,
        "counted": _counted(splits.train),
        "labels": splits.labels,
        "skipped": dict(splits.skipped),
        "splits": {
            s: split_report(tokenizer, splits.split(s), max_length) for s in ("train", "dev", "test") if splits.split(s)
        },
    }


def file_config(
    path: Path,
    format: str | None = None,
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    header: bool | None = None,
    tag_column: int = -1,
) -> tuple[str, DataConfig]:
    """Build the config for inspecting one file: format from the suffix, sensible column defaults, and the
    first registered task type that reads that format.

    The path is made absolute because config paths are otherwise relative to the data dir.
    """
    path = path.resolve()
    if format is None:
        format = "conll" if path.suffix.lower() in CONLL_SUFFIXES else table_format_from_suffix(path)
    task_type = next((name for name, cls in registered_task_types().items() if format in cls.formats), None)
    if task_type is None:
        raise DataError(f"{path}: no registered task type reads format {format!r}")
    if format == "conll":
        return task_type, DataConfig(format="conll", train=str(path), tag_column=tag_column)
    default_text, default_label = ("text", "label") if format == "jsonl" else (0, 1)
    cfg = DataConfig(
        format=format,  # type: ignore[arg-type]
        train=str(path),
        text_column=default_text if text_column is None else text_column,
        label_column=default_label if label_column is None else label_column,
        header=header,
    )
    return task_type, cfg


def inspect_path(
    path: str | Path,
    *,
    data_dir: str | Path | None = None,
    format: str | None = None,
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    header: bool | None = None,
    tag_column: int = -1,
    tokenizer: Any = None,
    max_length: int = 128,
) -> dict[str, Any]:
    """Inspect a YAML config (every task) or a single data file (reported as its ``train`` split).

    Returns ``{"source": str, "max_length": int, "tasks": {name: task_report}}``.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    tok = tokenizer if tokenizer is not None else load_tokenizer(None)
    tasks: dict[str, Any] = {}
    if path.suffix.lower() in CONFIG_SUFFIXES:
        base = Path(data_dir) if data_dir is not None else None
        for name, spec in read_task_specs(path).items():
            splits = load_task_data(name, spec.type, spec.data, base)
            tasks[name] = task_report(name, spec.type, splits, tok, max_length)
    else:
        task_type, cfg = file_config(path, format, text_column, label_column, header, tag_column)
        splits = load_task_data(path.stem, task_type, cfg, None)
        tasks[path.stem] = task_report(path.stem, task_type, splits, tok, max_length)
    return {"source": str(path), "max_length": max_length, "tasks": tasks}
