"""The training config: one declarative file (YAML) that drives a whole run, validated by pydantic.

Sections: `model` (the encoder), `tasks` (per task: type, data, head, loss weight, class weights),
`training`, `optim`, `sampling`, `freezing`, `distillation`, `evaluation`, `output`. Unknown keys are errors
everywhere, and any value can be overridden from the command line with `--set section.key=value`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mtsent.config import EncoderConfig, HeadOptions, task_type_class
from mtsent.data import DataConfig
from mtsent.data.sampling import Strategy
from mtsent.data.weights import WeightMode
from mtsent.inputs import decode_utf8

__all__ = [
    "DistillationConfig",
    "EvaluationConfig",
    "FreezingConfig",
    "OptimConfig",
    "OutputConfig",
    "SamplingConfig",
    "TaskTrainConfig",
    "TrainConfig",
    "TrainingConfig",
    "apply_overrides",
    "load_config",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TaskTrainConfig(_Strict):
    """One task of a run: what it is, where its data lives, its head and how its loss counts."""

    type: str = Field(description="a registered task type (see mtsent.tasks)")
    data: DataConfig
    head: HeadOptions = Field(default_factory=HeadOptions)
    loss_weight: float = Field(1.0, gt=0, description="static weight of this task's loss")
    class_weights: WeightMode | list[float] = "none"

    @field_validator("type")
    @classmethod
    def _registered_type(cls, value: str) -> str:
        task_type_class(value)
        return value

    @model_validator(mode="after")
    def _head_fits_the_type(self) -> TaskTrainConfig:
        task_type = task_type_class(self.type)
        task_type.read_options(self.head.options)
        if self.head.decoding not in task_type.decodings:
            raise ValueError(f"head.decoding: a {self.type} task decodes with {' or '.join(task_type.decodings)}")
        return self


class TrainingConfig(_Strict):
    seed: int = 13
    batch_size: int = Field(32, ge=1)
    max_steps: int | None = Field(None, ge=1, description="optimizer steps; overrides epochs")
    epochs: float = Field(1.0, gt=0, description="multi-task epochs (see docs/data.md for the definition)")
    gradient_accumulation_steps: int = Field(1, ge=1)
    precision: Literal["bf16", "fp32"] = "bf16"
    max_length: int = Field(128, gt=2, description="sub-words per training example")
    label_all_subwords: bool = False
    batching: Literal["bucketed", "random"] = Field(
        "bucketed", description="bucketed: batches of similar lengths (less padding); random: plain shuffled batches"
    )
    loss_weighting: Literal["static", "uncertainty"] = "static"
    log_every: int = Field(10, ge=1)
    num_threads: int | None = Field(None, ge=1, description="torch threads; None = torch's default")


class OptimConfig(_Strict):
    learning_rate: float = Field(5e-5, gt=0, description="encoder learning rate")
    head_learning_rate: float = Field(1e-3, gt=0, description="heads, pooling and projection")
    weight_decay: float = Field(0.01, ge=0)
    layerwise_lr_decay: float = Field(1.0, gt=0, le=1, description="lr x decay^(depth from the top)")
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    warmup_steps: int | None = Field(None, ge=0, description="overrides warmup_ratio")
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    moments: Literal["shared", "per_task"] = Field(
        "shared",
        description="AdamW moments of the shared encoder: one set for all tasks, or one per task (each task's steps "
        "are scaled by its own gradient statistics, as in its single-task run)",
    )
    gradient_projection: Literal["none", "conflicting"] = Field(
        "none",
        description="conflicting: a step's gradient on the shared encoder loses its component along any other "
        "task's recent gradient direction it conflicts with (PCGrad with moving averages; "
        "mtsent.training.projection)",
    )
    projection_momentum: float = Field(
        0.9, ge=0, lt=1, description="momentum of each task's moving average of its shared gradients"
    )
    ema_decay: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="keep an exponential moving average of the weights with this decay per step; evaluation, "
        "`best` and `last` use the average (mtsent.training.averaging)",
    )


class SamplingConfig(_Strict):
    strategy: Strategy = "proportional"
    temperature: float = Field(2.0, gt=0)


class FreezingConfig(_Strict):
    """none: everything trains; backbone: the whole encoder is frozen (heads only); all: nothing trains;
    progressive: heads and the top layer first, one more layer group every `unfreeze_every` steps."""

    strategy: Literal["none", "backbone", "all", "progressive"] = "none"
    frozen_heads: list[str] = Field(default_factory=list)
    freeze_embeddings: bool = False
    unfreeze_every: int = Field(100, ge=1)


class DistillationConfig(_Strict):
    """Keep the student's sentence embedding near the starting encoder's (the teacher, frozen) on training texts.

    Each batch adds `embedding_weight` x (1 - cosine) (`loss: cosine`) or x the mean squared error (`loss: mse`)
    between the student's sentence embedding and the teacher's of the same inputs. The teacher's embeddings are
    computed once per training text before the first step and cached (see docs/training.md). `embedding_tasks`
    limits the term to those tasks' batches (None = every task): a token task's steps can then move the encoder
    for its own loss alone while the other tasks' steps hold the embeddings.

    `teachers` is the other kind: per task, a single-task model whose outputs the task's head learns, annealed
    towards the gold labels over training (`mtsent.training.teachers`).
    """

    embedding_weight: float = Field(0.0, ge=0, description="0 = off")
    loss: Literal["cosine", "mse"] = "cosine"
    embedding_tasks: list[str] | None = Field(
        None, description="tasks whose batches carry the embedding term; None = every task"
    )
    teachers: dict[str, str] = Field(
        default_factory=dict,
        description="task name -> single-task teacher model directory: its outputs are the task's annealed targets",
    )
    gold_weight_end: float = Field(
        1.0, gt=0, le=1, description="the gold label's share of a distilled task's target at the last step"
    )
    cross_task_weights: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        description="task with a teacher -> weight: its head also learns the teacher's outputs on the other "
        "single-text tasks' batches (no gold label to anneal to); empty = off",
    )
    cross_task_batches: list[str] | None = Field(
        None, description="tasks whose batches carry the cross-task targets; None = every single-text task"
    )


class EvaluationConfig(_Strict):
    every_steps: int | None = Field(None, ge=1, description="None = once per epoch")
    batch_size: int = Field(128, ge=1)
    monitor: str = Field("mean", description="'mean' of the tasks' main metrics, or 'task/metric'")
    patience: int | None = Field(None, ge=1, description="evaluations without improvement before stopping")
    min_delta: float = Field(0.0, ge=0)
    embedding_quality: DataConfig | None = Field(
        None, description="a file of scored text pairs (text_pair_column): STS Spearman of the embeddings, each eval"
    )

    @field_validator("embedding_quality")
    @classmethod
    def _one_pair_file(cls, data: DataConfig | None) -> DataConfig | None:
        if data is not None and (data.text_pair_column is None or data.dev or data.test or data.split):
            raise ValueError("embedding_quality reads one file of text pairs: give path and text_pair_column only")
        return data


class OutputConfig(_Strict):
    dir: str = "runs/{name}"
    save_best: bool = True
    save_last: bool = True
    plots: bool = True
    int8_calibration: int = Field(
        512, ge=0, description="training sentences whose activations calibrate the saved models' int8 mode (0 = none)"
    )


class TrainConfig(_Strict):
    name: str = Field("run", pattern=r"^[A-Za-z0-9_.\-]+$")
    model: EncoderConfig = Field(default_factory=EncoderConfig)
    init_from: str | None = Field(None, description="start from this mtsent model (its heads are kept)")
    data_dir: str | None = None
    tasks: dict[str, TaskTrainConfig] = Field(min_length=1)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    freezing: FreezingConfig = Field(default_factory=FreezingConfig)
    distillation: DistillationConfig = Field(default_factory=DistillationConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="before")
    @classmethod
    def _drop_null_tasks(cls, raw: Any) -> Any:
        """`--set tasks.topic=null` removes a task from a config: handy for single-task runs of a shared file."""
        if isinstance(raw, dict) and isinstance(raw.get("tasks"), dict):
            raw = {**raw, "tasks": {k: v for k, v in raw["tasks"].items() if v is not None}}
        return raw

    @model_validator(mode="after")
    def _cross_checks(self) -> TrainConfig:
        for task in self.distillation.teachers:
            if task not in self.tasks:
                raise ValueError(f"distillation.teachers names unknown task {task!r}; tasks: {list(self.tasks)}")
            if not task_type_class(self.tasks[task].type).distillable:
                raise ValueError(f"distillation.teachers.{task}: a {self.tasks[task].type} task cannot be distilled")
        for key in ("embedding_tasks", "cross_task_batches"):
            for task in getattr(self.distillation, key) or []:
                if task not in self.tasks:
                    raise ValueError(f"distillation.{key} names unknown task {task!r}; tasks: {list(self.tasks)}")
        if self.distillation.embedding_tasks == []:
            raise ValueError("distillation.embedding_tasks is empty: name at least one task, or leave it out for all")
        for task in self.distillation.cross_task_weights:
            if task not in self.distillation.teachers:
                raise ValueError(
                    f"distillation.cross_task_weights.{task}: {task!r} has no teacher in distillation.teachers"
                )
        if self.model.adapter is not None and self.init_from is not None:
            raise ValueError(
                "model.adapter trains a LoRA adapter on the pre-trained backbone (model.backbone); it cannot start "
                "from init_from"
            )
        if self.optim.moments == "per_task" and self.training.gradient_accumulation_steps > 1:
            raise ValueError(
                "optim.moments: per_task needs training.gradient_accumulation_steps: 1 (an accumulated step mixes "
                "the batches of several tasks, so no one task's moments would be its own)"
            )
        if self.optim.gradient_projection != "none":
            if self.training.gradient_accumulation_steps > 1:
                raise ValueError(
                    "optim.gradient_projection needs training.gradient_accumulation_steps: 1 (an accumulated step "
                    "sums several tasks' gradients, which can then no longer be told apart)"
                )
            if self.freezing.strategy != "none":
                raise ValueError(
                    f"optim.gradient_projection needs freezing.strategy: none, not {self.freezing.strategy!r} (it "
                    "projects the gradients of a fixed set of trained encoder parameters)"
                )
        unknown = [h for h in self.freezing.frozen_heads if h not in self.tasks]
        if unknown:
            raise ValueError(f"freezing.frozen_heads names unknown tasks {unknown}; tasks: {list(self.tasks)}")
        monitor = self.evaluation.monitor
        if monitor != "mean":
            task, _, metric = monitor.partition("/")
            if task not in self.tasks or not metric:
                raise ValueError(
                    f"evaluation.monitor must be 'mean' or 'task/metric' with a known task, got {monitor!r}"
                )
        return self

    @property
    def output_dir(self) -> Path:
        return Path(self.output.dir.replace("{name}", self.name))


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ValueError(f"--set {dotted}: {key!r} is not a section")
        node = child
    node[keys[-1]] = value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `section.key=value` overrides (values parsed as YAML, so numbers, lists and null work)."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects section.key=value, got {item!r}")
        _set_dotted(raw, key.strip(), yaml.safe_load(value))
    return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, **raw_fields: Any) -> TrainConfig:
    """Read a YAML config (or start from `raw_fields`), apply overrides and validate.

    Validation errors are re-raised as ValueError naming the file and each bad field by its dotted path.
    """
    raw: dict = {}
    source = "<config>"
    if path is not None:
        source = str(path)
        p = Path(path)
        if p.is_dir():
            raise IsADirectoryError(f"{p} is a directory, not a YAML config file")
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        try:
            raw = yaml.safe_load(decode_utf8(p.read_bytes(), f"config file {p}")) or {}
        except OSError as exc:
            raise OSError(f"cannot read config file {p}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            raise ValueError(f"{p}: invalid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{p}: expected a mapping at the top level")
    raw.update(raw_fields)
    apply_overrides(raw, overrides or [])
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "\n".join(
            f"  {'.'.join(str(x) for x in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ValueError(f"{source}: invalid config:\n{problems}") from None
