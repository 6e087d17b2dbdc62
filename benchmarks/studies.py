"""The measured studies behind docs/RESULTS.md and docs/discussion.md (issue 5), one command each.

    python benchmarks/studies.py main                  # the 3-task model on the real data
    python benchmarks/studies.py separate              # 3-task model against three single-task models
    python benchmarks/studies.py serving-cost          # ... their inference speed, parameters and memory
    python benchmarks/studies.py freezing              # none / backbone / embeddings / progressive
    python benchmarks/studies.py imbalance             # sampling strategies, loss weighting, class weights
    python benchmarks/studies.py add-task              # add a third head later to a frozen 2-task model
    python benchmarks/studies.py table STUDY           # print the markdown table of a study from its JSON
                                                       # (separate: also 3-task minus single-task per seed)
    python benchmarks/studies.py plot STUDY            # docs/results/study_STUDY.png, a bar chart per task

Every run is `Trainer(configs/multitask.yaml + overrides).fit()` with a fixed step budget (`--steps`), so a
study is a list of overrides. Results are appended to docs/results/study_<name>.json after each run, and a run
already there (same name and seed) is skipped: an interrupted study continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections import Counter
from datetime import date
from pathlib import Path

import torch
from parity import machine, write_report

from mtsent.data import MultiTaskSampler, steps_per_epoch
from mtsent.model import MultiTaskModel
from mtsent.training import Trainer, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "multitask.yaml"
RESULTS = ROOT / "docs" / "results"
TASKS = ("ner", "sentiment", "topic")


def run(study: str, name: str, seed: int, overrides: list[str], args: argparse.Namespace) -> dict:
    """Train one configuration (or reuse its stored result) and return its record."""
    out = Path(args.results) / f"study_{study}.json"
    records = json.loads(out.read_text()) if out.exists() else []
    for r in records:
        if r["name"] == name and r["seed"] == seed:
            print(f"[{study}] {name} seed {seed}: stored, skipping")
            return r
    run_dir = Path(args.runs) / study / f"{name}-s{seed}"
    settings = [
        f"training.seed={seed}",
        f"training.max_steps={args.steps}",
        f"evaluation.every_steps={args.eval_every or args.steps}",
        "evaluation.patience=null",
        *args.set,
        *overrides,
    ]
    same = identical_run(settings, Path(args.results))
    if same is not None:  # e.g. freezing `none`, imbalance `proportional` and the joint add-task run
        print(f"[{study}] {name} seed {seed}: same settings as {same['name']}, reusing its record")
        record = {**same, "name": name, "reused_from": same["name"]}
        out.write_text(json.dumps([*records, record], indent=2) + "\n")
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
    records.append(record)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(records, indent=2) + "\n")
    return record


def identical_run(settings: list[str], results: Path) -> dict | None:
    """A stored record of any study trained with exactly these settings (only the name and directory differ)."""
    for path in sorted(results.glob("study_*.json")):
        records = json.loads(path.read_text())
        for r in records if isinstance(records, list) else []:  # study_serving_cost.json is one report
            if sorted(r.get("settings", [])) == sorted(settings) and "reused_from" not in r:
                return r
    return None


def task_batches(steps: int, seed: int, extra: list[str]) -> dict[str, int]:
    """How many batches each task gets in a multi-task run: the budget of the matching single-task runs."""
    config = load_config(CONFIG, extra)
    sizes = {}
    from mtsent.data import load_task_data

    for name, t in config.tasks.items():
        sizes[name] = len(load_task_data(name, t.type, t.data, None).train)
    sampler = MultiTaskSampler(sizes, config.sampling.strategy, config.sampling.temperature, seed, steps)
    counts = Counter(sampler.sample(s) for s in range(steps))
    print(f"task sizes {sizes}, epoch = {steps_per_epoch(sizes, config.training.batch_size)} steps, batches {counts}")
    return dict(counts)


def tagged(name: str, args: argparse.Namespace) -> str:
    """Run name plus the `--tag` of a variant of the whole study (e.g. `multitask-t2` for temperature sampling)."""
    return f"{name}-{args.tag}" if args.tag else name


def study_main(args) -> None:
    for seed in args.seeds:
        run("main", tagged("multitask", args), seed, [], args)


def study_separate(args) -> None:
    """The 3-task run (reused from `main` when stored there) and one single-task run per task with its batches."""
    variants = {"multitask": [], **{f"single-{t}": [f"tasks.{o}=null" for o in TASKS if o != t] for t in TASKS}}
    picked = chosen(variants, args)
    for seed in args.seeds:
        budget = task_batches(args.steps, seed, args.set)
        for name, drop in picked:
            if name == "multitask":
                run("main", tagged(name, args), seed, [], args)
                run("separate", tagged(name, args), seed, [], args)  # the same settings: reuses the main record
                continue
            single = argparse.Namespace(**{**vars(args), "steps": budget[name.removeprefix("single-")]})
            run("separate", tagged(name, args), seed, drop, single)


def chosen(variants: dict[str, list[str]], args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """The variants named by `--only` (all by default), refusing unknown names."""
    unknown = set(args.only or []) - set(variants)
    if unknown:
        raise SystemExit(f"--only: unknown variants {sorted(unknown)}; choose from {list(variants)}")
    return [(n, o) for n, o in variants.items() if not args.only or n in args.only]


def study_freezing(args) -> None:
    variants = {
        "none": [],
        "backbone": ["freezing.strategy=backbone"],
        "embeddings": ["freezing.freeze_embeddings=true"],
        "progressive": ["freezing.strategy=progressive", f"freezing.unfreeze_every={max(1, args.steps // 8)}"],
    }
    for seed in args.seeds:
        for name, overrides in chosen(variants, args):
            run("freezing", name, seed, overrides, args)


def study_imbalance(args) -> None:
    variants = {
        "proportional": [],
        "temperature-2": ["sampling.strategy=temperature", "sampling.temperature=2"],
        "round-robin": ["sampling.strategy=round_robin"],
        "annealed": ["sampling.strategy=annealed"],
        "uncertainty-weighting": ["training.loss_weighting=uncertainty"],
        "ner-loss-weight-2": ["tasks.ner.loss_weight=2"],
        "class-weights": [f"tasks.{t}.class_weights=inverse" for t in TASKS],
    }
    for seed in args.seeds:
        for name, overrides in chosen(variants, args):
            run("imbalance", name, seed, overrides, args)


def study_add_task(args) -> None:
    """Train ner+sentiment, add topic with the encoder and old heads frozen, check old outputs are unchanged.

    The added head trains twice: with as many topic batches as topic gets in the joint 3-task run of `--steps`
    steps (`add-topic-frozen`), and with all `--steps` steps (`add-topic-frozen-all-steps`: frozen-encoder steps
    are cheap). With the encoder and old heads frozen, the trainer samples only the new task. The check runs each
    model and the 2-task model on the whole dev sets of the old tasks.
    """
    from mtsent.data import load_task_data

    config = load_config(CONFIG, args.set)
    probe = {}
    for t in ("ner", "sentiment"):
        dev = load_task_data(t, config.tasks[t].type, config.tasks[t].data, None).dev
        probe[t] = [" ".join(e.tokens) if hasattr(e, "tokens") else e.text for e in dev]
    frozen = ["freezing.strategy=backbone", "freezing.frozen_heads=[ner, sentiment]"]
    out = Path(args.results) / "study_add_task.json"
    for seed in args.seeds:
        first = run("add_task", "two-tasks", seed, ["tasks.topic=null"], args)
        before = MultiTaskModel.from_pretrained(Path(first["run_dir"]) / "best", device="cpu")
        with torch.inference_mode():
            reference = {t: before.predict(texts, tasks=[t]) for t, texts in probe.items()}
        budgets = {
            "add-topic-frozen": max(1, task_batches(args.steps, seed, args.set).get("topic", 0)),
            "add-topic-frozen-all-steps": args.steps,
        }
        joint = run("add_task", "joint-three-tasks", seed, [], args)
        for name, steps in budgets.items():
            init = f"init_from={Path(first['run_dir']) / 'best'}"
            added = run("add_task", name, seed, [init, *frozen], argparse.Namespace(**{**vars(args), "steps": steps}))
            after = MultiTaskModel.from_pretrained(Path(added["run_dir"]) / "best", device="cpu")
            identical = {}
            for t, texts in probe.items():
                with torch.inference_mode():
                    b = after.predict(texts, tasks=[t])
                identical[t] = all(x[t] == y[t] for x, y in zip(reference[t], b, strict=True))
            records = json.loads(out.read_text())
            for r in records:
                if r["name"] == name and r["seed"] == seed:
                    r["old_task_predictions_identical"] = identical
            out.write_text(json.dumps(records, indent=2) + "\n")
            print(f"{name}: old tasks identical: {identical}; topic {added['main']} vs joint {joint['main']}")


def _serve_side(paths: list[str], texts: list[str], repeats: int, queue) -> None:
    """In a fresh process: load the models, answer every task of each for all texts; time, memory, parameters."""
    import resource

    import psutil

    torch.set_num_threads(2)
    base = psutil.Process().memory_info().rss
    models = [MultiTaskModel.from_pretrained(p, device="cpu") for p in paths]
    loaded = psutil.Process().memory_info().rss
    for m in models:
        m.predict(texts[:64])  # warm-up: the bf16 copy, allocator, kernels
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for m in models:
            m.predict(texts)
        seconds.append(time.perf_counter() - start)
    queue.put(
        {
            "models": len(models),
            "parameters": sum(p.numel() for m in models for p in m.parameters()),
            "weights_mib": sum(p.numel() * p.element_size() for m in models for p in m.parameters()) / 2**20,
            "rss_loaded_mib": (loaded - base) / 2**20,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds": seconds,
            "texts_per_s": len(texts) / statistics.median(seconds),
        }
    )


def study_serving_cost(args) -> None:
    """Study 1's inference side: the 3-task model (one pass) against the three single-task models (three passes).

    Each side runs in its own fresh process (so memory is its own), on the same mixed texts (SST-2 dev phrases,
    AG News articles, CoNLL-2003 dev sentences), precision `auto`, 2 threads; medians of `--repeats` passes.
    """
    import multiprocessing

    from parity import DATA, read_agnews, read_sst2

    from mtsent.data.readers import read_conll

    records = {
        r["name"]: r
        for r in json.loads((Path(args.results) / "study_separate.json").read_text())
        if r["seed"] == args.seeds[0]
    }
    sides = {
        "3-task model, one pass": [str(Path(records[tagged("multitask", args)]["run_dir"]) / "best")],
        "3 single-task models": [str(Path(records[tagged(f"single-{t}", args)]["run_dir"]) / "best") for t in TASKS],
    }
    conll = [" ".join(e.tokens) for e in read_conll(DATA / "conll2003" / "dev.txt")[:300]]
    texts = read_sst2()[:500] + read_agnews()[:200] + conll
    context = multiprocessing.get_context("spawn")
    results = {}
    for name, paths in sides.items():
        queue = context.Queue()
        child = context.Process(target=_serve_side, args=(paths, texts, args.repeats, queue))
        child.start()
        results[name] = queue.get()
        child.join()
        print(name, {k: v for k, v in results[name].items() if k != "seconds"})
    one, three = results.values()
    report = {
        "benchmark": "serving_cost",
        "date": date.today().isoformat(),
        "machine": machine(),
        "texts": len(texts),
        "repeats": args.repeats,
        "models": sides,
        "results": results,
        "speedup_one_pass": one["texts_per_s"] / three["texts_per_s"],
    }
    write_report(Path(args.results) / f"study_{tagged('serving_cost', args)}.json", report)


def table(study: str, results: Path = RESULTS) -> str:
    """Markdown table: one row per configuration, mean (and spread over seeds) of each task's main metric."""
    records = json.loads((results / f"study_{study}.json").read_text())
    names = list(dict.fromkeys(r["name"] for r in records))
    lines = [
        "| run | seeds | " + " | ".join(TASKS) + " | steps | train time (s) | examples/s |",
        "|---|---:|" + "---:|" * (len(TASKS) + 3),
    ]
    for name in names:
        rows = [r for r in records if r["name"] == name]
        cells = []
        for t in TASKS:
            vals = [100 * r["main"][t] for r in rows if t in r["main"]]
            if not vals:
                cells.append("")
            elif len(vals) == 1:
                cells.append(f"{vals[0]:.2f}")
            else:
                cells.append(f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}")
        secs = statistics.mean(r["train_seconds"] for r in rows)
        rate = statistics.mean(r["train_examples_per_s"] or 0 for r in rows)
        lines.append(
            f"| {name} | {len(rows)} | " + " | ".join(cells) + f" | {rows[0]['steps']} | {secs:.0f} | {rate:.0f} |"
        )
    return "\n".join(lines)


def gap_table(results: Path = RESULTS, tag: str = "") -> str:
    """Study 1's bar seed by seed: 3-task minus single-task model on each task, then the mean over shared seeds."""
    records = json.loads((results / "study_separate.json").read_text())
    suffix = f"-{tag}" if tag else ""

    def by_seed(name: str) -> dict[int, dict[str, float]]:
        return {r["seed"]: r["main"] for r in records if r["name"] == name}

    multi = by_seed(f"multitask{suffix}")
    lines = ["| task | seed | 3-task | single-task | 3-task minus single |", "|---|---|---:|---:|---:|"]
    for task in TASKS:
        single = by_seed(f"single-{task}{suffix}")
        pairs = [(s, 100 * multi[s][task], 100 * single[s][task]) for s in sorted(set(multi) & set(single))]
        lines += [f"| {task} | {s} | {m:.2f} | {o:.2f} | {m - o:+.2f} |" for s, m, o in pairs]
        if len(pairs) > 1:
            m, o = (statistics.mean(p[i] for p in pairs) for i in (1, 2))
            lines.append(f"| {task} | **mean of {len(pairs)}** | {m:.2f} | {o:.2f} | **{m - o:+.2f}** |")
    return "\n".join(lines)


def plot(study: str, results: Path = RESULTS) -> Path:
    """Bar chart of a study: one group per task, one bar per configuration (mean over seeds, sd as error bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = json.loads((results / f"study_{study}.json").read_text())
    names = list(dict.fromkeys(r["name"] for r in records))
    tasks = [t for t in TASKS if any(t in r["main"] for r in records)]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        shown = [n for n in names if any(task in r["main"] for r in records if r["name"] == n)]
        values = [[100 * r["main"][task] for r in records if r["name"] == n and task in r["main"]] for n in shown]
        means = [statistics.mean(v) for v in values]
        errors = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
        ax.barh(shown, means, xerr=errors, color="#4c72b0")
        low = min(means)
        ax.set_xlim(max(0.0, low - 0.15 * (max(means) - low) - 2), max(means) + 1.5)
        ax.set_title(task)
        ax.invert_yaxis()
        for y, m in enumerate(means):
            ax.text(m, y, f" {m:.2f}", va="center", fontsize=8)
    fig.suptitle(f"study {study}: dev main metric x100 (mean over seeds; bars = sd)")
    fig.tight_layout()
    out = results / f"study_{study}.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "study",
        choices=["main", "separate", "serving-cost", "freezing", "imbalance", "add-task", "table", "plot"],
    )
    parser.add_argument("name", nargs="?", help="with `table` or `plot`: which study")
    parser.add_argument("--steps", type=int, default=3000, help="optimizer steps per run (the budget)")
    parser.add_argument("--eval-every", type=int, default=None, help="default: once, at the end")
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[13])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "studies"))
    parser.add_argument(
        "--only", type=lambda s: s.split(","), default=None, help="variants to run (separate/freezing/imbalance)"
    )
    parser.add_argument("--results", default=str(RESULTS), help="where the study_*.json records are kept")
    parser.add_argument("--set", action="append", default=[], help="extra config override for every run")
    parser.add_argument("--tag", default="", help="suffix for run names: a variant of the study set by --set")
    parser.add_argument("--repeats", type=int, default=5, help="serving-cost: timed passes per side")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    if args.study in ("table", "plot"):
        name = args.name.replace("-", "_")
        print(table(name, Path(args.results)) if args.study == "table" else plot(name, Path(args.results)))
        if args.study == "table" and name == "separate":
            print("\n" + gap_table(Path(args.results), args.tag))
        return
    {
        "main": study_main,
        "separate": study_separate,
        "freezing": study_freezing,
        "imbalance": study_imbalance,
        "add-task": study_add_task,
        "serving-cost": study_serving_cost,
    }[args.study](args)


if __name__ == "__main__":
    main()
