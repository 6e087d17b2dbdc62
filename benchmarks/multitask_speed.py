"""One mtsent model answering three tasks in one pass vs three separate Hugging Face models, one after the other.

Run: `python benchmarks/multitask_speed.py` (writes docs/results/multitask_speed.json). Tasks: sentiment (2
labels), topic (4) and NER (9 BIO tags); heads are untrained (speed only). The Hugging Face side is typical usage:
`AutoModelForSequenceClassification` x2 and `AutoModelForTokenClassification` built from the same backbone
directory, the tokenizer padding each batch of `--batch-size` texts in input order, fp32 (and, for reference,
under bf16 autocast); with `--anchor-python ANCHOR_VENV/bin/python --anchor-cache DIR`, also the same three
models exported to OpenVINO (optimum-intel) and ONNX Runtime (optimum), timed in a child process whose models are
exported and loaded before any timing (anchor_backends.py). Contenders are warmed up and timed round-robin;
medians of the repetitions, as texts/s, tokens/s and the fraction of the bf16 matmul peak measured in the same run
(throughput.py says how; the three models' contenders execute three encoder passes per token).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import torch
from anchor_backends import ANCHORS, AnchorProcess, anchor_session
from corpora import read_agnews, read_sst2
from records import RESULTS, machine, write_report
from throughput import FLOPS_FORMULA, Batcher, corpus_load, in_order, matmul_peaks, rates

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


@dataclass(frozen=True)
class Contender:
    """One way to answer the three tasks: a timed pass over the first n texts (all when None), and how it
    truncates and batches and how many encoder passes it makes (what its tokens and FLOPs are counted by)."""

    timed: Callable[[int | None], float]
    max_length: int
    batches: Batcher
    passes: int


def local(
    run: Callable[[list[str]], object], texts: list[str], max_length: int, batches: Batcher, passes: int
) -> Contender:
    def timed(limit: int | None) -> float:
        start = time.perf_counter()
        run(texts[:limit])
        return time.perf_counter() - start

    return Contender(timed, max_length, batches, passes)


def anchor_contenders(anchors: AnchorProcess | None) -> dict[str, Contender]:
    """The child process's three-model pipelines, batched in input order like `hf_pipeline`."""
    if anchors is None:
        return {}
    return {
        ANCHORS[key].label: Contender(
            lambda limit, key=key: anchors.seconds(key, "texts", limit),
            int(details["max_length"]),
            in_order(int(details["batch_size"])),
            len(TASKS),
        )
        for key, details in anchors.details.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sst2", type=int, default=800, help="SST-2 dev phrases in the text mix")
    parser.add_argument("--agnews", type=int, default=200, help="AG News articles in the text mix")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak-size", type=int, default=4096, help="side of the square matmuls timed for the peak")
    parser.add_argument("--anchor-python", default=None, help="interpreter with optimum (default: no anchors)")
    parser.add_argument("--anchor-cache", type=Path, default=Path.home() / ".cache" / "mtsent-anchors")
    parser.add_argument("--output", type=Path, default=RESULTS / "multitask_speed.json")
    args = parser.parse_args()

    from mtsent.batching import DEFAULT_MAX_TOKENS, token_budget_batches
    from mtsent.encoder import default_backbone_path
    from mtsent.model import MultiTaskModel

    torch.manual_seed(0)
    model = MultiTaskModel(tasks=TASKS)
    encoder = model.encoder
    texts = read_sst2()[: args.sst2] + read_agnews()[: args.agnews]
    threads = torch.get_num_threads()
    bs = args.batch_size

    def budget(_: object, lengths: list[int]) -> list[list[int]]:
        return token_budget_batches(lengths, DEFAULT_MAX_TOKENS, bs)

    def hf(bf16: bool) -> Contender:  # truncation=True without max_length: the tokenizer's own limit
        return local(hf_pipeline(bs, bf16), texts, encoder.tokenizer.model_max_length, in_order(bs), len(TASKS))

    def ours(precision: str) -> Contender:
        return local(
            lambda t: model.predict(t, batch_size=bs, precision=precision), texts, encoder.max_length, budget, 1
        )

    session = anchor_session(
        args.anchor_python, "tasks", {"texts": texts}, threads, default_backbone_path(), args.anchor_cache
    )
    with session as anchors:
        runs = {
            "Hugging Face x3, fp32": hf(bf16=False),
            "Hugging Face x3, bf16 autocast": hf(bf16=True),
            "mtsent one pass, fp32": ours("fp32"),
            "mtsent one pass, auto (= bf16 here)": ours("auto"),
        } | anchor_contenders(anchors)
        peaks = matmul_peaks(args.peak_size)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for run in runs.values():
            run.timed(64)
        for _ in range(args.repeats):
            for name, run in runs.items():
                times[name].append(run.timed(None))
        anchor_record = (
            {"python": anchors.python, "versions": anchors.versions, "details": anchors.details} if anchors else None
        )
    base = len(texts) / statistics.median(times["Hugging Face x3, fp32"])
    rows = {}
    for name, run in runs.items():
        load = corpus_load(encoder.tokenizer, texts, run.max_length, run.batches)
        r = rates(len(texts), statistics.median(times[name]), load, encoder.backbone.config, run.passes, peaks["bf16"])
        rows[name] = {
            "texts_per_s": r["per_s"],
            "tokens_per_s": r["tokens_per_s"],
            "encoder_passes": run.passes,
            "mean_padded_length": r["mean_padded_length"],
            "gflop_per_s": r["gflop_per_s"],
            "fraction_of_bf16_peak": r["fraction_of_bf16_peak"],
            "speedup_vs_hf_fp32": r["per_s"] / base,
            "seconds": times[name],
        }
    result = {
        "benchmark": "multitask_speed",
        "date": date.today().isoformat(),
        "machine": machine(),
        "threads": threads,
        "texts": {"sst2": args.sst2, "agnews": args.agnews},
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "peak_flop_per_s": {**peaks, "matmul_size": args.peak_size},
        "flops_per_token": FLOPS_FORMULA,
        "anchors": anchor_record,
        "results": rows,
    }
    write_report(args.output, result)
    print(f"peak: bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s, fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s ({threads} threads)")
    print("| contender (3 tasks) | texts/s | tokens/s | % bf16 peak | x HF fp32 |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['texts_per_s']:.0f} | {r['tokens_per_s']:.0f} | "
            f"{100 * r['fraction_of_bf16_peak']:.1f} | {r['speedup_vs_hf_fp32']:.2f} |"
        )


if __name__ == "__main__":
    main()
