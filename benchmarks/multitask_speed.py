"""One mtsent model answering three tasks in one pass vs three separate Hugging Face models, one after the other.

Run: `python benchmarks/multitask_speed.py` (writes docs/results/multitask_speed.json). Tasks: sentiment (2
labels), topic (4) and NER (9 BIO tags); heads are untrained (speed only). The Hugging Face side is typical usage:
`AutoModelForSequenceClassification` x2 and `AutoModelForTokenClassification` built from the same backbone
directory, the tokenizer padding each batch of `--batch-size` texts in input order, fp32 (and, for reference,
under bf16 autocast). Contenders are warmed up and timed round-robin; medians of the repetitions.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch
from corpora import read_agnews, read_sst2
from records import RESULTS, machine, write_report

NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
TASKS = [
    {"name": "sentiment", "type": "sentence_classification", "labels": ["negative", "positive"]},
    {"name": "topic", "type": "sentence_classification", "labels": ["World", "Sports", "Business", "Sci/Tech"]},
    {"name": "ner", "type": "token_classification", "labels": NER_LABELS},
]


def hf_pipeline(batch_size: int, bf16: bool) -> Callable[[list[str]], None]:
    """Three task models run one after the other, each over every batch: the usual way without shared encoders."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from mtsent.encoder import default_backbone_path

    hf_logging.set_verbosity_error()  # "newly initialised head" warnings: the heads are random on purpose
    path = str(default_backbone_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    models = [
        AutoModelForSequenceClassification.from_pretrained(path, num_labels=2),
        AutoModelForSequenceClassification.from_pretrained(path, num_labels=4),
        AutoModelForTokenClassification.from_pretrained(path, num_labels=len(NER_LABELS)),
    ]
    for m in models:
        m.eval()

    @torch.inference_mode()
    def run(texts: list[str]) -> None:
        for model in models:
            for i in range(0, len(texts), batch_size):
                batch = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, return_tensors="pt")
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits = model(**batch).logits
                torch.softmax(logits.float(), dim=-1).argmax(dim=-1).tolist()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sst2", type=int, default=800, help="SST-2 dev phrases in the text mix")
    parser.add_argument("--agnews", type=int, default=200, help="AG News articles in the text mix")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS / "multitask_speed.json")
    args = parser.parse_args()

    from mtsent.model import MultiTaskModel

    torch.manual_seed(0)
    model = MultiTaskModel(tasks=TASKS)
    texts = read_sst2()[: args.sst2] + read_agnews()[: args.agnews]
    runs: dict[str, Callable[[list[str]], object]] = {
        "Hugging Face x3, fp32": hf_pipeline(args.batch_size, bf16=False),
        "Hugging Face x3, bf16 autocast": hf_pipeline(args.batch_size, bf16=True),
        "mtsent one pass, fp32": lambda t: model.predict(t, batch_size=args.batch_size, precision="fp32"),
        "mtsent one pass, auto (= bf16 here)": lambda t: model.predict(t, batch_size=args.batch_size, precision="auto"),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run(texts[:64])
    for _ in range(args.repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(texts)
            times[name].append(time.perf_counter() - start)
    base = len(texts) / statistics.median(times["Hugging Face x3, fp32"])
    rows = {}
    for name, ts in times.items():
        rate = len(texts) / statistics.median(ts)
        rows[name] = {"texts_per_s": rate, "speedup_vs_hf_fp32": rate / base, "seconds": ts}
    result = {
        "benchmark": "multitask_speed",
        "date": date.today().isoformat(),
        "machine": machine(),
        "texts": {"sst2": args.sst2, "agnews": args.agnews},
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "results": rows,
    }
    write_report(args.output, result)
    print("| contender (3 tasks) | texts/s | x HF fp32 |")
    print("|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['texts_per_s']:.0f} | {r['speedup_vs_hf_fp32']:.2f} |")


if __name__ == "__main__":
    main()
