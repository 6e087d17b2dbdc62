"""Quality guard for a trained multi-task model: each task's dev metrics in every inference mode against fp32.

    python benchmarks/quality_guard.py --model runs/multitask/best   # tasks' dev data from configs/multitask.yaml

Target: every mode within 0.3 points of fp32 on every task. Writes docs/results/quality_guard.json.
`int8` runs smoothed by the model's calibration (`--calibrate` measures it first, as training would, for a model
saved without it); `int8-plain` runs the same model with the calibration set aside; `int8-a0.65` smoothed with
another alpha than the shipped one; `bf16-unfused` runs bf16 with `MTSENT_FUSED=0` (plain bf16 layers instead of
mtsent.fused's oneDNN ones on CPU). Beside each metric, how far the mode moves the model's answers from fp32 on
the same dev examples: the top answers that change (`flips`: tags of words, labels of texts) and the mean
absolute change of the fp32 answer's probability (`mean_abs_dprob`; for a similarity head, of its score). With a
few dozen answers changed, a task metric moves by up to ~0.3 points either way by chance; the agreement does not.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path
from unittest import mock

import torch
from records import write_report
from torch import Tensor

import mtsent.quantization
from mtsent.data import load_task_data
from mtsent.model import MultiTaskModel
from mtsent.precision import drop_inference_copies
from mtsent.training import load_config
from mtsent.training.evaluation import task_outputs, tokenize_task
from mtsent.training.trainer import training_calibration_texts

ROOT = Path(__file__).resolve().parents[1]


def agreement(reference: list[Tensor], outputs: list[Tensor], features: list[dict]) -> dict[str, float]:
    """How far one mode's raw outputs (logits per text or per sub-word, or a score) are from fp32's."""
    if reference[0].dim() == 0:  # a similarity head's score
        diffs = torch.stack([(r - o).abs() for r, o in zip(reference, outputs)])
        return {"mean_abs_dscore": float(diffs.mean())}
    flips, answers, dprob = 0, 0, []
    for r, o, f in zip(reference, outputs, features):
        p_ref, p_out = r.softmax(-1), o.softmax(-1)
        if r.dim() == 2:  # sub-words: the labelled ones (each word's first)
            keep = torch.tensor(f["labels"]) != -100
            p_ref, p_out = p_ref[: len(keep)][keep], p_out[: len(keep)][keep]
        else:
            p_ref, p_out = p_ref[None], p_out[None]
        top = p_ref.argmax(-1, keepdim=True)
        flips += int((p_out.argmax(-1, keepdim=True) != top).sum())
        answers += len(top)
        dprob.append((p_ref.gather(-1, top) - p_out.gather(-1, top)).abs().flatten())
    return {"flips": flips, "answers": answers, "mean_abs_dprob": float(torch.cat(dprob).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", default=str(ROOT / "configs" / "multitask.yaml"))
    parser.add_argument("--modes", default="fp32,bf16,int8,int8-plain", help="fp32 first: the reference")
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
    shipped_alpha = mtsent.quantization.SMOOTHING_ALPHA
    modes = args.modes.split(",")
    if modes[0] != "fp32":
        parser.error("--modes must start with fp32 (the reference)")
    results: dict[str, dict[str, float]] = {}
    agreements: dict[str, dict[str, dict[str, float]]] = {}
    seconds: dict[str, float] = {}
    for name in model.tasks:
        spec = config.tasks[name]
        dev = load_task_data(name, spec.type, spec.data, None).dev
        features, _ = tokenize_task(model, name, dev, model.encoder.max_length)
        task_type = model.task_types[name]
        reference: list[Tensor] = []
        for mode in modes:
            started = time.perf_counter()
            model.encoder.int8_calibration = None if mode == "int8-plain" else smoothing
            alpha = float(mode.split("-a")[1]) if mode.startswith("int8-a") else shipped_alpha
            if alpha != mtsent.quantization.SMOOTHING_ALPHA:
                mtsent.quantization.SMOOTHING_ALPHA = alpha
                drop_inference_copies(model)
            precision = "int8" if mode.startswith("int8") else mode.removesuffix("-unfused")
            unfused = {"MTSENT_FUSED": "0"} if mode == "bf16-unfused" else {}
            if precision == "bf16":
                drop_inference_copies(model)  # built anew, fused or not as this mode says
            with mock.patch.dict(os.environ, unfused):
                pairs = task_outputs(
                    model,
                    name,
                    features,
                    lambda logits, task_type=task_type: list(zip(task_type.decode_batch(logits), logits.float().cpu())),
                    batch_size=128,
                    precision=precision,
                )
            metrics = task_type.score(dev, features, [decoded for decoded, _ in pairs])
            raw = [row for _, row in pairs]
            reference = reference or raw
            agreements.setdefault(name, {})[mode] = agreement(reference, raw, features)
            seconds[f"{name}/{mode}"] = round(time.perf_counter() - started, 2)
            results.setdefault(name, {})[mode] = 100 * metrics[task_type.main_metric]
            print(f"{name:10s} {mode:10s} {results[name][mode]:.2f} {agreements[name][mode]}", flush=True)
    mtsent.quantization.SMOOTHING_ALPHA = shipped_alpha
    rows = ["| task | " + " | ".join(modes) + " | worst gap to fp32 |", "|---|" + "---:|" * (len(modes) + 1)]
    for name, by_mode in results.items():
        gap = max(abs(v - by_mode["fp32"]) for v in by_mode.values())
        rows.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in by_mode.values()) + f" | {gap:.2f} |")
    print("\n".join(rows))
    payload = {
        "model": args.model,
        "int8_calibration": calibration,
        "smoothing_alpha": shipped_alpha,
        "main_metric_x100": results,
        "agreement_with_fp32": agreements,
        "eval_seconds": seconds,
        "date": date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
    }
    write_report(Path(args.output), payload)


if __name__ == "__main__":
    main()
