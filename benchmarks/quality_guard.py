"""Quality guard for a trained multi-task model: each task's dev metrics in every inference mode against fp32.

    python benchmarks/quality_guard.py --model runs/multitask/best   # tasks' dev data from configs/multitask.yaml

Target: every mode within 0.3 points of fp32 on every task. Writes docs/results/quality_guard.json.
`int8` runs smoothed by the model's calibration (`--calibrate` measures it first, as training would, for a model
saved without it); `int8-plain` runs the same model with the calibration set aside.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date
from pathlib import Path

import torch
from records import write_report

from mtsent.data import load_task_data
from mtsent.model import MultiTaskModel
from mtsent.training import load_config
from mtsent.training.evaluation import evaluate_task, tokenize_task
from mtsent.training.trainer import training_calibration_texts

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", default=str(ROOT / "configs" / "multitask.yaml"))
    parser.add_argument("--modes", default="fp32,bf16,int8,int8-plain")
    parser.add_argument("--calibrate", action="store_true", help="calibrate int8 from the config's training data")
    parser.add_argument("--output", default=str(ROOT / "docs" / "results" / "quality_guard.json"))
    args = parser.parse_args()
    model = MultiTaskModel.from_pretrained(args.model, device="cpu")
    config = load_config(args.config)
    calibration = "the model's own"
    if args.calibrate:
        texts = training_calibration_texts(config)
        model.encoder.calibrate_int8(texts)
        calibration = f"{len(texts)} training texts of {Path(args.config).name} (seed {config.training.seed})"
    elif model.encoder.int8_calibration is None:
        calibration = "none (int8 = int8-plain)"
    smoothing = model.encoder.int8_calibration
    results: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for name in model.tasks:
        spec = config.tasks[name]
        dev = load_task_data(name, spec.type, spec.data, None).dev
        features, _ = tokenize_task(model, name, dev, model.encoder.max_length)
        for mode in args.modes.split(","):
            started = time.perf_counter()
            model.encoder.int8_calibration = None if mode == "int8-plain" else smoothing
            precision = "int8" if mode == "int8-plain" else mode
            metrics = evaluate_task(model, name, dev, features, batch_size=128, precision=precision)
            seconds[f"{name}/{mode}"] = round(time.perf_counter() - started, 2)
            results.setdefault(name, {})[mode] = 100 * metrics["main"]
            print(f"{name:10s} {mode:10s} {100 * metrics['main']:.2f}  ({seconds[f'{name}/{mode}']} s)")
    modes = args.modes.split(",")
    rows = ["| task | " + " | ".join(modes) + " | worst gap to fp32 |", "|---|" + "---:|" * (len(modes) + 1)]
    for name, by_mode in results.items():
        gap = max(abs(v - by_mode["fp32"]) for v in by_mode.values())
        rows.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in by_mode.values()) + f" | {gap:.2f} |")
    print("\n".join(rows))
    payload = {
        "model": args.model,
        "int8_calibration": calibration,
        "main_metric_x100": results,
        "eval_seconds": seconds,
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
    }
    write_report(Path(args.output), payload)


if __name__ == "__main__":
    main()
