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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mtsent.batching import bucketed_batches
from mtsent.config import HeadConfig, ModelConfig
from mtsent.data import (
    MultiTaskSampler,
    TaskSplits,
    class_weights,
    load_task_data,
    resolve_data_dir,
    steps_per_epoch,
)
from mtsent.model import MultiTaskModel
from mtsent.precision import drop_inference_copies, precision_context
from mtsent.training.config import TrainConfig, load_config
from mtsent.training.evaluation import evaluate_task, tokenize_task
from mtsent.training.freezing import count_parameters, set_trainable
from mtsent.training.losses import UncertaintyWeighting
from mtsent.training.optim import build_optimizer, build_scheduler
from mtsent.training.report import MetricsLog, eval_table, plot_run
from mtsent.training.state import load_training_state, save_training_state

__all__ = ["TaskStream", "Trainer"]


class TaskStream:
    """A task's endless, deterministic sequence of length-bucketed training batches.

    Pass `k` over the data is shuffled with a seed derived from (seed, task, k), so the position (pass, index)
    is all that a resumed run needs. With several processes, each takes its own batch of every `world` batches.
    """

    def __init__(self, name: str, lengths: list[int], batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.name, self.lengths, self.batch_size, self.seed = name, lengths, batch_size, seed
        self.rank, self.world = rank, world
        self.epoch, self.position = 0, 0
        self._batches: list[list[int]] | None = None

    def _pass(self) -> list[list[int]]:
        if self._batches is None:
            seed = zlib.crc32(f"{self.seed}:{self.name}:{self.epoch}".encode())
            batches = bucketed_batches(self.lengths, self.batch_size, seed=seed)
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


class Trainer:
    """Train a MultiTaskModel from a TrainConfig: `Trainer(config).fit()` returns the run summary."""

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

    # ------------------------------------------------------------------ setup
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

    def _build_model(self, tasks: dict[str, _Task], device: torch.device) -> MultiTaskModel:
        heads = [
            HeadConfig(
                name=name,
                type=t.type,
                labels=tasks[name].splits.labels,
                hidden_dim=t.head.hidden_dim,
                dropout=t.head.dropout,
            )
            for name, t in self.config.tasks.items()
        ]
        if self.resume:
            return MultiTaskModel.from_pretrained(self.run_dir / "last", device=device)
        if self.config.init_from is None:
            return MultiTaskModel.from_config(ModelConfig(encoder=self.config.model, tasks=heads), device=device)
        model = MultiTaskModel.from_pretrained(self.config.init_from, device=device)
        for head in heads:
            if head.name not in model.tasks:
                model.add_task(head)
            elif set(model.tasks[head.name].labels) != set(head.labels):
                raise ValueError(
                    f"init_from {self.config.init_from}: task {head.name!r} has labels {model.tasks[head.name].labels}"
                    f" but the data has {head.labels}"
                )
        return model

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

    # ------------------------------------------------------------------ fit
    def fit(self) -> dict:
        """Run training (or only evaluation, for freezing strategy `all`) and return the summary dict."""
        from accelerate import Accelerator, DistributedDataParallelKwargs
        from accelerate.state import AcceleratorState

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
            gradient_accumulation_steps=tc.gradient_accumulation_steps,
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        world, rank = accelerator.num_processes, accelerator.process_index
        if launched_world > 1 and world == 1:
            raise RuntimeError(
                f"launched as {launched_world} processes but accelerate set up {world}; "
                "check the launcher and `accelerate env`"
            )
        if world > 1 and cfg.freezing.strategy == "progressive":
            raise ValueError("progressive unfreezing changes which parameters train; it is not supported with DDP")
        main = accelerator.is_main_process
        console = self.console if main else Console(quiet=True)
        _seed_everything(tc.seed)

        tasks = self._load_tasks()
        model = self._build_model(tasks, accelerator.device)
        self._prepare_features(model, tasks)
        data_seconds = time.perf_counter() - started
        self.model = model

        task_sizes = {n: len(t.train_features) for n, t in tasks.items()}
        micro_per_epoch = steps_per_epoch(task_sizes, tc.batch_size * world)
        accum = tc.gradient_accumulation_steps
        total_steps = tc.max_steps or max(1, math.ceil(tc.epochs * micro_per_epoch / accum))
        eval_every = cfg.evaluation.every_steps or max(1, math.ceil(micro_per_epoch / accum))
        set_trainable(model, cfg.freezing, 0)
        sampled = self._trained_tasks(model, tasks)
        if len(sampled) < len(tasks):
            console.print(
                f"tasks {[n for n in tasks if n not in sampled]}: frozen head on a frozen encoder, "
                "evaluated but not trained"
            )
        sampler = MultiTaskSampler(
            {n: task_sizes[n] for n in sampled},
            cfg.sampling.strategy,
            cfg.sampling.temperature,
            seed=tc.seed,
            total_steps=total_steps * accum,
        )
        weighting = (
            UncertaintyWeighting(list(tasks)).to(accelerator.device) if tc.loss_weighting == "uncertainty" else None
        )
        optimizer = build_optimizer(model, cfg.optim, list(weighting.parameters()) if weighting else [])
        scheduler = build_scheduler(optimizer, cfg.optim, total_steps)
        streams = {
            n: TaskStream(n, [len(f["input_ids"]) for f in t.train_features], tc.batch_size, tc.seed, rank, world)
            for n, t in tasks.items()
        }
        state: dict[str, Any] = {
            "step": 0,
            "best": None,
            "best_step": None,
            "bad_evals": 0,
            "examples": 0,
            "train_seconds": 0.0,
            "eval_seconds": 0.0,
            "stopped_early": False,
            "best_results": {},
        }
        if self.resume:
            saved, extra = load_training_state(last_dir, optimizer, scheduler)
            state.update(saved["state"], stopped_early=False)
            for n, s in saved["streams"].items():
                streams[n].load_state_dict(s)
            if weighting is not None and "log_vars" in extra:
                weighting.log_vars.data.copy_(extra["log_vars"])
            console.print(f"resumed {self.run_dir} at step {state['step']}")
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(
                yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
            )
        log = MetricsLog(self.run_dir, state["step"] if self.resume else None) if main else None
        if cfg.freezing.strategy == "all":
            prepared = model  # nothing trains: no DDP wrapper (DDP refuses a module without trainable parameters)
        else:
            prepared, optimizer = accelerator.prepare(model, optimizer)
        collators = {n: model.task_types[n].collator(model.encoder.tokenizer) for n in tasks}

        def trainable_note() -> str:
            trainable, total = count_parameters(model)
            return f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.1f}%)"

        console.print(
            f"[bold]{cfg.name}[/]: {len(tasks)} tasks {task_sizes}, {total_steps} steps "
            f"(batch {tc.batch_size} x accumulation {accum} x {world} process(es)), eval every {eval_every} steps, "
            f"precision {tc.precision}, device {accelerator.device}"
        )
        console.print(trainable_note())

        def evaluate(step: int) -> bool:
            """Evaluate every task on dev, keep the best checkpoint; True when early stopping triggers."""
            t0 = time.perf_counter()
            drop_inference_copies(model)  # fused AdamW steps bump no version counter: the cache cannot see them
            results = {
                n: evaluate_task(model, n, t.splits.dev, t.dev_features, cfg.evaluation.batch_size, tc.precision)
                for n, t in tasks.items()
                if t.dev_features
            }
            state["eval_seconds"] += time.perf_counter() - t0
            if not results:
                return False
            monitor = self._monitor_value(results)
            improved = state["best"] is None or monitor > state["best"] + cfg.evaluation.min_delta
            if improved:
                state.update(best=monitor, best_step=step, bad_evals=0, best_results=results)
            else:
                state["bad_evals"] += 1
            if main:
                epoch = step * accum / micro_per_epoch
                for n, m in results.items():
                    log.log(
                        {
                            "step": step,
                            "epoch": round(epoch, 4),
                            "kind": "eval",
                            "task": n,
                            **{k: v for k, v in m.items() if isinstance(v, int | float)},
                        }
                    )
                best_main = {n: m["main"] for n, m in state["best_results"].items()}
                console.print(eval_table(step, results, best_main, monitor))
                if improved and cfg.output.save_best:
                    best_json = json.dumps({"step": step, "monitor": monitor, "metrics": results}, indent=2)
                    model.save_pretrained(
                        self.run_dir / "best",
                        write_extra=lambda d: (d / "metrics.json").write_text(best_json, encoding="utf-8"),
                    )
            patience = cfg.evaluation.patience
            if patience is not None and state["bad_evals"] >= patience:
                state["stopped_early"] = True
                console.print(f"early stopping at step {step}: no improvement in {patience} evaluations")
                return True
            return False

        def save_last() -> None:
            if not (main and cfg.output.save_last):
                return
            trainer_state = {"state": state, "streams": {n: s.state_dict() for n, s in streams.items()}}
            extra = {"log_vars": weighting.log_vars} if weighting is not None else None
            model.save_pretrained(
                last_dir, write_extra=lambda d: save_training_state(d, optimizer, scheduler, trainer_state, extra)
            )

        stop = False
        if cfg.freezing.strategy == "all":
            console.print("freezing strategy 'all': nothing trains; evaluating only")
            stop = evaluate(state["step"])
            total_steps = state["step"]
        progress = Progress(
            TextColumn("[bold blue]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            disable=not (self.show_progress and main),
            transient=False,
        )
        losses: dict[str, list[float]] = {n: [] for n in tasks}
        window_examples, window_start = 0, time.perf_counter()
        trainable_before = count_parameters(model)[0]
        with progress:
            bar = progress.add_task("training", total=total_steps, completed=state["step"], info="")
            while state["step"] < total_steps and not stop:
                step = state["step"]
                t0 = time.perf_counter()
                if cfg.freezing.strategy == "progressive":
                    set_trainable(model, cfg.freezing, step)
                    if count_parameters(model)[0] != trainable_before:
                        trainable_before = count_parameters(model)[0]
                        progress.console.print(f"step {step}: unfroze another layer group; {trainable_note()}")
                prepared.train()
                for micro in range(accum):
                    name = sampler.sample(step * accum + micro)
                    indices = streams[name].next()
                    batch = collators[name]([tasks[name].train_features[i] for i in indices])
                    batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                    with accelerator.accumulate(prepared):
                        with precision_context(accelerator.device, tc.precision):
                            out = prepared(batch["input_ids"], batch["attention_mask"], tasks=[name])
                        loss = model.task_types[name].loss(out.logits[name], batch["labels"], tasks[name].class_weights)
                        weighted = weighting(name, loss) if weighting else loss * cfg.tasks[name].loss_weight
                        if weighted.requires_grad:
                            accelerator.backward(weighted)
                        grad = weighting.log_vars.grad if weighting is not None else None
                        if grad is not None and world > 1 and accelerator.sync_gradients:
                            # the log-variances live outside the DDP-wrapped model: average their gradients
                            # by hand, or every process drifts to its own loss weights
                            weighting.log_vars.grad = accelerator.reduce(grad, "mean")
                        if accelerator.sync_gradients and cfg.optim.max_grad_norm:
                            params = [p for p in prepared.parameters() if p.grad is not None]
                            if params:
                                accelerator.clip_grad_norm_(params, cfg.optim.max_grad_norm)
                        optimizer.step()
                        optimizer.zero_grad()
                    losses[name].append(float(loss.detach()))
                    window_examples += len(indices) * world
                    state["examples"] += len(indices) * world
                scheduler.step()
                state["step"] = step = step + 1
                state["train_seconds"] += time.perf_counter() - t0
                if step % tc.log_every == 0 or step == total_steps:
                    rate = window_examples / max(time.perf_counter() - window_start, 1e-9)
                    window_examples, window_start = 0, time.perf_counter()
                    means = {n: sum(v) / len(v) for n, v in losses.items() if v}
                    if main:
                        epoch = step * accum / micro_per_epoch
                        lr = scheduler.get_last_lr()[0]
                        task_weights = weighting.weights() if weighting else {}
                        for n, value in means.items():
                            log.log(
                                {
                                    "step": step,
                                    "epoch": round(epoch, 4),
                                    "kind": "train",
                                    "task": n,
                                    "loss": value,
                                    "batches": len(losses[n]),
                                    "lr": lr,
                                    "examples_per_s": rate,
                                    **({"loss_weight": task_weights[n]} if task_weights else {}),
                                }
                            )
                    info = " | ".join(f"{n} {v:.3f}" for n, v in means.items()) + f" | {rate:.0f} ex/s"
                    progress.update(bar, info=info)
                    losses = {n: [] for n in tasks}
                progress.update(bar, completed=step)
                if step % eval_every == 0 or step == total_steps:
                    stop = evaluate(step)
                    save_last()
        accelerator.wait_for_everyone()
        summary = self._summary(tasks, state, total_steps, data_seconds, time.perf_counter() - started, model)
        if main:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
            if cfg.output.plots and log is not None:
                plot_run(self.run_dir, log.records, state["best_results"])
            console.print(f"run directory: {self.run_dir} (best checkpoint: {self.run_dir / 'best'})")
        return summary

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

    def _summary(
        self, tasks: dict[str, _Task], state: dict, total_steps: int, data_s: float, total_s: float, model
    ) -> dict:
        import accelerate
        import transformers

        from mtsent import __version__

        data: dict[str, Any] = {}
        for name, task in tasks.items():
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
        trainable, total = count_parameters(model)
        return {
            "name": self.config.name,
            "config": self.config.model_dump(mode="json"),
            "data": data,
            "steps": state["step"],
            "planned_steps": total_steps,
            "examples_seen": state["examples"],
            "durations_s": {
                "total": round(total_s, 2),
                "data_and_model_setup": round(data_s, 2),
                "train": round(state["train_seconds"], 2),
                "eval": round(state["eval_seconds"], 2),
            },
            "train_examples_per_s": round(state["examples"] / state["train_seconds"], 2)
            if state["train_seconds"]
            else None,
            "best": {
                "step": state["best_step"],
                "monitor": state["best"],
                "main": {n: m["main"] for n, m in state["best_results"].items()},
            },
            "best_metrics": state["best_results"],
            "stopped_early": state["stopped_early"],
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
