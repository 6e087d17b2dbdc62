"""Runs the studies: each run is `Trainer(configs/multitask.yaml + overrides).fit()` with a fixed step budget.

The variants of every study are listed in configs/studies.yaml; this module adds what a list cannot say: the
step budget of the single-task runs (`separate`) and of the added head (`add-task`), and the check that adding
a head leaves the old tasks' predictions unchanged.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import Counter
from datetime import date
from pathlib import Path

import study_records
import torch
import yaml

from mtsent.data import MultiTaskSampler, load_task_data, steps_per_epoch
from mtsent.model import MultiTaskModel
from mtsent.training import Trainer, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "multitask.yaml"
VARIANTS = ROOT / "configs" / "studies.yaml"


def variants(study: str, **fields: object) -> dict[str, list[str]]:
    """A study's variants from configs/studies.yaml, with the `{field}`s of their overrides filled in."""
    listed = yaml.safe_load(VARIANTS.read_text(encoding="utf-8"))[study]
    return {name: [o.format(**fields) for o in overrides] for name, overrides in listed.items()}


def chosen(listed: dict[str, list[str]], args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The variants named by `--only` (all by default), refusing unknown names."""
    unknown = set(args.only or []) - set(listed)
    if unknown:
        raise SystemExit(f"--only: unknown variants {sorted(unknown)}; choose from {list(listed)}")
    return [(n, o) for n, o in listed.items() if not args.only or n in args.only]


def tagged(name: str, args: argparse.Namespace) -> str:
    """Run name plus the `--tag` of a variant of the whole study (e.g. `multitask-t2` for temperature sampling)."""
    return f"{name}-{args.tag}" if args.tag else name


def run(study: str, name: str, seed: int, overrides: list[str], args: argparse.Namespace) -> dict:
    """Train one configuration (or reuse its stored result) and return its record."""
    records = study_records.load(args.results, study)
    found = study_records.stored(records, name, seed)
    if found is not None:
        print(f"[{study}] {name} seed {seed}: stored, skipping")
        return found
    run_dir = Path(args.runs) / study / f"{name}-s{seed}"
    settings = [
        f"training.seed={seed}",
        f"training.max_steps={args.steps}",
        f"evaluation.every_steps={args.eval_every or args.steps}",
        "evaluation.patience=null",
        *args.set,
        *overrides,
    ]
    same = study_records.identical_run(settings, Path(args.results))
    if same is not None:  # e.g. freezing `none`, imbalance `proportional` and the joint add-task run
        print(f"[{study}] {name} seed {seed}: same settings as {same['name']}, reusing its record")
        record = {**same, "name": name, "reused_from": same["name"]}
        study_records.save(args.results, study, [*records, record])
        return record
    config = load_config(CONFIG, [f"name={name}", f"output.dir={run_dir}", *settings])
    started = time.perf_counter()
    summary = Trainer(config, show_progress=args.progress, resume=(run_dir / "last").is_dir()).fit()
    record = {
        "name": name,
        "seed": seed,
        "overrides": overrides,
        "settings": settings,
        "steps": summary["steps"],
        "tasks": list(config.tasks),
        "best_step": summary["best"]["step"],
        "main": summary["best"]["main"],
        "final_main": {t: m["main"] for t, m in summary["best_metrics"].items()},
        "train_seconds": summary["durations_s"]["train"],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "train_examples_per_s": summary["train_examples_per_s"],
        "trainable_parameters": summary["parameters"]["trainable_at_end"],
        "run_dir": str(run_dir),
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
    }
    study_records.save(args.results, study, [*records, record])
    return record


def with_steps(args: argparse.Namespace, steps: int) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "steps": steps})


def task_batches(steps: int, seed: int, extra: list[str]) -> dict[str, int]:
    """How many batches each task gets in a multi-task run: the budget of the matching single-task runs."""
    config = load_config(CONFIG, extra)
    sizes = {name: len(load_task_data(name, t.type, t.data, None).train) for name, t in config.tasks.items()}
    sampler = MultiTaskSampler(sizes, config.sampling.strategy, config.sampling.temperature, seed, steps)
    counts = Counter(sampler.sample(s) for s in range(steps))
    print(f"task sizes {sizes}, epoch = {steps_per_epoch(sizes, config.training.batch_size)} steps, batches {counts}")
    missing = [name for name in sizes if not counts[name]]
    if missing:
        raise SystemExit(f"in {steps} steps (seed {seed}) the sampler draws no batch of {missing}: raise --steps")
    return dict(counts)


def study_main(args: argparse.Namespace) -> None:
    for seed in args.seeds:
        for name, overrides in chosen(variants("main"), args):
            run("main", tagged(name, args), seed, overrides, args)


def study_separate(args: argparse.Namespace) -> None:
    """The 3-task run (reused from `main` when stored there) and one single-task run per task with its batches."""
    picked = chosen(variants("separate"), args)
    for seed in args.seeds:
        budget = task_batches(args.steps, seed, args.set)
        for name, overrides in picked:
            if name == "multitask":
                run("main", tagged(name, args), seed, overrides, args)
                run("separate", tagged(name, args), seed, overrides, args)  # same settings: reuses the main record
                continue
            steps = budget[name.removeprefix("single-")]
            run("separate", tagged(name, args), seed, overrides, with_steps(args, steps))


def study_distil(args: argparse.Namespace) -> None:
    """Per seed: the single-task twins (the `separate` study's runs, reused when stored), then each variant of
    the 3-task model with the twins' best checkpoints as its teachers."""
    picked = chosen(variants("distil"), args)
    twins = [(n, o) for n, o in variants("separate").items() if n.startswith("single-")]
    for seed in args.seeds:
        budget = task_batches(args.steps, seed, args.set)
        teachers = []
        for name, overrides in twins:
            task = name.removeprefix("single-")
            twin = run("separate", tagged(name, args), seed, overrides, with_steps(args, budget[task]))
            best = Path(twin["run_dir"]) / "best"
            if not best.is_dir():
                raise SystemExit(
                    f"the {task} teacher of seed {seed} is recorded in study_separate.json but its checkpoint {best} "
                    "is gone: point --runs at the runs it was trained in, or delete its record to train it again"
                )
            teachers.append(f"distillation.teachers.{task}={best}")
        for name, overrides in picked:
            run("distil", tagged(name, args), seed, [*teachers, *overrides], args)


def study_freezing(args: argparse.Namespace) -> None:
    for seed in args.seeds:
        for name, overrides in chosen(variants("freezing", unfreeze_every=max(1, args.steps // 8)), args):
            run("freezing", name, seed, overrides, args)


def study_imbalance(args: argparse.Namespace) -> None:
    for seed in args.seeds:
        for name, overrides in chosen(variants("imbalance"), args):
            run("imbalance", name, seed, overrides, args)


def study_add_task(args: argparse.Namespace) -> None:
    """Train ner+sentiment, add topic with the encoder and old heads frozen, check old outputs are unchanged.

    The added head trains twice: with as many topic batches as topic gets in the joint 3-task run of `--steps`
    steps (`add-topic-frozen`), and with all `--steps` steps (`add-topic-frozen-all-steps`: frozen-encoder steps
    are cheap). With the encoder and old heads frozen, the trainer samples only the new task. The check runs each
    model and the 2-task model on the whole dev sets of the old tasks.
    """
    config = load_config(CONFIG, args.set)
    probe = {}
    for t in ("ner", "sentiment"):
        dev = load_task_data(t, config.tasks[t].type, config.tasks[t].data, None).dev
        probe[t] = [" ".join(e.tokens) if hasattr(e, "tokens") else e.text for e in dev]
    listed = variants("add_task")
    for seed in args.seeds:
        first = run("add_task", "two-tasks", seed, listed["two-tasks"], args)
        base_model = Path(first["run_dir"]) / "best"
        before = MultiTaskModel.from_pretrained(base_model, device="cpu")
        with torch.inference_mode():
            reference = {t: before.predict(texts, tasks=[t]) for t, texts in probe.items()}
        budgets = {
            "add-topic-frozen": max(1, task_batches(args.steps, seed, args.set).get("topic", 0)),
            "add-topic-frozen-all-steps": args.steps,
        }
        joint = run("add_task", "joint-three-tasks", seed, listed["joint-three-tasks"], args)
        for name, steps in budgets.items():
            overrides = [f"init_from={base_model}", *listed[name]]
            added = run("add_task", name, seed, overrides, with_steps(args, steps))
            after = MultiTaskModel.from_pretrained(Path(added["run_dir"]) / "best", device="cpu")
            identical = {}
            for t, texts in probe.items():
                with torch.inference_mode():
                    b = after.predict(texts, tasks=[t])
                identical[t] = all(x[t] == y[t] for x, y in zip(reference[t], b, strict=True))
            records = study_records.load(args.results, "add_task")
            study_records.stored(records, name, seed)["old_task_predictions_identical"] = identical
            study_records.save(args.results, "add_task", records)
            print(f"{name}: old tasks identical: {identical}; topic {added['main']} vs joint {joint['main']}")


STUDIES = {
    "main": study_main,
    "separate": study_separate,
    "distil": study_distil,
    "freezing": study_freezing,
    "imbalance": study_imbalance,
    "add-task": study_add_task,
}
