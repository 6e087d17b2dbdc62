"""Declarative configuration of a model: the encoder, its task heads, and the names they may use.

These are the objects written to a checkpoint's `config.json`; unknown keys are errors so that a typo in a
config never silently falls back to a default. Every list of allowed names lives here once: pooling modes and
the registry of task types (which `mtsent.tasks` fills: each type registers itself under its name).
"""

from __future__ import annotations

import importlib
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DEFAULT_BACKBONE",
    "DEFAULT_MODEL",
    "POOLING_MODES",
    "AdapterConfig",
    "Decoding",
    "DeltaConfig",
    "EncoderConfig",
    "HeadConfig",
    "HeadOptions",
    "ModelConfig",
    "PoolingMode",
    "register_task_type",
    "registered_task_types",
    "task_type_class",
]

DEFAULT_BACKBONE = "default"
DEFAULT_MODEL = "default"
"""As a backbone, 'default' is the packaged all-MiniLM-L6-v2; as a model to load, the shipped 3-task model."""
PoolingMode = Literal["mean", "cls", "max", "attention"]
Decoding = Literal["argmax", "viterbi"]
POOLING_MODES: tuple[str, ...] = get_args(PoolingMode)

_TASK_TYPES: dict[str, Any] = {}


def register_task_type(cls: Any) -> Any:
    """Class decorator: make a task type known under its `name` (what `type:` in a config refers to)."""
    if cls.name in _TASK_TYPES and _TASK_TYPES[cls.name] is not cls:
        raise ValueError(f"task type {cls.name!r} is already registered by {_TASK_TYPES[cls.name].__qualname__}")
    _TASK_TYPES[cls.name] = cls
    return cls


def _load_builtin_task_types() -> None:
    """Register the built-in task types by importing their package, by name (it sits layers above this one).

    `import mtsent` imports its classes lazily, so a config can be read before anything imported `mtsent.tasks`.
    """
    importlib.import_module("mtsent.tasks")


def registered_task_types() -> dict[str, Any]:
    """Every registered task type class by name, in registration order."""
    _load_builtin_task_types()
    return dict(_TASK_TYPES)


def task_type_class(name: str) -> Any:
    """The task type class registered under `name`, or a ValueError listing the registered names."""
    if name not in _TASK_TYPES:
        _load_builtin_task_types()
    try:
        return _TASK_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(_TASK_TYPES))
        raise ValueError(f"unknown task type {name!r}; registered task types: {known}") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class AdapterConfig(_Strict):
    """A LoRA adapter on the backbone (mtsent.adapters): the backbone stays frozen and only low-rank updates of
    its linear layers train (W + B A * alpha / r), so a saved model holds only what differs from the backbone."""

    type: Literal["lora"] = "lora"
    r: int = Field(16, gt=0, description="rank of the low-rank update")
    alpha: float = Field(32.0, gt=0, description="scale: the update is multiplied by alpha / r")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="dropout on the adapter's input")
    target_modules: str | list[str] = Field(
        "all-linear", description="'all-linear' or the names of the linear layers to adapt (e.g. [query, value])"
    )
    train_biases: bool = Field(True, description="also train (and save) every bias of the backbone")
    embedding_r: int | None = Field(
        None, gt=0, description="rank of an update of the word embeddings too (None: they stay the backbone's)"
    )
    origin: Literal["trained", "compressed"] = Field(
        "trained", description="trained as an adapter, or compressed from a full fine-tune (`mtsent compress`)"
    )
    storage_dtype: Literal["float32", "float16"] = Field(
        "float32", description="how the adapter's matrices are saved (float16: half the file; loading casts back)"
    )
    base_sha256: str | None = Field(
        None, description="fingerprint of the backbone weights the adapter was trained on (written when saving)"
    )


class DeltaConfig(_Strict):
    """A fully fine-tuned backbone saved as its difference from the pre-trained one, quantised (mtsent.delta): each
    weight matrix's change in `bits` bits per value (the word embeddings' in `embedding_bits`) with one float16
    scale per `group_size` values, the vectors (biases, layer norms) whole. Loading adds it to the backbone."""

    type: Literal["quantized"] = "quantized"
    bits: int = Field(3, ge=2, le=8, description="bits per value of each weight matrix's change")
    embedding_bits: int = Field(2, ge=2, le=8, description="bits per value of the word embeddings' change")
    group_size: int = Field(128, gt=0, description="values that share one scale (absmax / the largest level)")
    base_sha256: str | None = Field(
        None, description="fingerprint of the backbone weights the difference is taken from (written when saving)"
    )


class EncoderConfig(_Strict):
    """The shared encoder: which backbone, how tokens become one vector, and its post-processing."""

    backbone: str = Field(
        DEFAULT_BACKBONE, description="'default' (packaged all-MiniLM-L6-v2), a directory or a hub id"
    )
    pooling: PoolingMode = "mean"
    projection_dim: int | None = Field(None, gt=0, description="project sentence embeddings to this size")
    projection_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    normalize: bool = Field(True, description="L2-normalise sentence embeddings returned by encode()")
    max_length: int | None = Field(None, gt=2, description="sub-words per input; None = backbone's own limit")
    adapter: AdapterConfig | None = Field(None, description="train a LoRA adapter instead of the whole backbone")
    delta: DeltaConfig | None = Field(
        None, description="saved as a quantised difference from the backbone (`mtsent compress`); None once loaded"
    )

    @field_validator("pooling", mode="before")
    @classmethod
    def _known_pooling(cls, value: object) -> object:
        # a before-validator only for the message: pydantic's own lists the choices but not the word "pooling"
        if value not in POOLING_MODES:
            raise ValueError(f"unknown pooling {value!r}; choose one of {', '.join(POOLING_MODES)}")
        return value

    @model_validator(mode="after")
    def _one_storage(self) -> EncoderConfig:
        if self.adapter is not None and self.delta is not None:
            raise ValueError("an encoder is an adapter model or a quantised difference, not both (adapter, delta)")
        return self


class HeadOptions(_Strict):
    """How a head is built (dropout + linear, optionally with one hidden layer: linear + GELU + dropout) and how
    its outputs are decoded (the decodings a task type offers are its `decodings`)."""

    hidden_dim: int | None = Field(None, gt=0, description="one hidden layer of this size; None = linear head")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    options: dict[str, Any] = Field(default_factory=dict, description="the task type's own options (its loss...)")
    decoding: Decoding = Field(
        "argmax", description="how outputs become labels: argmax, or viterbi (token tasks: only valid BIO sequences)"
    )


class HeadConfig(HeadOptions):
    """One task head: a name, a registered task type, its label set and how the head is built.

    The type checks the rest of the config (`TaskType.check_config`, `TaskType.options_model`): the
    classification types need two or more labels and take no options, the similarity type takes no labels.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    type: str
    labels: list[str] = Field(default_factory=list)

    @field_validator("type")
    @classmethod
    def _registered_type(cls, value: str) -> str:
        task_type_class(value)
        return value

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, labels: list[str]) -> list[str]:
        seen = set()
        for i, label in enumerate(labels):
            if not isinstance(label, str) or not label:
                raise ValueError(f"labels[{i}] must be a non-empty string")
            if label in seen:
                raise ValueError(f"labels[{i}] {label!r} is repeated")
            seen.add(label)
        return labels

    @model_validator(mode="after")
    def _fits_its_type(self) -> HeadConfig:
        task_type = task_type_class(self.type)
        if self.decoding not in task_type.decodings:
            raise ValueError(
                f"a {self.type} head decodes with {' or '.join(task_type.decodings)}, not {self.decoding!r}"
            )
        task_type.read_options(self.options)
        task_type.check_config(self)
        return self


class ModelConfig(_Strict):
    """Everything needed to rebuild a model from its directory without the original backbone files."""

    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    tasks: list[HeadConfig] = Field(default_factory=list)
    backbone_config: dict = Field(default_factory=dict, description="the Hugging Face config of the backbone")
    mtsent_version: str = ""

    @model_validator(mode="after")
    def _unique_task_names(self) -> ModelConfig:
        names = [t.name for t in self.tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"task names must be unique; repeated: {', '.join(dupes)}")
        return self

    def task(self, name: str) -> HeadConfig:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)
