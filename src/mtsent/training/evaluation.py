"""Scoring a model on a task's examples: the code shared by in-training evaluation and `mtsent evaluate`.

Everything that depends on the task's type (features, decoding, metrics) is asked of its `TaskType`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import Tensor

from mtsent.batching import bucketed_batches
from mtsent.data import DataConfig, DataError
from mtsent.data.readers import table_format_from_suffix
from mtsent.data.tasks import read_examples
from mtsent.model import MultiTaskModel
from mtsent.precision import eval_mode, inference_copy, precision_context

__all__ = ["evaluate_file", "evaluate_task", "task_outputs", "tokenize_task"]


def tokenize_task(
    model: MultiTaskModel, task: str, examples: Sequence[Any], max_length: int, label_all_subwords: bool = False
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Tokenise a task's examples with the model's tokenizer and label ids; returns (features, truncation stats)."""
    return model.task_types[task].tokenize(model.encoder.tokenizer, examples, max_length, label_all_subwords)


@torch.inference_mode()
def task_outputs(
    model: MultiTaskModel,
    task: str,
    features: list[dict[str, Any]],
    decode: Callable[[Tensor], list[Any]],
    batch_size: int = 128,
    precision: str = "fp32",
) -> list[Any]:
    """`decode` of each feature's row of the task's logits, in feature order (batches sorted by length)."""
    collate = model.task_types[task].collator(model.encoder.tokenizer)
    lengths = [len(f["input_ids"]) for f in features]
    outputs: list[Any] = [None] * len(features)
    with eval_mode(model), precision_context(model.device, precision):
        runner = inference_copy(model, precision)  # the same numerics as predict() for every precision
        for batch in bucketed_batches(lengths, batch_size, seed=0, shuffle=False):
            inputs = collate([features[i] for i in batch])
            out = runner(inputs["input_ids"].to(model.device), inputs["attention_mask"].to(model.device), tasks=[task])
            for i, output in zip(batch, decode(out.logits[task])):
                outputs[i] = output
    return outputs


def evaluate_task(
    model: MultiTaskModel,
    task: str,
    examples: Sequence[Any],
    features: list[dict[str, Any]],
    batch_size: int = 128,
    precision: str = "fp32",
) -> dict:
    """Metrics of one task (as its type scores them), with the type's main metric copied to `main`."""
    task_type = model.task_types[task]
    outputs = task_outputs(model, task, features, task_type.decode_batch, batch_size, precision)
    metrics = task_type.score(examples, features, outputs)
    metrics["main"] = metrics[task_type.main_metric]
    return metrics


def evaluate_file(
    model: MultiTaskModel,
    task: str,
    path: str | Path,
    *,
    format: str | None = None,
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    text_pair_column: str | int | None = None,
    header: bool | None = None,
    quoted: bool = True,
    tag_column: int = -1,
    label_map: dict[str, str] | None = None,
    batch_size: int = 128,
    precision: str = "fp32",
) -> dict:
    """Score a model's task on any data file, including files it never saw; unknown gold labels are errors."""
    names = model.check_tasks([task])
    task_type, head = model.task_types[names[0]], model.tasks[names[0]]
    path = Path(path)
    fmt = format or task_type.file_format(path) or table_format_from_suffix(path)
    if fmt not in task_type.formats:
        raise ValueError(
            f"task {task!r} is a {task_type.level} task ({head.type}): evaluate it on a file in format "
            f"{' or '.join(repr(f) for f in task_type.formats)}, not {fmt!r}"
        )
    if fmt != "conll" and (text_column is None or label_column is None):
        raise ValueError(f"a {fmt} file needs --text-column and --label-column")
    if (text_pair_column is not None) != (task_type.texts_per_example == 2):
        need = "needs --text-pair-column" if task_type.texts_per_example == 2 else "reads one text per row"
        raise ValueError(f"task {task!r} ({head.type}) {need}")
    options = {
        "text_column": text_column,
        "text_pair_column": text_pair_column,
        "label_column": label_column,
        "header": header,
        "label_map": label_map,
    }
    try:
        config = DataConfig(
            format=fmt,
            train=str(path),
            tag_column=tag_column,
            quoted=quoted,
            **{k: v for k, v in options.items() if v is not None},
        )
    except ValidationError as exc:
        raise ValueError(
            f"{path}: " + "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        ) from None
    examples = read_examples(config, str(path), data_dir=Path())  # a relative path is read from here
    if not examples:
        raise DataError(f"{path}: no examples to evaluate")
    gold = {label for e in examples for label in task_type.example_labels(e)}
    unknown = sorted(gold - set(head.labels))
    if unknown:
        raise DataError(f"{path}: labels {unknown} are not labels of task {task!r} (which has {head.labels})")
    features, truncation = tokenize_task(model, task, examples, model.encoder.max_length)
    metrics = evaluate_task(model, task, examples, features, batch_size, precision)
    metrics["truncation"] = truncation
    return metrics
