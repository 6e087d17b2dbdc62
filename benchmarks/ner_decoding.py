"""Argmax vs Viterbi decoding of a trained NER head, side by side, on CoNLL-2003 dev (entity P/R/F1, seqeval).

    python benchmarks/ner_decoding.py runs/ner/best                 # writes docs/results/ner_decoding.json
    python benchmarks/ner_decoding.py MODEL_DIR --file other.conll --task ner --output /tmp/decoding.json

Both decodings score the same forward pass's probabilities through `mtsent evaluate`'s code
(`evaluate_file`); only the head's `decoding` differs (see docs/training.md, "Decoding of token tasks").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from corpora import DATA
from records import RESULTS, machine, write_report

from mtsent.model import MultiTaskModel
from mtsent.training.evaluation import evaluate_file


def token_task(model: MultiTaskModel, task: str | None) -> str:
    """The task to score: the one named, else the model's only token task."""
    if task is not None:
        return model.check_tasks([task])[0]
    tokens = [n for n, t in model.task_types.items() if t.level == "token"]
    if len(tokens) != 1:
        raise SystemExit(f"error: give --task: the model has token tasks {tokens}")
    return tokens[0]


def ner_benchmark_args(doc: str, output: str) -> tuple[argparse.Namespace, MultiTaskModel, str]:
    """The command line both NER benchmarks share (MODEL_DIR, --file, --task, --output), the model and its task."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a trained mtsent model directory with a token (NER) head")
    parser.add_argument("--file", type=Path, default=DATA / "conll2003" / "dev.txt")
    parser.add_argument("--task", default=None, help="default: the model's only token task")
    parser.add_argument("--output", type=Path, default=RESULTS / output)
    args = parser.parse_args()
    model = MultiTaskModel.from_pretrained(args.model, device="cpu")
    return args, model, token_task(model, args.task)


def write_record(script: str, args: argparse.Namespace, record: dict) -> None:
    """Add the command, machine and date to a benchmark's record and write it to --output."""
    record |= {
        "command": f"python benchmarks/{script} {args.model}",
        "machine": machine(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_report(args.output, record)
    print(f"wrote {args.output}")


def main() -> None:
    args, model, task = ner_benchmark_args(__doc__, "ner_decoding.json")
    rows = {}
    for decoding in ("argmax", "viterbi"):
        model.set_decoding(task, decoding)
        started = time.perf_counter()
        metrics = evaluate_file(model, task, args.file)
        rows[decoding] = {
            "precision": metrics["precision"],
            "recall": metrics["recall"],
            "f1": metrics["f1"],
            "f1_per_type": {kind: v["f1-score"] for kind, v in metrics["per_type"].items()},
            "seconds": round(time.perf_counter() - started, 2),
        }
        print(f"{decoding:8s} P {100 * metrics['precision']:.2f}  R {100 * metrics['recall']:.2f}  "
              f"F1 {100 * metrics['f1']:.2f}  ({rows[decoding]['seconds']} s)")
    record = {
        "model": str(args.model),
        "task": task,
        "file": str(args.file),
        "sentences": metrics["n"],
        "decodings": rows,
        "f1_gain_viterbi_x100": round(100 * (rows["viterbi"]["f1"] - rows["argmax"]["f1"]), 2),
    }
    write_record("ner_decoding.py", args, record)


if __name__ == "__main__":
    main()
