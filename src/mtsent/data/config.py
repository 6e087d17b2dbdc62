"""The ``data:`` part of a task config, the ``tasks:`` section of YAML files and the data dir lookup."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mtsent.config import task_type_class
from mtsent.data.errors import DataError

DataFormat = Literal["conll", "tsv", "csv", "jsonl", "hf"]
DATA_ENV = "MTSENT_DATA"


class SplitConfig(BaseModel):
    """How a single source is cut into train/dev/test (see :func:`mtsent.data.split_examples`)."""

    model_config = ConfigDict(extra="forbid")

    ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 13
    stratify: bool = True

    @field_validator("ratios")
    @classmethod
    def _ratios_sum_to_one(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(r < 0 for r in v) or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"ratios must be non-negative and sum to 1, got {v}")
        return v


class DataConfig(BaseModel):
    """Where one task's data lives and how to read it; file paths are relative to the data dir.

    Either ``train`` (plus optional ``dev``/``test``) or ``path`` (one file, split with ``split``).
    For ``format: hf``, ``hf_name`` is a dataset name or a ``save_to_disk`` directory (relative to the
    data dir when it exists there) and ``train``/``dev``/``test`` are split *names*. Setting ``split``
    with only ``train`` splits that source three ways. ``max_examples`` caps every split (first N
    after a seeded shuffle) for quick runs. ``text_pair_column`` makes each row a pair of texts whose label
    is a numeric score (a sentence-pair task, e.g. STS-B), in tsv, csv or jsonl. ``quoted: false`` reads
    quote characters in tsv/csv as text (GLUE's TSV files, STS-B among them, are written that way).
    """

    model_config = ConfigDict(extra="forbid")

    format: DataFormat
    train: str | None = None
    dev: str | None = None
    test: str | None = None
    path: str | None = None
    split: SplitConfig | None = None
    text_column: str | int | None = None
    text_pair_column: str | int | None = None
    label_column: str | int | None = None
    tag_column: int = -1
    header: bool | None = None
    quoted: bool = True
    label_map: dict[str, str] | None = None
    hf_name: str | None = None
    max_examples: int | None = Field(default=None, gt=0)

    @field_validator("label_map", mode="before")
    @classmethod
    def _stringify_label_map(cls, v: Any) -> Any:
        # YAML reads `{0: negative}` with an int key; labels from files are always strings.
        if isinstance(v, dict):
            return {str(k): str(val) for k, val in v.items()}
        return v

    @model_validator(mode="after")
    def _check_sources(self) -> DataConfig:
        if self.format == "hf":
            if not self.hf_name:
                raise ValueError("format 'hf' needs hf_name (a dataset name or a save_to_disk directory)")
            if self.path is not None:
                raise ValueError("format 'hf' takes split names in train/dev/test, not path")
            if self.train is None:
                self.train = "train"
        else:
            if self.hf_name is not None:
                raise ValueError(f"hf_name only applies to format 'hf', not {self.format!r}")
            if (self.path is None) == (self.train is None):
                raise ValueError("give exactly one of 'train' (with optional dev/test) or 'path' (one file to split)")
            if self.path is not None and (self.dev or self.test):
                raise ValueError("'path' is split automatically; do not also give dev/test")
        if self.split is not None and (self.dev or self.test):
            raise ValueError("'split' applies to a single source; do not also give dev/test")
        if not self.quoted and self.format not in ("tsv", "csv"):
            raise ValueError(f"quoted applies to tsv and csv, not {self.format!r}")
        if self.text_pair_column is not None:
            if self.format not in ("tsv", "csv", "jsonl"):
                raise ValueError(f"text_pair_column applies to tsv, csv and jsonl, not {self.format!r}")
            if self.label_map is not None:
                raise ValueError("label_map does not apply to text pairs: their label is a numeric score")
        if self.format == "conll":
            for name in ("text_column", "label_column", "header", "label_map"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name} does not apply to format 'conll' (use tag_column)")
        elif self.text_column is None or self.label_column is None:
            raise ValueError(f"format {self.format!r} needs text_column and label_column")
        return self

    @property
    def splits_single_source(self) -> bool:
        """True when train/dev/test are cut from one source instead of being given."""
        return self.path is not None or (self.split is not None and not self.dev and not self.test)

    @property
    def split_settings(self) -> SplitConfig:
        return self.split or SplitConfig()


class TaskDataSpec(BaseModel):
    """One entry of the ``tasks:`` mapping; keys owned by the trainer (head, loss_weight...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    type: str
    data: DataConfig

    @field_validator("type")
    @classmethod
    def _registered_type(cls, value: str) -> str:
        task_type_class(value)
        return value


def read_task_specs(config_path: str | Path) -> dict[str, TaskDataSpec]:
    """Read and validate the ``tasks:`` section of a YAML config (only ``type`` and ``data`` per task)."""
    import yaml

    path = Path(config_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: config file not found") from None
    except yaml.YAMLError as err:
        raise DataError(f"{path}: invalid YAML: {err}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("tasks"), dict) or not raw["tasks"]:
        raise DataError(f"{path}: expected a non-empty 'tasks:' mapping of task name -> {{type, data}}")
    specs: dict[str, TaskDataSpec] = {}
    for name, entry in raw["tasks"].items():
        try:
            specs[str(name)] = TaskDataSpec.model_validate(entry)
        except ValidationError as err:
            raise DataError(f"{path}: task {name!r}: invalid data config:\n{err}") from None
    return specs


def _repo_data_dir() -> Path:
    # src/mtsent/data/config.py -> parents[3] is the repository root; data sits beside it.
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def resolve_data_dir(explicit: str | Path | None = None) -> Path:
    """Find the data directory: ``explicit`` (--data-dir), then ``$MTSENT_DATA``, then
    ``../shared/data`` from the working directory, then beside the repository root.

    An explicit directory or env var that does not exist is an error (not silently replaced by a
    fallback); otherwise the error lists every place tried.
    """
    if explicit is not None:
        p = Path(explicit).expanduser()
        if not p.is_dir():
            raise DataError(f"data dir not found: {p} (from --data-dir)")
        return p
    env = os.environ.get(DATA_ENV)
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise DataError(f"data dir not found: {p} (from ${DATA_ENV})")
        return p
    tried: list[str] = ["--data-dir (not given)", f"${DATA_ENV} (not set)"]
    for p, why in (
        (Path.cwd() / ".." / "shared" / "data", "../shared/data from the working directory"),
        (_repo_data_dir(), "../shared/data beside the repository root"),
    ):
        if p.is_dir():
            return p.resolve()
        tried.append(f"{p} ({why}: missing)")
    raise DataError("no data directory found; tried:\n  " + "\n  ".join(tried))
