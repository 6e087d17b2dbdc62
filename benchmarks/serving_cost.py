"""Study 1's inference side: the 3-task model (one pass) against the three single-task models (three passes).

Each side runs in its own fresh process (so memory is its own), on the same mixed texts (SST-2 dev phrases,
AG News articles, CoNLL-2003 dev sentences), precision `auto`, 2 threads; medians of `--repeats` passes. The
models are the `separate` study's runs of the first `--seeds` seed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from datetime import date
from pathlib import Path

import study_records
import torch
from corpora import DATA, read_agnews, read_sst2
from records import machine, write_report
from study_runner import tagged
from study_tables import TASKS

from mtsent.data.readers import read_conll
from mtsent.model import MultiTaskModel


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


def serving_cost(args: argparse.Namespace) -> None:
    """Time both sides and write docs/results/study_serving_cost[-TAG].json."""
    records = {r["name"]: r for r in study_records.load(args.results, "separate") if r["seed"] == args.seeds[0]}
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
