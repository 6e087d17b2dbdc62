"""Scoring a model on a task's examples: the code shared by in-training evaluation and `mtsent evaluate`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from mtsent.data import DataCollator, SentenceExample, TokenExample, align_token_labels, encode_sentences
from mtsent.data import bucketed_batches as length_batches
from mtsent.encoder import eval_mode, precision_context
from mtsent.inference import inference_copy
from mtsent.metrics import MAIN_METRIC, sentence_metrics, token_metrics
from mtsent.model import MultiTaskModel

__all__ = ["encode_task", "evaluate_file", "evaluate_task"]


def encode_task(
    model: MultiTaskModel,
    task: str,
    examples: Sequence[SentenceExample | TokenExample],
    max_length: int,
    label_all_subwords: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Tokenise a task's examples with the model's tokenizer and label ids; returns (features, truncation stats)."""
    head = model.tasks[task]
    label2id = {label: i for i, label in enumerate(head.labels)}
    if head.type == "token_classification":
        features, stats = align_token_labels(
            model.encoder.tokenizer, list(examples), label2id, max_length, label_all_subwords
        )
        return features, {
            "words": stats.words_total,
            "words_truncated": stats.words_truncated,
            "sentences_truncated": stats.sentences_truncated,
        }
    return encode_sentences(model.encoder.tokenizer, list(examples), label2id, max_length), {}


@torch.inference_mode()
def evaluate_task(
    model: MultiTaskModel,
    task: str,
    examples: Sequence[SentenceExample | TokenExample],
    features: list[dict[str, Any]],
    batch_size: int = 128,
    precision: str = "fp32",
) -> dict:
    """Metrics of one task; token tasks are scored per word (first sub-word), truncated words count as `O`."""
    head = model.tasks[task]
    collate = DataCollator(model.encoder.tokenizer)
    lengths = [len(f["input_ids"]) for f in features]
    predicted: list[Any] = [None] * len(features)
    with eval_mode(model), precision_context(model.device, precision):
        runner = inference_copy(model, precision)  # the same numerics as predict() for every precision
        for batch in length_batches(lengths, batch_size, seed=0, shuffle=False):
            inputs = collate([features[i] for i in batch])
            out = runner(inputs["input_ids"].to(model.device), inputs["attention_mask"].to(model.device), tasks=[task])
            ids = out.logits[task].float().argmax(dim=-1).cpu()
            for row, i in enumerate(batch):
                predicted[i] = ids[row]
    labels = head.labels
    if head.type == "sentence_classification":
        gold = [e.label for e in examples]
        pred = [labels[int(p)] for p in predicted]
        metrics = sentence_metrics(gold, pred, labels)
    else:
        gold_tags, pred_tags = [], []
        for example, feature, ids in zip(examples, features, predicted):
            words = ["O"] * len(example.tags)
            previous = None
            for pos, w in enumerate(feature["word_ids"]):
                if w is not None and w != previous:
                    words[w] = labels[int(ids[pos])]
                previous = w
            gold_tags.append(list(example.tags))
            pred_tags.append(words)
        metrics = token_metrics(gold_tags, pred_tags)
    metrics["main"] = metrics[MAIN_METRIC[head.type]]
    return metrics


def evaluate_file(
    model: MultiTaskModel,
    task: str,
    path: str | Path,
    *,
    format: str | None = None,
    text_column: str | int | None = None,
    label_column: str | int | None = None,
    header: bool | None = None,
    tag_column: int = -1,
    label_map: dict[str, str] | None = None,
    batch_size: int = 128,
    precision: str = "fp32",
) -> dict:
    """Score a model's task on any data file, including files it never saw; unknown gold labels are errors."""
    from mtsent.data import DataError, read_conll, read_table

    names = model.check_tasks([task])
    head = model.tasks[names[0]]
    path = Path(path)
    fmt = format or ("conll" if head.type == "token_classification" else None)
    if head.type == "token_classification":
        if fmt != "conll":
            raise ValueError(f"task {task!r} is a token task: evaluate it on a CoNLL file (format 'conll')")
        examples = list(read_conll(path, tag_column))
        gold = {t for e in examples for t in e.tags}
    else:
        if text_column is None or label_column is None:
            raise ValueError("a sentence task needs --text-column and --label-column")
        examples = read_table(path, text_column, label_column, format=fmt, header=header, label_map=label_map)
        gold = {e.label for e in examples}
    if not examples:
        raise DataError(f"{path}: no examples to evaluate")
    unknown = sorted(gold - set(head.labels))
    if unknown:
        raise DataError(f"{path}: labels {unknown} are not labels of task {task!r} (which has {head.labels})")
    features, truncation = encode_task(model, task, examples, model.encoder.max_length)
    metrics = evaluate_task(model, task, examples, features, batch_size, precision)
    metrics["truncation"] = truncation
    return metrics
