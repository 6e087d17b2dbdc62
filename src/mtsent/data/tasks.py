"""Load one task's train/dev/test examples from its :class:`DataConfig`.

What depends on the task's type (the formats it reads, its label list) comes from the registered task type
class (`mtsent.config.task_type_class`), so this module needs no change when a type is added.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtsent.config import task_type_class
from mtsent.data.config import DataConfig, resolve_data_dir
from mtsent.data.errors import DataError
from mtsent.data.examples import PairExample, SentenceExample, TokenExample
from mtsent.data.readers import read_conll, read_hf_dataset, read_table
from mtsent.data.splits import SPLIT_NAMES, split_examples

Example = SentenceExample | TokenExample | PairExample


@dataclass
class TaskSplits:
    """A task's examples per split, its label list (from train) and what the readers skipped.

    ``skipped`` keys are ``"<split>.<reason>"`` (``"source.<reason>"`` when one file was split).
    """

    train: list[Any]
    dev: list[Any]
    test: list[Any]
    labels: list[str]
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def split(self, name: str) -> list[Any]:
        return {"train": self.train, "dev": self.dev, "test": self.test}[name]


class _Reader:
    """Reads one source of a config, resolving relative paths against the data dir lazily."""

    def __init__(self, config: DataConfig, data_dir: Path | None) -> None:
        self.config = config
        self._data_dir = data_dir

    def _path(self, rel: str) -> Path:
        p = Path(rel).expanduser()
        if p.is_absolute():
            return p
        if self._data_dir is None:
            self._data_dir = resolve_data_dir(None)
        return self._data_dir / p

    def _hf_source(self, hf_name: str) -> str | Path:
        """A save_to_disk directory (under the data dir first, then as given), else a hub name."""
        p = Path(hf_name).expanduser()
        if not p.is_absolute():
            base = self._data_dir or _maybe_data_dir()
            if base is not None and (base / p).is_dir():
                return base / p
        return p if p.is_dir() else hf_name

    def read(self, source: str, skipped: Counter[str]) -> list[Example]:
        c = self.config
        if c.format == "conll":
            return list(read_conll(self._path(source), c.tag_column, skipped=skipped))
        if c.format == "hf":
            assert c.hf_name is not None and c.text_column is not None and c.label_column is not None
            name = self._hf_source(c.hf_name)
            return list(
                read_hf_dataset(
                    name,
                    source,
                    str(c.text_column),
                    str(c.label_column),
                    label_map=c.label_map,
                    skipped=skipped,
                )
            )
        assert c.text_column is not None and c.label_column is not None
        return list(
            read_table(
                self._path(source),
                c.text_column,
                c.label_column,
                c.format,
                c.header,
                c.label_map,
                text_pair_column=c.text_pair_column,
                quoted=c.quoted,
                skipped=skipped,
            )
        )


def read_examples(
    config: DataConfig, source: str, data_dir: Path | None = None, skipped: Counter[str] | None = None
) -> list[Example]:
    """Read one source (a file relative to the data dir, or a split name for `hf`) the way `config` says."""
    return _Reader(config, data_dir).read(source, skipped if skipped is not None else Counter())


def _maybe_data_dir() -> Path | None:
    try:
        return resolve_data_dir(None)
    except DataError:
        return None


def load_task_data(task_name: str, task_type: str, config: DataConfig, data_dir: Path | None = None) -> TaskSplits:
    """Read, split and cap a task's data, and check that dev/test only use labels seen in train."""
    kind = task_type_class(task_type)
    if config.format not in kind.formats:
        raise DataError(
            f"task {task_name!r}: type {task_type!r} does not fit format {config.format!r} "
            f"({task_type} reads {', '.join(kind.formats)})"
        )
    if (config.text_pair_column is not None) != (kind.texts_per_example == 2):
        need = "needs text_pair_column (two texts per row)" if kind.texts_per_example == 2 else "reads one text per row"
        raise DataError(f"task {task_name!r}: type {task_type!r} {need}; check text_pair_column in its data config")
    reader = _Reader(config, Path(data_dir) if data_dir is not None else None)
    counters: dict[str, Counter[str]] = {}
    parts: dict[str, list[Example]] = {}
    if config.splits_single_source:
        source = config.path or config.train
        assert source is not None
        counters["source"] = Counter()
        everything = reader.read(source, counters["source"])
        s = config.split_settings
        parts = split_examples(everything, s.ratios, s.seed, s.stratify)
    else:
        for name in SPLIT_NAMES:
            src = getattr(config, name)
            counters[name] = Counter()
            parts[name] = reader.read(src, counters[name]) if src else []
    if config.max_examples is not None:
        seed = config.split_settings.seed
        for name, items in parts.items():
            if len(items) > config.max_examples:
                shuffled = list(items)
                random.Random(f"{seed}:{name}").shuffle(shuffled)
                parts[name] = shuffled[: config.max_examples]
    if not parts["train"]:
        raise DataError(f"task {task_name!r}: the train split is empty; expected at least one example")

    train_labels = {label for e in parts["train"] for label in kind.example_labels(e)}
    labels = kind.label_list(train_labels)
    known = set(labels)
    for name in ("dev", "test"):
        for e in parts[name]:
            unseen = [label for label in kind.example_labels(e) if label not in known]
            if unseen:
                raise DataError(
                    f"task {task_name!r}: {e.source or name}: {name} label {unseen[0]!r} never occurs in "
                    f"the train split; expected one of {labels}"
                )
    skipped = {f"{split}.{reason}": n for split, c in counters.items() for reason, n in sorted(c.items()) if n}
    return TaskSplits(parts["train"], parts["dev"], parts["test"], labels, skipped)
