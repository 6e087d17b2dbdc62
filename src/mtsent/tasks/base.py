"""What a task type is: the contract every type implements, and the lookup of types by name.

A task type is one class in one module of this package. It owns everything that differs between tasks: the
head and which encoder features it reads, how examples become features (tokenising and label alignment), the
loss, how logits become predictions and metrics, the data formats and labels it accepts. The model, the
trainer and evaluation only call these methods, so a new type is a new module here (see docs/architecture.md).

Types register themselves by name with `@register_task_type` (the registry lives in `mtsent.config`, so a
config's `type:` field is checked against it); `get_task_type(name)` returns the class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError
from torch import Tensor, nn

from mtsent.batching import DataCollator, Window, padded_rows
from mtsent.config import HeadConfig, register_task_type, task_type_class
from mtsent.encoder import EncoderOutput, LongTexts, SentenceEncoder
from mtsent.spans import Word

__all__ = ["LongTexts", "NoOptions", "TaskType", "WindowOutput", "get_task_type", "register_task_type"]


class NoOptions(BaseModel):
    """The options of a type that has none: any key in a head's `options` is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class WindowOutput:
    """One task's head output for one window of a text (float32, on the CPU)."""

    window: Window
    logits: Tensor


def get_task_type(name: str) -> type[TaskType]:
    """The task type registered under `name`; an unknown name is a ValueError listing the registered ones."""
    return task_type_class(name)


class TaskType(ABC):
    """One kind of task, bound to one head's config (its name, labels and head options).

    Class attributes describe the type; class methods work before a head exists (reading data, choosing
    labels); instance methods need the head's config.
    """

    name: ClassVar[str]
    """Registry key: what `type:` says in a config."""
    level: ClassVar[str]
    """What one answer is about ("sentence", "token"): for display in the CLI, the app and the service."""
    formats: ClassVar[tuple[str, ...]]
    """Data formats (`DataConfig.format`) this type reads."""
    main_metric: ClassVar[str]
    """The metric that stands for the task in the monitored mean and in summaries."""
    reads_all_windows: ClassVar[bool]
    """False when an answer reads only a long text's first window unless asked for `long_texts="mean"`."""
    texts_per_example: ClassVar[int] = 1
    """Texts in one example: 1, or 2 for a pair type (its data has `text_pair_column`; `predict`, which answers
    single texts, leaves it out). A batch of n examples holds `texts_per_example * n` encoder rows: row
    `k * n + i` is text k of example i (so a pair batch is every first text, then every second text)."""
    options_model: ClassVar[type[BaseModel]] = NoOptions
    """The pydantic model of `HeadConfig.options`: what a type lets a config choose (its loss, say)."""
    decodings: ClassVar[tuple[str, ...]] = ("argmax",)
    """The `decoding`s a head config of this type may choose (`HeadOptions.decoding`), the default first."""
    distillable: ClassVar[bool] = False
    """True when a teacher's outputs can train this type's head (`teacher_targets`, `distillation_loss`)."""

    def __init__(self, config: HeadConfig) -> None:
        self.config = config
        self.options = self.read_options(config.options)

    @property
    def labels(self) -> list[str]:
        return self.config.labels

    # ---------------------------------------------------------------- config and data (no head needed)
    @classmethod
    def read_options(cls, options: dict[str, Any]) -> Any:
        """A head's `options` validated by `options_model`; a bad one is a ValueError naming each field."""
        try:
            return cls.options_model.model_validate(options)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in err.errors())
            raise ValueError(f"{cls.name} head options: {problems}") from None

    @classmethod  # noqa: B027 (an optional hook: a type that accepts any head config keeps it empty)
    def check_config(cls, config: HeadConfig) -> None:
        """Raise ValueError when a head config does not fit this type (called by HeadConfig's validation)."""

    @classmethod
    @abstractmethod
    def example_labels(cls, example: Any) -> Sequence[str]:
        """The labels one example carries (checked against the train split's label list)."""

    @classmethod
    @abstractmethod
    def label_list(cls, seen: set[str]) -> list[str]:
        """The head's labels, in order, from the labels seen in the train split."""

    @classmethod
    def file_format(cls, path: Path) -> str | None:
        """The format to read `path` in when none is given: the type's only format, else None (from the suffix)."""
        return cls.formats[0] if len(cls.formats) == 1 else None

    # ---------------------------------------------------------------- model
    @abstractmethod
    def build_head(self, sentence_dim: int, token_dim: int, encoder: SentenceEncoder | None = None) -> nn.Module:
        """A freshly initialised head; `sentence_dim` is the pooled embedding's size, `token_dim` a token's;
        `encoder` is the model's, for a head that starts from some of its layers."""

    @property
    def needs_hidden_states(self) -> bool:
        """Whether `logits` reads `EncoderOutput.hidden_states` (the model then asks the encoder for them)."""
        return False

    @abstractmethod
    def head_input(self, encoded: EncoderOutput) -> Tensor:
        """The encoder features this type's head reads."""

    def logits(self, head: nn.Module, encoded: EncoderOutput) -> Tensor:
        """The head's output for a batch: `head(head_input(encoded))`.

        A type whose rows are not independent overrides this; the sentence-pair type, for instance, returns the
        cosine between the sentence embeddings of the batch's first and second halves (see `texts_per_example`).
        """
        return padded_rows(head, self.head_input(encoded))

    @abstractmethod
    def loss(self, logits: Tensor, labels: Tensor, class_weights: Tensor | None = None) -> Tensor:
        """The training loss of a batch (computed in float32)."""

    def teacher_targets(
        self,
        features: Sequence[dict[str, Any]],
        teacher_features: Sequence[dict[str, Any]],
        teacher_logits: list[Tensor],
    ) -> list[Tensor]:
        """Per training feature, the teacher's distribution (rows, labels in this head's order) at each position
        the loss reads (`labels` != IGNORE_INDEX, in order): the cache that `distillation_loss` consumes.

        `teacher_features` are the same examples tokenised by the teacher (its tokenizer may differ), and
        `teacher_logits` its head's logits for each, columns already in this head's label order.
        """
        raise NotImplementedError(f"task type {self.name!r} cannot be distilled")

    def foreign_labels(self, word_ids: Sequence[int | None]) -> list[int] | int:
        """Where this head learns its teacher's output on another task's text (which has no labels of this task),
        given the word of each of its sub-words (None: a special token): a labels row as `tokenize` lays them
        out, 0 at each position the loss reads and IGNORE_INDEX elsewhere. Used by
        `distillation.cross_task_weights` (mtsent.training.teachers)."""
        raise NotImplementedError(f"task type {self.name!r} cannot be distilled")

    def distillation_loss(self, logits: Tensor, labels: Tensor, teacher_probs: Tensor, gold_weight: float) -> Tensor:
        """The loss against `gold_weight` x gold + (1 - gold_weight) x teacher (teacher annealing; float32).

        `teacher_probs` holds the batch's `teacher_targets` rows, concatenated in batch order.
        """
        raise NotImplementedError(f"task type {self.name!r} cannot be distilled")

    # ---------------------------------------------------------------- features
    @abstractmethod
    def tokenize(
        self, tokenizer: Any, examples: Sequence[Any], max_length: int, label_all_subwords: bool = False
    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """Model features of examples (`input_ids`, `attention_mask`, `labels`, ...) and truncation counts.

        `label_all_subwords` is read by types that label sub-words; the others ignore it.
        """

    def collator(self, tokenizer: Any) -> Callable[[Sequence[dict[str, Any]]], dict[str, Tensor]]:
        """What turns a list of this type's features into a batch: right padding (`DataCollator`) by default.

        A type whose feature holds more than one text (a sentence pair) returns a collator that stacks them in
        the row order `texts_per_example` describes.
        """
        return DataCollator(tokenizer)

    # ---------------------------------------------------------------- evaluation
    @abstractmethod
    def decode_batch(self, logits: Tensor) -> list[Any]:
        """Per-row outputs of a batch's logits, as `score` consumes them."""

    @abstractmethod
    def score(self, examples: Sequence[Any], features: Sequence[dict[str, Any]], outputs: Sequence[Any]) -> dict:
        """Metrics of the outputs against the examples' gold labels; must contain `main_metric`."""

    # ---------------------------------------------------------------- prediction
    @abstractmethod
    def decode(self, text: str, words: list[Word], outputs: list[WindowOutput], long_texts: LongTexts) -> Any:
        """One text's answer from its windows' outputs (the prediction object the type defines)."""
