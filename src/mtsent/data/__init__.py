"""Data layer of mtsent: read task data, split it, align labels to sub-words and sample tasks.

See docs/data.md for formats, configs, sampling strategies and the definition of an epoch. The public names are
imported on first use, so the CLI (`mtsent data --help`) does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mtsent._lazy import lazy_exports

if TYPE_CHECKING:
    from mtsent.data.alignment import AlignmentStats, align_token_labels, encode_sentences, load_tokenizer
    from mtsent.data.config import DataConfig, SplitConfig, TaskDataSpec, read_task_specs, resolve_data_dir
    from mtsent.data.errors import DataError
    from mtsent.data.examples import PairExample, SentenceExample, TokenExample
    from mtsent.data.readers import iob1_to_iob2, read_conll, read_hf_dataset, read_table
    from mtsent.data.sampling import MultiTaskSampler, steps_per_epoch
    from mtsent.data.splits import split_examples
    from mtsent.data.tasks import TaskSplits, load_task_data
    from mtsent.data.weights import class_weights

__all__ = [
    "AlignmentStats",
    "DataConfig",
    "DataError",
    "MultiTaskSampler",
    "PairExample",
    "SentenceExample",
    "SplitConfig",
    "TaskDataSpec",
    "TaskSplits",
    "TokenExample",
    "align_token_labels",
    "class_weights",
    "encode_sentences",
    "iob1_to_iob2",
    "load_task_data",
    "load_tokenizer",
    "read_conll",
    "read_hf_dataset",
    "read_table",
    "read_task_specs",
    "resolve_data_dir",
    "split_examples",
    "steps_per_epoch",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "AlignmentStats": "alignment",
        "align_token_labels": "alignment",
        "encode_sentences": "alignment",
        "load_tokenizer": "alignment",
        "DataConfig": "config",
        "SplitConfig": "config",
        "TaskDataSpec": "config",
        "read_task_specs": "config",
        "resolve_data_dir": "config",
        "DataError": "errors",
        "PairExample": "examples",
        "SentenceExample": "examples",
        "TokenExample": "examples",
        "iob1_to_iob2": "readers",
        "read_conll": "readers",
        "read_hf_dataset": "readers",
        "read_table": "readers",
        "MultiTaskSampler": "sampling",
        "steps_per_epoch": "sampling",
        "split_examples": "splits",
        "TaskSplits": "tasks",
        "load_task_data": "tasks",
        "class_weights": "weights",
    },
)
