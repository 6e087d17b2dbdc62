"""Declarative configuration of a model: the encoder and its task heads.

These are the objects written to a checkpoint's `config.json`; unknown keys are errors so that a typo in a
config never silently falls back to a default.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mtsent.pooling import POOLING_MODES

__all__ = ["DEFAULT_BACKBONE", "TASK_TYPES", "EncoderConfig", "HeadConfig", "ModelConfig", "TaskType"]

DEFAULT_BACKBONE = "default"
TaskType = Literal["sentence_classification", "token_classification"]
TASK_TYPES: tuple[str, ...] = ("sentence_classification", "token_classification")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EncoderConfig(_Strict):
    """The shared encoder: which backbone, how tokens become one vector, and its post-processing."""

    backbone: str = Field(
        DEFAULT_BACKBONE, description="'default' (packaged all-MiniLM-L6-v2), a directory or a hub id"
    )
    pooling: str = "mean"
    projection_dim: int | None = Field(None, gt=0, description="project sentence embeddings to this size")
    projection_dropout: float = Field(0.1, ge=0.0, lt=1.0)
    normalize: bool = Field(True, description="L2-normalise sentence embeddings returned by encode()")
    max_length: int | None = Field(None, gt=2, description="sub-words per input; None = backbone's own limit")

    @field_validator("pooling")
    @classmethod
    def _known_pooling(cls, value: str) -> str:
        if value not in POOLING_MODES:
            raise ValueError(f"unknown pooling {value!r}; choose one of {', '.join(POOLING_MODES)}")
        return value


class HeadConfig(_Strict):
    """One task head: a name, a type and its label set. A head is dropout + linear, optionally one hidden layer."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    type: TaskType
    labels: list[str] = Field(min_length=2)
    hidden_dim: int | None = Field(None, gt=0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)

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
