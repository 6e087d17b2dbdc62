"""Does the service's memory grow with batch shapes it has not met before, and stop once it has met them all?

The soak (`serving_pressure.py --scenarios soak`) sends only short sentences: every text pads to the 16-token
width, and a model call holds 1 to 32 of them. This probe runs the same model in one process, as the service's
model thread does (1 torch thread, `auto` precision, batch-invariant), warms up the same way (`warmup_calls`),
then runs every row count from 2 to 31 (in a shuffled order) twice: the resident memory after each call says
whether growth comes with a shape's first call and ends when every shape has been met. The warm-up's time is
recorded too (meaningful on a quiet machine only).

Run: `python benchmarks/shape_memory.py` (writes docs/results/shape_memory.json).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import date
from pathlib import Path

import psutil
import torch
from load import SENTENCES, make_tiny_model
from records import RESULTS, machine, write_report

from mtsent import MultiTaskModel
from mtsent.precision import resolve_precision
from mtsent.serving import ServeSettings
from mtsent.serving.app import _model_runner, warmup_calls


def rss_mib() -> float:
    return round(psutil.Process().memory_info().rss / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=RESULTS / "shape_memory.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", default="", help="how the machine was when this ran")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the service's model thread on a 2-core machine
    with tempfile.TemporaryDirectory() as tmp:
        model = MultiTaskModel.from_pretrained(make_tiny_model(Path(tmp) / "tiny")).eval()

    run = _model_runner(model, resolve_precision("auto", model.device))  # what the service's model thread runs

    def call(texts: list[str]) -> None:
        run(("predict", tuple(model.check_tasks(None))), texts)

    started = rss_mib()
    t0 = time.perf_counter()
    calls = warmup_calls(model, ServeSettings())
    for _, texts in calls:
        call(texts)
    warm_seconds = time.perf_counter() - t0
    after_warmup = rss_mib()
    rows = list(range(2, 32))
    random.Random(args.seed).shuffle(rows)
    sweeps = []
    for sweep in range(2):
        steps = []
        for n in rows:
            before = rss_mib()
            call([SENTENCES[i % len(SENTENCES)] for i in range(n)])
            steps.append({"rows": n, "rss_mib_before": before, "rss_mib_after": rss_mib()})
        growth = round(steps[-1]["rss_mib_after"] - steps[0]["rss_mib_before"], 1)
        sweeps.append({"sweep": sweep + 1, "growth_mib": growth, "calls": steps})
        print(f"sweep {sweep + 1}: {steps[0]['rss_mib_before']} -> {steps[-1]['rss_mib_after']} MiB ({growth:+})")
    report = {
        "benchmark": "shape_memory",
        "date": date.today().isoformat(),
        "machine": machine(),
        "torch_threads": 1,
        "rss_mib_before_warmup": started,
        "rss_mib_after_warmup": after_warmup,
        "warmup_calls": len(calls),
        "warmup_seconds": round(warm_seconds, 1),
        "note": args.note,
        "row_counts_in_order": rows,
        "sweeps": sweeps,
    }
    print(f"before warm-up {started} MiB, after {after_warmup} MiB ({len(calls)} calls, {warm_seconds:.1f} s)")
    write_report(args.output, report)


if __name__ == "__main__":
    main()
