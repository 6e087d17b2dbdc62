"""Probe: would `torch.compile` speed up mtsent's bf16 encoder on this CPU? (Not an mtsent mode yet.)

Run: `python benchmarks/compile_probe.py` (writes docs/results/compile_probe.json). Two encoders in one process:
the default bf16 path, and the same path with the bf16 backbone copy wrapped in `torch.compile(dynamic=True)`
(inductor, with inductor's `freezing` so weights are folded as constants). Both are warmed up, then timed
round-robin on AG News articles and SST-2 dev phrases; medians. The cosine is to the fp32 embeddings.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import date
from pathlib import Path

import torch
from corpora import read_agnews, read_sst2
from records import RESULTS, machine, write_report
from similarity import row_cosine

from mtsent.encoder import SentenceEncoder
from mtsent.precision import inference_copy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agnews", type=int, default=300)
    parser.add_argument("--sst2", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS / "compile_probe.json")
    args = parser.parse_args()

    plain, compiled = SentenceEncoder(device="cpu"), SentenceEncoder(device="cpu")
    with torch.inference_mode():
        runner = inference_copy(compiled, "bf16")  # the cached copy that encode(precision="bf16") runs
    runner.backbone = torch.compile(runner.backbone, dynamic=True, options={"freezing": True})
    results = {}
    for corpus, sentences in {"agnews": read_agnews()[: args.agnews], "sst2": read_sst2()[: args.sst2]}.items():
        started = time.perf_counter()
        compiled.encode(sentences[:256], precision="bf16")
        warm = time.perf_counter() - started
        compiled.encode(sentences, precision="bf16")
        plain.encode(sentences[:256], precision="bf16")
        times: dict[str, list[float]] = {"bf16": [], "bf16 + torch.compile": []}
        for _ in range(args.repeats):
            for name, encoder in (("bf16", plain), ("bf16 + torch.compile", compiled)):
                start = time.perf_counter()
                encoder.encode(sentences, precision="bf16")
                times[name].append(time.perf_counter() - start)
        rate = {name: len(sentences) / statistics.median(t) for name, t in times.items()}
        cosine = row_cosine(plain.encode(sentences, precision="fp32"), compiled.encode(sentences, precision="bf16"))
        results[corpus] = {
            "sentences": len(sentences),
            "sentences_per_s": rate,
            "speedup": rate["bf16 + torch.compile"] / rate["bf16"],
            "first_call_seconds": round(warm, 1),
            "min_cosine_to_fp32": float(cosine.min()),
        }
        print(corpus, results[corpus])
    report = {"benchmark": "compile_probe", "date": date.today().isoformat(), "machine": machine(), **results}
    write_report(args.output, report)


if __name__ == "__main__":
    main()
