"""The multi-task trainer: one config in, a run directory with checkpoints, metrics and plots out.

Each optimizer step draws `gradient_accumulation_steps` batches; each batch belongs to one task chosen by the
multi-task sampler and runs the shared encoder plus that task's head. Built on accelerate, so the same loop
runs on one CPU (bf16 autocast), a GPU, or several processes (`accelerate launch` / `torchrun`, DDP).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import random
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mtsent.batching import bucketed_batches, random_batches
from mtsent.checkpoint import CONFIG_NAME
from mtsent.config import HeadConfig, ModelConfig
from mtsent.data import (
    MultiTaskSampler,
    TaskSplits,
    class_weights,
    load_task_data,
    resolve_data_dir,
    steps_per_epoch,
)
from mtsent.data.examples import example_texts
from mtsent.encoder import calibrate_directory
from mtsent.model import MultiTaskModel
from mtsent.precision import drop_inference_copies
from mtsent.quantization import load_calibration, save_calibration
from mtsent.training.averaging import WeightAverage
from mtsent.training.config import OutputConfig, TrainConfig, load_config
from mtsent.training.distillation import EmbeddingDistillation
from mtsent.training.embedding_quality import METRIC, SECTION, EmbeddingQuality
from mtsent.training.evaluation import evaluate_task, tokenize_task
from mtsent.training.freezing import count_parameters, set_trainable
from mtsent.training.losses import FOREIGN_LABELS, FOREIGN_PROBS, TrainingObjective, UncertaintyWeighting
from mtsent.training.optim import TaskMomentsAdamW, build_optimizer, build_scheduler
from mtsent.training.projection import GradientProjection
from mtsent.training.report import MetricsLog, eval_table, plot_run
from mtsent.training.state import load_training_state, save_training_state, saved_step
from mtsent.training.teachers import ForeignTargets, foreign_targets, gold_weight, teacher_cache

__all__ = [
    "TaskStream",
    "TrainState",
    "Trainer",
    "TrainingInterrupted",
    "calibration_texts",
    "training_calibration_texts",
]


class TaskStream:
    """A task's endless, deterministic sequence of training batches, length-bucketed or plain shuffled.

    Pass `k` over the data is shuffled with a seed derived from (seed, task, k), so the position (pass, index)
    is all that a resumed run needs. With several processes, each takes its own batch of every `world` batches.
    """

    def __init__(
        self,
        name: str,
        lengths: list[int],
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        bucketed: bool = True,
    ):
        self.name, self.lengths, self.batch_size, self.seed = name, lengths, batch_size, seed
        self.rank, self.world, self.bucketed = rank, world, bucketed
        self.epoch, self.position = 0, 0
        self._batches: list[list[int]] | None = None

    def _pass(self) -> list[list[int]]:
        if self._batches is None:
            seed = zlib.crc32(f"{self.seed}:{self.name}:{self.epoch}".encode())
            if self.bucketed:
                batches = bucketed_batches(self.lengths, self.batch_size, seed=seed)
            else:
                batches = random_batches(len(self.lengths), self.batch_size, seed=seed)
            usable = len(batches) - len(batches) % self.world or len(batches)
            self._batches = batches[:usable]
        return self._batches

    def next(self) -> list[int]:
        batches = self._pass()
        if self.position + self.world > len(batches):
            self.epoch, self.position, self._batches = self.epoch + 1, 0, None
            batches = self._pass()
        batch = batches[(self.position + self.rank) % len(batches)]
        self.position += self.world
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position, self._batches = state["epoch"], state["position"], None


@dataclass
class _Task:
    name: str
    type: str
    splits: TaskSplits
    train_features: list[dict] = field(default_factory=list)
    dev_features: list[dict] = field(default_factory=list)
    truncation: dict[str, dict[str, int]] = field(default_factory=dict)
    class_weights: torch.Tensor | None = None


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class TrainState:
    """Where a run stands. Saved in `last` (as JSON, beside the optimizer, the batch streams and the random
    generators) and restored by a resumed run."""

    step: int = 0
    examples: int = 0
    best: float | None = None
    best_step: int | None = None
    best_results: dict[str, dict] = field(default_factory=dict)
    bad_evals: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    embedding_quality: dict[str, float] = field(default_factory=dict)
    """The latest evaluation's embedding quality (`evaluation.embedding_quality`), with its step."""
    best_embedding_quality: dict[str, float] = field(default_factory=dict)
    """The embedding quality of the best checkpoint."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during `fit()`: where the run stopped and the checkpoint a resumed run continues from.

    A KeyboardInterrupt, so code that stops on Ctrl-C still does; the CLI prints it and how to resume.
    """

    def __init__(self, run_dir: Path, step: int, checkpoint_step: int | None) -> None:
        self.run_dir, self.step, self.checkpoint_step = run_dir, step, checkpoint_step
        self.checkpoint = run_dir / "last" if checkpoint_step is not None else None
        where = (
            f"last checkpoint: {self.checkpoint} (step {checkpoint_step})"
            if self.checkpoint is not None
            else "no checkpoint was saved yet"
        )
        super().__init__(f"training interrupted at step {step}; {where}")


def calibration_texts(train: dict[str, Sequence[Any]], count: int, seed: int) -> list[str]:
    """`count` training texts drawn evenly across tasks (seeded): each task's kind of text shapes the statistics."""
    rng = random.Random(seed)
    share = math.ceil(count / len(train))
    texts = [
        text
        for examples in train.values()
        for example in rng.sample(list(examples), min(share, len(examples)))
        for text in example_texts(example)
    ]
    return texts[:count]


def training_calibration_texts(config: TrainConfig, data_dir: Path | None = None) -> list[str]:
    """The int8 calibration texts a run of `config` measures at its end (read from its training data): to
    calibrate a model of that run made before training did it (`model.encoder.calibrate_int8(texts)`)."""
    train = {n: load_task_data(n, t.type, t.data, data_dir).train for n, t in config.tasks.items()}
    count = config.output.int8_calibration or OutputConfig.model_fields["int8_calibration"].default
    return calibration_texts(train, count, config.training.seed)


class Trainer:
    """Train a MultiTaskModel from a TrainConfig: `Trainer(config).fit()` returns the run summary.

    `fit()` reads top to bottom: `setup()` builds everything and restores a resumed run, then each
    `train_step()` is one optimizer step and every `eval_every` steps `evaluate_and_checkpoint()` scores the dev
    sets, keeps the best model and saves `last`.
    """

    def __init__(
        self,
        config: TrainConfig | str | Path | dict,
        overrides: list[str] | None = None,
        *,
        resume: bool = False,
        show_progress: bool = True,
        console: Console | None = None,
    ) -> None:
        if isinstance(config, TrainConfig):
            self.config = load_config(None, overrides, **config.model_dump()) if overrides else config
        elif isinstance(config, dict):
            self.config = load_config(None, overrides, **config)
        else:
            self.config = load_config(config, overrides)
        self.resume = resume
        self.show_progress = show_progress
        self.console = console or Console()
        self.run_dir = self.config.output_dir
        self.model: MultiTaskModel | None = None

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict:
        """Run training (or only evaluation, for freezing strategy `all`) and return the summary dict.

        Ctrl-C raises `TrainingInterrupted`, which names the checkpoint that `resume=True` continues from.
        """
        started = time.perf_counter()
        state = TrainState()
        try:
            state = self.setup()
            # freezing strategy `all`: nothing trains, the run is a single evaluation
            if self.config.freezing.strategy == "all":
                self.out.print("freezing strategy 'all': nothing trains; evaluating only")
                self.evaluate(state)
                self.total_steps = state.step
            # train: one optimizer step at a time, a log line every `log_every` steps, an evaluation and a
            # checkpoint every `eval_every` steps and at the end
            log_every = self.config.training.log_every
            losses: dict[str, list[float]] = {n: [] for n in self.loss_names}
            window_examples, window_start = state.examples, time.perf_counter()
            with self._progress() as progress:
                bar = progress.add_task("training", total=self.total_steps, completed=state.step, info="")
                while state.step < self.total_steps and not state.stopped_early:
                    for name, loss in self.train_step(state):
                        losses[name].append(loss)
                    if state.step % log_every == 0 or state.step == self.total_steps:
                        rate = (state.examples - window_examples) / max(time.perf_counter() - window_start, 1e-9)
                        window_examples, window_start = state.examples, time.perf_counter()
                        progress.update(bar, info=self.log_train(state.step, losses, rate))
                        losses = {n: [] for n in self.loss_names}
                    progress.update(bar, completed=state.step)
                    if state.step % self.eval_every == 0 or state.step == self.total_steps:
                        self.evaluate_and_checkpoint(state)
        except KeyboardInterrupt as interrupt:
            raise TrainingInterrupted(self.run_dir, state.step, saved_step(self.run_dir / "last")) from interrupt
        return self._finish(state, time.perf_counter() - started)

    def train_step(self, state: TrainState) -> list[tuple[str, float]]:
        """One optimizer step over `gradient_accumulation_steps` batches, each of the task the sampler draws;
        returns (task, loss) of each batch, ("distillation", loss) of each with embedding distillation and
        ("cross_task", loss) of each with cross-task targets."""
        cfg, accum = self.config, self.config.training.gradient_accumulation_steps
        started = time.perf_counter()
        # progressive unfreezing: the layers this step trains
        if cfg.freezing.strategy == "progressive":
            before = count_parameters(self.model)[0]
            set_trainable(self.model, cfg.freezing, state.step)
            if count_parameters(self.model)[0] != before:
                self.out.print(f"step {state.step}: unfroze another layer group; {self._trainable_note()}")
        # forward and backward per batch; accelerate syncs, clips and steps the optimizer on the last one
        self.objective.train()
        losses = []
        for micro in range(accum):
            name = self.sampler.sample(state.step * accum + micro)
            indices = self.streams[name].next()
            batch = self.collators[name]([self.tasks[name].train_features[i] for i in indices])
            if self.distillation is not None and name in self.distillation.cache:
                batch["teacher_embeddings"] = self.distillation.targets(name, indices)
            if name in self.teacher_probs:  # a task with a teacher: the cached teacher rows of these examples
                batch["teacher_probs"] = torch.cat([self.teacher_probs[name][i] for i in indices])
            for other, targets in self.foreign.get(name, {}).items():  # other tasks' teachers on these texts
                labels, probs = targets.batch(indices, batch["input_ids"].size(1))
                batch[FOREIGN_LABELS + other], batch[FOREIGN_PROBS + other] = labels, probs
            batch = {k: v.to(self.accelerator.device) for k, v in batch.items()}
            with self.accelerator.accumulate(self.objective):
                weight = gold_weight(state.step, self.total_steps, cfg.distillation.gold_weight_end)
                losses_of_batch = self.objective(batch, name, weight)
                loss, weighted = losses_of_batch.loss, losses_of_batch.weighted
                if weighted.requires_grad:
                    self.accelerator.backward(weighted)
                    if self.projection is not None:
                        self.projection.project(name)
                if self.task_moments is not None:
                    self.task_moments.use(name)
                if self.accelerator.sync_gradients and cfg.optim.max_grad_norm:
                    params = [p for p in self.model.parameters() if p.grad is not None]  # not the loss weights
                    if params:
                        self.accelerator.clip_grad_norm_(params, cfg.optim.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad()
            losses.append((name, float(loss.detach())))
            if losses_of_batch.embedding is not None:
                losses.append(("distillation", float(losses_of_batch.embedding.detach())))
            if losses_of_batch.cross_task is not None:
                losses.append(("cross_task", float(losses_of_batch.cross_task.detach())))
            state.examples += len(indices) * self.accelerator.num_processes
        # the learning-rate schedule counts optimizer steps; the weight average reads each step's weights
        self.scheduler.step()
        if self.average is not None:
            self.average.update(self.model)
        state.step += 1
        state.train_seconds += time.perf_counter() - started
        return losses

    def evaluate_and_checkpoint(self, state: TrainState) -> None:
        """Evaluate (keeping the best checkpoint, deciding early stopping), then save `last` to resume from."""
        self.evaluate(state)
        self.save_last(state)

    def evaluate(self, state: TrainState) -> None:
        """Score every task on its dev split (and the embeddings, with `evaluation.embedding_quality`); save `best`
        when the monitored value improves by more than `min_delta`; stop early after `patience` evaluations
        without improvement."""
        cfg = self.config
        # dev metrics of every task that has a dev split
        started = time.perf_counter()
        model = self.evaluated_model
        drop_inference_copies(model)  # fused AdamW steps bump no version counter: the cache cannot see them
        results = {
            n: evaluate_task(model, n, t.splits.dev, t.dev_features, cfg.evaluation.batch_size, cfg.training.precision)
            for n, t in self.tasks.items()
            if t.dev_features
        }
        # the shared encoder's sentence embeddings (main process: it is logged, not monitored)
        if self.embedding_quality is not None and self.accelerator.is_main_process:
            state.embedding_quality = {"step": state.step, **self.embedding_quality.evaluate(model.encoder)}
            self._log_embedding_quality(state)
        state.eval_seconds += time.perf_counter() - started
        if not results:
            return
        # improvement bookkeeping
        monitor = self._monitor_value(results)
        improved = state.best is None or monitor > state.best + cfg.evaluation.min_delta
        if improved:
            state.best, state.best_step, state.best_results, state.bad_evals = monitor, state.step, results, 0
            state.best_embedding_quality = state.embedding_quality
        else:
            state.bad_evals += 1
        # the main process logs, prints the table and writes the best checkpoint
        if self.accelerator.is_main_process:
            epoch = round(state.step * cfg.training.gradient_accumulation_steps / self.micro_per_epoch, 4)
            for n, m in results.items():
                scalars = {k: v for k, v in m.items() if isinstance(v, int | float)}
                self.log.log({"step": state.step, "epoch": epoch, "kind": "eval", "task": n, **scalars})
            best_main = {n: m["main"] for n, m in state.best_results.items()}
            self.out.print(eval_table(state.step, results, best_main, monitor))
            if improved and cfg.output.save_best:
                best = {"step": state.step, "monitor": monitor, "metrics": results}
                if state.embedding_quality:
                    best[SECTION] = state.embedding_quality
                best_json = json.dumps(best, indent=2)
                model.save_pretrained(
                    self.run_dir / "best",
                    write_extra=lambda d: (d / "metrics.json").write_text(best_json, encoding="utf-8"),
                )
        # early stopping
        patience = cfg.evaluation.patience
        if patience is not None and state.bad_evals >= patience:
            state.stopped_early = True
            self.out.print(f"early stopping at step {state.step}: no improvement in {patience} evaluations")

    def save_last(self, state: TrainState) -> None:
        """Write `last`: the model plus everything a resumed run needs (main process, unless output.save_last
        is off)."""
        if not (self.accelerator.is_main_process and self.config.output.save_last):
            return
        trainer_state = {"state": asdict(state), "streams": {n: s.state_dict() for n, s in self.streams.items()}}
        extra = {"log_vars": self.weighting.log_vars} if self.weighting is not None else {}
        if self.projection is not None:
            trainer_state["projection"] = self.projection.state_dict()
            extra |= self.projection.state_tensors()
        if self.average is not None:  # `last` holds the average; the training weights go with the trainer state
            trainer_state["average_updates"] = self.average.updates
            extra |= WeightAverage.raw_tensors(self.model)
        self.evaluated_model.save_pretrained(
            self.run_dir / "last",
            write_extra=lambda d: save_training_state(d, self.optimizer, self.scheduler, trainer_state, extra),
        )

    @property
    def evaluated_model(self) -> MultiTaskModel:
        """The model evaluation scores and checkpoints hold: the weight average with `optim.ema_decay`, else the
        training weights."""
        return self.average.model if self.average is not None else self.model

    def _log_embedding_quality(self, state: TrainState) -> None:
        """One metrics row per value (task `embedding`: `embedding/sts_spearman` in metrics.csv) and one line out."""
        quality = state.embedding_quality
        epoch = round(state.step * self.config.training.gradient_accumulation_steps / self.micro_per_epoch, 4)
        self.log.log({"step": state.step, "epoch": epoch, "kind": "eval", "task": SECTION, **quality})
        self.out.print(
            f"embedding quality at step {state.step}: {METRIC} {quality[METRIC]:.2f} "
            f"({quality['pairs']} pairs of {self.embedding_quality.source}, fp32, Spearman x100)"
        )

    def log_train(self, step: int, losses: dict[str, list[float]], rate: float) -> str:
        """Log each task's mean loss since the last log line; returns the progress bar's summary of it."""
        means = {n: sum(v) / len(v) for n, v in losses.items() if v}
        if self.accelerator.is_main_process:
            epoch = round(step * self.config.training.gradient_accumulation_steps / self.micro_per_epoch, 4)
            lr = self.scheduler.get_last_lr()[0]
            task_weights = self.weighting.weights() if self.weighting is not None else {}
            for n, value in means.items():
                record = {"step": step, "epoch": epoch, "kind": "train", "task": n, "loss": value}
                record |= {"batches": len(losses[n]), "lr": lr, "examples_per_s": rate}
                self.log.log(record | ({"loss_weight": task_weights[n]} if n in task_weights else {}))
        return " | ".join(f"{n} {v:.3f}" for n, v in means.items()) + f" | {rate:.0f} ex/s"

    # ------------------------------------------------------------------ setup
    def setup(self) -> TrainState:
        """Everything before the first step: the accelerator, data, model, features, sampler, optimizer and
        run directory; with `resume`, the saved state. Returns the state training starts from."""
        cfg, tc = self.config, self.config.training
        started = time.perf_counter()
        if tc.num_threads:
            torch.set_num_threads(tc.num_threads)
        last_dir = self.run_dir / "last"
        if self.resume and not last_dir.is_dir():
            raise FileNotFoundError(f"cannot resume: no checkpoint at {last_dir}")
        if not self.resume and last_dir.exists():
            raise FileExistsError(
                f"{self.run_dir} already holds a run; pass --resume to continue it, or choose another name/output.dir"
            )
        # the accelerator (one process, or one of a DDP group); only the main process prints and writes
        self.accelerator = accelerator = self._accelerator()
        world, rank = accelerator.num_processes, accelerator.process_index
        if world > 1 and cfg.freezing.strategy == "progressive":
            raise ValueError("progressive unfreezing changes which parameters train; it is not supported with DDP")
        self.out = self.console if accelerator.is_main_process else Console(quiet=True)
        _seed_everything(tc.seed)

        # data, model and tokenised features; the embedding-quality pairs; the distillation teacher's embeddings
        self.tasks = tasks = self._load_tasks()
        self.model = model = self._build_model(tasks, accelerator.device)
        self._prepare_features(model, tasks)
        self.collators = {n: model.task_types[n].collator(model.encoder.tokenizer) for n in tasks}
        quality = cfg.evaluation.embedding_quality
        self.embedding_quality = EmbeddingQuality.from_config(quality, self._data_dir()) if quality else None
        self.distillation = self._distillation(tasks, accelerator.device)
        self.loss_names = [*tasks, "distillation"] if self.distillation is not None else list(tasks)
        self.teacher_probs = self._teacher_probs(model, tasks)
        self.foreign = self._foreign_targets(model, tasks)
        if self.foreign:
            self.loss_names.append("cross_task")
        self.setup_seconds = time.perf_counter() - started

        # the schedule: number of steps, evaluation interval, and which tasks the sampler draws
        task_sizes = {n: len(t.train_features) for n, t in tasks.items()}
        accum = tc.gradient_accumulation_steps
        self.micro_per_epoch = steps_per_epoch(task_sizes, tc.batch_size * world)
        self.total_steps = tc.max_steps or max(1, math.ceil(tc.epochs * self.micro_per_epoch / accum))
        self.eval_every = cfg.evaluation.every_steps or max(1, math.ceil(self.micro_per_epoch / accum))
        set_trainable(model, cfg.freezing, 0)
        sampled = self._trained_tasks(model, tasks)
        if len(sampled) < len(tasks):
            self.out.print(
                f"tasks {[n for n in tasks if n not in sampled]}: frozen head on a frozen encoder, "
                "evaluated but not trained"
            )
        self.sampler = MultiTaskSampler(
            {n: task_sizes[n] for n in sampled},
            cfg.sampling.strategy,
            cfg.sampling.temperature,
            seed=tc.seed,
            total_steps=self.total_steps * accum,
        )

        # loss weighting, optimizer, schedule and the per-task batch streams
        uncertainty = tc.loss_weighting == "uncertainty"
        self.weighting = UncertaintyWeighting(list(tasks)).to(accelerator.device) if uncertainty else None
        extra = list(self.weighting.parameters()) if self.weighting is not None else []
        self.optimizer = build_optimizer(model, cfg.optim, extra, list(tasks))
        # per-task moments: train_step picks the sampled task's before each step (kept before accelerate wraps it)
        self.task_moments = self.optimizer if isinstance(self.optimizer, TaskMomentsAdamW) else None
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, self.total_steps)
        # conflicting-gradient projection on the encoder's trained parameters (the heads are each one task's own)
        self.projection = None
        if cfg.optim.gradient_projection == "conflicting":
            shared = [p for p in model.encoder.parameters() if p.requires_grad]
            self.projection = GradientProjection(shared, sampled, cfg.optim.projection_momentum, tc.seed)
        self.streams = {
            n: TaskStream(
                n,
                [len(f["input_ids"]) for f in t.train_features],
                tc.batch_size,
                tc.seed,
                rank,
                world,
                bucketed=tc.batching == "bucketed",
            )
            for n, t in tasks.items()
        }

        # resume: trainer state, stream positions, optimizer, scheduler, random generators and loss weights
        state = TrainState()
        if self.resume:
            saved, extra_tensors = load_training_state(last_dir, self.optimizer, self.scheduler)
            state = TrainState(**{**saved["state"], "stopped_early": False})
            for n, s in saved["streams"].items():
                self.streams[n].load_state_dict(s)
            if self.weighting is not None and "log_vars" in extra_tensors:
                self.weighting.log_vars.data.copy_(extra_tensors["log_vars"])
            if self.projection is not None:
                self.projection.load_state_tensors(extra_tensors)
                if "projection" in saved:
                    self.projection.load_state_dict(saved["projection"])
            if ("average_updates" in saved) != (cfg.optim.ema_decay is not None):
                raise ValueError(
                    f"cannot resume {last_dir}: it was saved {'with' if 'average_updates' in saved else 'without'} "
                    "a weight average; resume with the optim.ema_decay it was trained with"
                )
        # the weight average: a copy of the model (on resume, `last` holds the average and the trainer state the
        # training weights)
        self.average = None
        if cfg.optim.ema_decay is not None and cfg.freezing.strategy != "all":
            updates = saved.get("average_updates", 0) if self.resume else 0
            self.average = WeightAverage(model, cfg.optim.ema_decay, updates)
            if self.resume:
                WeightAverage.load_raw(model, extra_tensors)
        if self.resume:
            self.out.print(f"resumed {self.run_dir} at step {state.step}")

        # the run directory: the validated config and the metrics log (main process only)
        self.log: MetricsLog | None = None
        if accelerator.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(
                yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
            )
            self.log = MetricsLog(self.run_dir, state.step if self.resume else None)

        # what trains: model, loss and loss weights in one module, so DDP averages all of their gradients
        # (nothing to wrap when nothing trains: DDP refuses a module without trainable parameters)
        objective = TrainingObjective(
            model,
            tc.precision,
            {n: t.loss_weight for n, t in cfg.tasks.items()},
            {n: t.class_weights for n, t in tasks.items()},
            self.weighting,
            self.distillation,
            cfg.distillation.cross_task_weights,
        )
        if cfg.freezing.strategy == "all":
            self.objective = objective
        else:
            self.objective, self.optimizer = accelerator.prepare(objective, self.optimizer)

        self.out.print(
            f"[bold]{cfg.name}[/]: {len(tasks)} tasks {task_sizes}, {self.total_steps} steps "
            f"(batch {tc.batch_size} x accumulation {accum} x {world} process(es)), eval every {self.eval_every} "
            f"steps, precision {tc.precision}, device {accelerator.device}"
        )
        self.out.print(self._trainable_note())
        return state

    def _accelerator(self):
        """An Accelerator for this run: one process, or one of the processes `torchrun` / `accelerate launch`
        started (gloo DDP on CPUs, NCCL on GPUs)."""
        from accelerate import Accelerator, DistributedDataParallelKwargs
        from accelerate.state import AcceleratorState

        # bf16 is applied with our own autocast around the forward pass, not accelerate's mixed_precision: that
        # one is a process-wide singleton (a second fit with another precision raised) and it patches
        # model.forward for good (trainer.model kept predicting in bf16 after training).
        # Launched by torchrun (or `accelerate launch --multi_gpu`) on a machine without a GPU, accelerate only
        # sets up gloo (multi-CPU) DDP when told to use the CPU; otherwise every process silently trained its own
        # copy of the model into the same run directory.
        launched_world = int(os.environ.get("WORLD_SIZE", "1"))
        shared = AcceleratorState._shared_state
        if launched_world == 1 and shared and shared.get("_mixed_precision", "no") != "no":
            # another library's Accelerator (a Hugging Face Trainer with bf16=True, say) already ran in this
            # process; its process-wide state would refuse ours, so start a fresh one (single process only)
            AcceleratorState._reset_state()
        accelerator = Accelerator(
            mixed_precision="no",
            cpu=launched_world > 1 and not torch.cuda.is_available(),
            gradient_accumulation_steps=self.config.training.gradient_accumulation_steps,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        if launched_world > 1 and accelerator.num_processes == 1:
            raise RuntimeError(
                f"launched as {launched_world} processes but accelerate set up {accelerator.num_processes}; "
                "check the launcher and `accelerate env`"
            )
        return accelerator

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[bold blue]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=self.out,
            disable=not (self.show_progress and self.accelerator.is_main_process),
            transient=False,
        )

    def _trainable_note(self) -> str:
        trainable, total = count_parameters(self.model)
        return f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.1f}%)"

    def _finish(self, state: TrainState, total_seconds: float) -> dict:
        """The summary of the run; the main process also writes summary.json and the plots."""
        self.accelerator.wait_for_everyone()
        if self.average is not None:  # the trained model is the one the run scored and saved
            self.model.load_state_dict(self.average.model.state_dict())
            drop_inference_copies(self.model)
        if self.accelerator.is_main_process:
            self._calibrate_checkpoints(state)
        summary = self._summary(state, total_seconds)
        if self.accelerator.is_main_process:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
            if self.config.output.plots and self.log is not None:
                plot_run(self.run_dir, self.log.records, state.best_results)
            self.out.print(f"run directory: {self.run_dir} (best checkpoint: {self.run_dir / 'best'})")
        return summary

    def _calibrate_checkpoints(self, state: TrainState) -> None:
        """Give `best` and `last` the statistics that smooth their int8 mode (mtsent.quantization), measured at the
        end of the run on each checkpoint's saved weights and `output.int8_calibration` training texts; once
        when `best` was saved at the last step (the two hold the same weights)."""
        count = self.config.output.int8_calibration
        saved = [d for d in (self.run_dir / "best", self.run_dir / "last") if (d / CONFIG_NAME).is_file()]
        if count == 0 or not saved:
            return
        started = time.perf_counter()
        texts = calibration_texts({n: t.splits.train for n, t in self.tasks.items()}, count, self.config.training.seed)
        measured = calibrate_directory(saved[0], texts, batch_size=self.config.evaluation.batch_size)
        for directory in saved[1:]:
            if state.best_step == state.step:
                save_calibration(directory, load_calibration(measured.parent))
            else:
                calibrate_directory(directory, texts, batch_size=self.config.evaluation.batch_size)
        self.out.print(
            f"int8 calibration: {len(texts)} training texts, {' and '.join(d.name for d in saved)} "
            f"({time.perf_counter() - started:.1f} s)"
        )

    def _data_dir(self) -> Path | None:
        return Path(self.config.data_dir).expanduser() if self.config.data_dir else None

    def _load_tasks(self) -> dict[str, _Task]:
        tasks = {}
        for name, t in self.config.tasks.items():
            splits = load_task_data(name, t.type, t.data, self._data_dir())
            if not splits.train:
                raise ValueError(f"task {name!r} has no training examples")
            tasks[name] = _Task(name, t.type, splits)
        return tasks

    def _build_model(self, tasks: dict[str, _Task], device: torch.device, resume: bool | None = None) -> MultiTaskModel:
        """The model to train: `last` of the run (resume), else a new one from the config or from `init_from`."""
        heads = [
            HeadConfig(name=name, type=t.type, labels=tasks[name].splits.labels, **t.head.model_dump())
            for name, t in self.config.tasks.items()
        ]
        if self.resume if resume is None else resume:
            return MultiTaskModel.from_pretrained(self.run_dir / "last", device=device, merge_adapter=False)
        if self.config.init_from is None:
            return MultiTaskModel.from_config(ModelConfig(encoder=self.config.model, tasks=heads), device=device)
        model = MultiTaskModel.from_pretrained(self.config.init_from, device=device)
        for head in heads:
            if head.name not in model.tasks:
                model.add_task(head)
                continue
            if set(model.tasks[head.name].labels) != set(head.labels):
                raise ValueError(
                    f"init_from {self.config.init_from}: task {head.name!r} has labels {model.tasks[head.name].labels}"
                    f" but the data has {head.labels}"
                )
            model.set_decoding(head.name, head.decoding)  # not a weight: the run's config decides
        return model

    def _distillation(self, tasks: dict[str, _Task], device: torch.device) -> EmbeddingDistillation | None:
        """The teacher's embeddings of every training feature, or None when `distillation.embedding_weight` is 0.

        The teacher is the encoder training starts from: the model's own before its first step; on resume, the
        model a fresh run builds (same seed, so the same initial pooling and projection), used once and dropped.
        """
        config = self.config.distillation
        if config.embedding_weight == 0:
            return None
        if self.resume:
            _seed_everything(self.config.training.seed)  # the generators are restored from `last` afterwards
            teacher = self._build_model(tasks, device, resume=False).encoder
        else:
            teacher = self.model.encoder
        features = {
            n: (self.model.task_types[n].texts_per_example, t.train_features, self.collators[n])
            for n, t in tasks.items()
            if config.embedding_tasks is None or n in config.embedding_tasks
        }
        precision = self.config.training.precision
        distillation = EmbeddingDistillation.from_teacher(
            config, teacher, features, precision, self.config.evaluation.batch_size
        )
        self.out.print(
            f"distillation: teacher embeddings of {sum(len(f[1]) for f in features.values())} training examples "
            f"({', '.join(features)}) cached; weight {config.embedding_weight}, loss {config.loss}"
        )
        return distillation

    def _trained_tasks(self, model: MultiTaskModel, tasks: dict) -> list[str]:
        """Tasks whose steps train something: with the encoder frozen, a task with a frozen head is only evaluated.

        Sampling it would spend steps on forward passes that update nothing (and break DDP's gradient reducer),
        which matters when a head is added to a frozen model. With everything frozen (`strategy: all`), every task
        is kept: the run only evaluates.
        """
        if any(p.requires_grad for p in model.encoder.parameters()):
            return list(tasks)
        trained = [n for n in tasks if any(p.requires_grad for p in model.heads[n].parameters())]
        return trained or list(tasks)

    def _prepare_features(self, model: MultiTaskModel, tasks: dict[str, _Task]) -> None:
        tc = self.config.training
        for name, task in tasks.items():
            task.train_features, task.truncation["train"] = tokenize_task(
                model, name, task.splits.train, tc.max_length, tc.label_all_subwords
            )
            if task.splits.dev:
                task.dev_features, task.truncation["dev"] = tokenize_task(model, name, task.splits.dev, tc.max_length)
            mode = self.config.tasks[name].class_weights
            if mode != "none":
                labels = [y for f in task.train_features for y in np.atleast_1d(f["labels"]).tolist()]
                n = len(model.tasks[name].labels)
                given = mode if isinstance(mode, list) else None
                task.class_weights = class_weights(labels, n, "none" if given else mode, given=given)

    def _teacher_probs(self, model: MultiTaskModel, tasks: dict[str, _Task]) -> dict[str, list[torch.Tensor]]:
        """The distilled tasks' teacher distributions, one entry per training feature (computed once)."""
        cache = {}
        for name, teacher in self.config.distillation.teachers.items():
            started = time.perf_counter()
            task = tasks[name]
            cache[name] = teacher_cache(
                teacher,
                model,
                name,
                task.splits.train,
                task.train_features,
                self.config.training.max_length,
                self.config.evaluation.batch_size,
            )
            self.out.print(
                f"task {name!r}: teacher {teacher} read its {len(cache[name])} training examples "
                f"in {time.perf_counter() - started:.1f} s"
            )
        return cache

    def _foreign_targets(self, model: MultiTaskModel, tasks: dict[str, _Task]) -> dict[str, dict[str, ForeignTargets]]:
        """With `distillation.cross_task_weights`: per single-text task, what each other task's teacher says on its
        training features (batch task -> teacher task -> targets); computed once, like the teachers' own."""
        config = self.config.distillation
        carriers = config.cross_task_batches
        single = [
            n for n in tasks if model.task_types[n].texts_per_example == 1 and (carriers is None or n in carriers)
        ]
        cache: dict[str, dict[str, ForeignTargets]] = {}
        for name in config.cross_task_weights:
            started, teacher = time.perf_counter(), config.teachers[name]
            foreign = {n: (tasks[n].splits.train, tasks[n].train_features) for n in single if n != name}
            if not foreign:  # no other task's batches carry this teacher's targets
                continue
            max_length, batch_size = self.config.training.max_length, self.config.evaluation.batch_size
            for other, targets in foreign_targets(teacher, model, name, foreign, max_length, batch_size).items():
                cache.setdefault(other, {})[name] = targets
            self.out.print(
                f"task {name!r}: teacher {teacher} read the training texts of {', '.join(foreign)} "
                f"({sum(len(f) for _, f in foreign.values())} examples) in {time.perf_counter() - started:.1f} s"
            )
        return cache

    def _monitor_value(self, results: dict[str, dict]) -> float:
        monitor = self.config.evaluation.monitor
        if monitor == "mean":
            return float(sum(m["main"] for m in results.values()) / len(results))
        task, _, metric = monitor.partition("/")
        if task not in results:
            raise ValueError(f"evaluation.monitor {monitor!r}: task {task!r} has no dev split")
        value = results[task].get(metric)
        if not isinstance(value, int | float):
            numeric = sorted(k for k, v in results[task].items() if isinstance(v, int | float))
            raise ValueError(f"evaluation.monitor {monitor!r}: unknown metric {metric!r}; available: {numeric}")
        return float(value)

    def _embedding_summary(self, state: TrainState) -> dict:
        """summary.json's `embedding_quality`: the data, the last evaluation's values and the best checkpoint's."""
        return {
            "embedding_quality": {
                "data": self.embedding_quality.source,
                "metric": f"{SECTION}/{METRIC}: Spearman x100 of cosines of normalised fp32 embeddings",
                "last": state.embedding_quality,
                "best_checkpoint": state.best_embedding_quality,
            }
        }

    def _summary(self, state: TrainState, total_s: float) -> dict:
        import accelerate
        import transformers

        from mtsent import __version__

        data: dict[str, Any] = {}
        for name, task in self.tasks.items():
            dc = self.config.tasks[name].data
            files = {}
            if dc.format != "hf":
                root = self._data_dir() or resolve_data_dir(None)
                for key in ("train", "dev", "test", "path"):
                    rel = getattr(dc, key)
                    if rel and (root / rel).is_file():
                        files[rel] = _sha256(root / rel)
            data[name] = {
                "sizes": {s: len(task.splits.split(s)) for s in ("train", "dev", "test")},
                "labels": task.splits.labels,
                "skipped": task.splits.skipped,
                "truncation": task.truncation,
                "sha256": files,
            }
        trainable, total = count_parameters(self.model)
        return {
            "name": self.config.name,
            "config": self.config.model_dump(mode="json"),
            "data": data,
            "steps": state.step,
            "planned_steps": self.total_steps,
            "examples_seen": state.examples,
            "durations_s": {
                "total": round(total_s, 2),
                "data_and_model_setup": round(self.setup_seconds, 2),
                "train": round(state.train_seconds, 2),
                "eval": round(state.eval_seconds, 2),
            },
            "train_examples_per_s": round(state.examples / state.train_seconds, 2) if state.train_seconds else None,
            "best": {
                "step": state.best_step,
                "monitor": state.best,
                "main": {n: m["main"] for n, m in state.best_results.items()},
            },
            "best_metrics": state.best_results,
            **(self._embedding_summary(state) if self.embedding_quality is not None else {}),
            **({"gradient_projection": self.projection.counts} if self.projection is not None else {}),
            "stopped_early": state.stopped_early,
            "parameters": {"trainable_at_end": trainable, "total": total},
            "versions": {
                "mtsent": __version__,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "accelerate": accelerate.__version__,
                "python": platform.python_version(),
            },
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor(),
                "torch_threads": torch.get_num_threads(),
            },
        }
