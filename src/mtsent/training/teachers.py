"""Knowledge distillation from single-task teachers with teacher annealing (Clark et al., ACL 2019, "BAM!
Born-Again Multi-Task Networks").

Each distilled task has a teacher: an ordinary mtsent model directory trained on that task alone
(`distillation.teachers` in the training config). The student's loss target is gold_weight x gold +
(1 - gold_weight) x teacher, with gold_weight rising linearly from 0 at the first step to 1 at the last, so
the multi-task student first imitates its teachers and ends on the gold labels (`distillation.gold_weight_end`
below 1 stops the rise there, so the teacher keeps a share to the end, as in plain knowledge distillation).
The loss is the task type's (`TaskType.distillation_loss`); this module only computes what the teachers say.

Teacher outputs are computed once, before training, and cached per training example (keyed by its index in
the task's train features): one teacher pass over each train set, about the cost of one epoch of inference,
instead of a teacher forward pass on every training step of every epoch (and no teacher kept in memory
while the student trains). Only the rows the loss reads are kept (a sentence's class distribution, a
labelled sub-word's tag distribution), in float16: for CoNLL-2003's 14k sentences, about 200k rows x 9 tags
x 2 bytes, a few MB. float16 rather than bfloat16 because probabilities lie in [0, 1], where float16's
10-bit mantissa is the more precise; values below its range become 0, which a cross-entropy target ignores.

Cross-task targets (`distillation.cross_task_weights`): a teacher also reads the other tasks' training texts, and
the student's head for its task learns those outputs on the other tasks' batches (at a constant weight: there
is no gold label to anneal to). A task that gets few batches then has a training signal on every batch of a
single-text task, and the shared encoder is held to what that task needs while the others train it. The
teacher reads the student's own sub-words, so it must share the student's tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mtsent.batching import IGNORE_INDEX
from mtsent.data.examples import example_texts
from mtsent.model import MultiTaskModel
from mtsent.training.evaluation import task_outputs

__all__ = ["ForeignTargets", "foreign_targets", "gold_weight", "teacher_cache"]


def gold_weight(step: int, total_steps: int, end: float = 1.0) -> float:
    """Teacher annealing: the weight of the gold label at optimizer step `step` (0-based), 0 first, `end` last."""
    return end * min(1.0, step / max(total_steps - 1, 1))


def _teacher_task(teacher: MultiTaskModel, task: str, where: str) -> str:
    """The teacher's head for `task`: the one of the same name, else its only one."""
    if task in teacher.tasks:
        return task
    if len(teacher.tasks) == 1:
        return next(iter(teacher.tasks))
    raise ValueError(
        f"distillation.teachers.{task}: {where} has no task {task!r} and more than one head "
        f"({', '.join(teacher.tasks) or 'none'}); give a single-task model or one with a {task!r} head"
    )


def _load_teacher(teacher_dir: str | Path, model: MultiTaskModel, task: str) -> tuple[MultiTaskModel, str, Tensor]:
    """The teacher, its head for `task` and the order that puts its label columns in the student's; refused
    (ValueError naming the task) unless it is of the same task type with the same labels (in any order)."""
    where = str(teacher_dir)
    teacher = MultiTaskModel.from_pretrained(teacher_dir, device=model.device)
    name = _teacher_task(teacher, task, where)
    student_type, teacher_type = model.task_types[task], teacher.task_types[name]
    if not student_type.distillable:
        raise ValueError(f"distillation.teachers.{task}: a {student_type.name} task cannot be distilled")
    if teacher_type.name != student_type.name:
        raise ValueError(
            f"distillation.teachers.{task}: {where} task {name!r} is a {teacher_type.name} task, "
            f"the student's {task!r} is a {student_type.name} task"
        )
    student_labels, teacher_labels = student_type.labels, teacher_type.labels
    if set(student_labels) != set(teacher_labels):
        raise ValueError(
            f"distillation.teachers.{task}: the labels of {where} task {name!r} differ from the student's: "
            f"only the teacher has {sorted(set(teacher_labels) - set(student_labels))}, "
            f"only the student has {sorted(set(student_labels) - set(teacher_labels))}"
        )
    return teacher, name, torch.tensor([teacher_labels.index(label) for label in student_labels])


def _teacher_logits(
    teacher: MultiTaskModel, name: str, order: Tensor, features: Sequence[dict[str, Any]], batch_size: int
) -> list[Tensor]:
    """The teacher head's fp32 logits of each feature (columns in the student's label order, padding cut)."""

    def rows(logits: Tensor) -> list[Tensor]:
        return list(logits.float().index_select(-1, order.to(logits.device)).cpu())

    logits = task_outputs(teacher, name, list(features), rows, batch_size, precision="fp32")
    return [row[: len(f["input_ids"])] if row.dim() > 1 else row for row, f in zip(logits, features)]


def teacher_cache(
    teacher_dir: str | Path,
    model: MultiTaskModel,
    task: str,
    examples: Sequence[Any],
    features: list[dict[str, Any]],
    max_length: int,
    batch_size: int = 128,
) -> list[Tensor]:
    """The teacher's distributions for each training feature of `task` (float16, on the CPU), as the student's
    task type lays them out (`TaskType.teacher_targets`).

    The teacher must be of the same task type with the same labels (in any order); otherwise a ValueError names
    the task and the labels that differ.
    """
    teacher, name, order = _load_teacher(teacher_dir, model, task)
    teacher_type = teacher.task_types[name]
    teacher_features, _ = teacher_type.tokenize(teacher.encoder.tokenizer, examples, max_length)
    logits = _teacher_logits(teacher, name, order, teacher_features, batch_size)
    targets = model.task_types[task].teacher_targets(features, teacher_features, logits)
    return [t.to(torch.float16) for t in targets]


@dataclass
class ForeignTargets:
    """A teacher's outputs on another task's training features: per feature, the labels row that marks where
    the student's head reads them (`TaskType.foreign_labels`) and the teacher's distributions there (float16)."""

    labels: list[list[int] | int]
    probs: list[Tensor]

    def batch(self, indices: Sequence[int], width: int) -> tuple[Tensor, Tensor]:
        """(labels, teacher rows) of the features at `indices`, labels right-padded to `width` positions."""
        rows = [self.labels[i] for i in indices]
        if isinstance(rows[0], list):
            labels = torch.tensor([row + [IGNORE_INDEX] * (width - len(row)) for row in rows], dtype=torch.long)
        else:
            labels = torch.tensor(rows, dtype=torch.long)
        return labels, torch.cat([self.probs[i] for i in indices])


def _word_ids(
    tokenizer: Any, task: str, examples: Sequence[Any], features: Sequence[dict[str, Any]], max_length: int
) -> list:
    """The word of each sub-word of each single-text feature: its own `word_ids`, else from tokenising its text
    again as `tokenize` did (the sub-words must come out the same)."""
    if all("word_ids" in f for f in features):
        return [f["word_ids"] for f in features]
    texts = [example_texts(e)[0] for e in examples]
    encoded = tokenizer(texts, truncation=True, max_length=max_length, return_token_type_ids=False)
    for i, feature in enumerate(features):
        if encoded["input_ids"][i] != list(feature["input_ids"]):
            raise ValueError(
                f"task {task!r}, training example {i}: tokenising its text again gave other sub-words than its features"
            )
    return [encoded.word_ids(i) for i in range(len(features))]


def foreign_targets(
    teacher_dir: str | Path,
    model: MultiTaskModel,
    task: str,
    foreign: dict[str, tuple[Sequence[Any], Sequence[dict[str, Any]]]],
    max_length: int,
    batch_size: int = 128,
) -> dict[str, ForeignTargets]:
    """What the teacher of `task` says on each other task's training examples (`foreign`: task -> (examples,
    features)), read from the student's own sub-words: the teacher must have the student's tokenizer (a
    ValueError says so)."""
    teacher, name, order = _load_teacher(teacher_dir, model, task)
    if teacher.encoder.tokenizer.get_vocab() != model.encoder.tokenizer.get_vocab():
        raise ValueError(
            f"distillation.teachers.{task}: {teacher_dir} has a tokenizer other than the student's; "
            "distillation.cross_task_weights needs teachers that read the student's sub-words"
        )
    student_type = model.task_types[task]
    targets = {}
    for other, (examples, features) in foreign.items():
        inputs = [{"input_ids": f["input_ids"], "attention_mask": [1] * len(f["input_ids"])} for f in features]
        logits = _teacher_logits(teacher, name, order, inputs, batch_size)
        words = _word_ids(model.encoder.tokenizer, other, examples, features, max_length)
        labels = [student_type.foreign_labels(w) for w in words]
        probs = []
        for row, label in zip(logits, labels):
            read = torch.tensor(label if isinstance(label, list) else [label]) != IGNORE_INDEX
            probs.append(torch.softmax(row.reshape(-1, row.size(-1)), dim=-1)[read].to(torch.float16))
        targets[other] = ForeignTargets(labels, probs)
    return targets
