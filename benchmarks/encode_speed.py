"""Encoding speed and quality: sentence-transformers (fp32, bf16 weights) vs mtsent's precisions, same model.

Run: `python benchmarks/encode_speed.py` (writes docs/results/encode_speed.json). Every contender is warmed up,
then timed round-robin (so machine noise hits all alike) and the median of the repetitions is reported. Quality
is measured on every STS-B dev sentence: cosine to the fp32 embeddings and the STS-B dev Spearman.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch
from corpora import read_agnews, read_sst2, read_stsb
from records import RESULTS, machine, write_report
from similarity import row_cosine, sts_spearman

Encode = Callable[[list[str]], np.ndarray]


def contenders() -> dict[str, Encode]:
    """Name -> function embedding a list of sentences into normalised float32 vectors."""
    from sentence_transformers import SentenceTransformer

    from mtsent.encoder import SentenceEncoder, default_backbone_path

    st32 = SentenceTransformer(str(default_backbone_path()), device="cpu")
    st16 = SentenceTransformer(str(default_backbone_path()), device="cpu").to(torch.bfloat16)
    ours = SentenceEncoder(device="cpu")

    def st(model: SentenceTransformer) -> Encode:
        return lambda s: model.encode(s, normalize_embeddings=True, convert_to_tensor=True).float().numpy()

    return {
        "sentence-transformers fp32": st(st32),
        "sentence-transformers bf16": st(st16),
        "mtsent fp32": lambda s: ours.encode(s, precision="fp32"),
        "mtsent auto (= bf16 here)": lambda s: ours.encode(s, precision="auto"),
        "mtsent int8": lambda s: ours.encode(s, precision="int8"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sst2", type=int, default=2000, help="SST-2 dev phrases to encode per repetition")
    parser.add_argument("--agnews", type=int, default=300, help="AG News articles to encode per repetition")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=RESULTS / "encode_speed.json")
    args = parser.parse_args()

    runs = contenders()
    corpora = {"sst2": read_sst2()[: args.sst2], "agnews": read_agnews()[: args.agnews]}
    speed: dict[str, dict[str, float]] = {name: {} for name in runs}
    for corpus, sentences in corpora.items():
        times: dict[str, list[float]] = {name: [] for name in runs}
        for encode in runs.values():
            encode(sentences[:256])  # warm-up: converted copies, allocator, kernels
        for _ in range(args.repeats):
            for name, encode in runs.items():
                start = time.perf_counter()
                encode(sentences)
                times[name].append(time.perf_counter() - start)
        for name in runs:
            speed[name][corpus] = len(sentences) / statistics.median(times[name])

    first, second, gold = read_stsb()
    n = len(first)
    embeddings = {name: encode(first + second) for name, encode in runs.items()}
    reference = embeddings["mtsent fp32"]
    base = speed["sentence-transformers fp32"]
    rows = {}
    for name, emb in embeddings.items():
        cos = row_cosine(reference, emb)
        rows[name] = {
            "sentences_per_s": speed[name],
            "speedup_vs_st_fp32": {c: speed[name][c] / base[c] for c in corpora},
            "min_cosine_to_fp32": float(cos.min()),
            "mean_cosine_to_fp32": float(cos.mean()),
            "stsb_dev_spearman": sts_spearman(emb[:n], emb[n:], gold),
        }
    result = {
        "benchmark": "encode_speed",
        "date": date.today().isoformat(),
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "corpora": {c: len(s) for c, s in corpora.items()},
        "repeats": args.repeats,
        "results": rows,
    }
    write_report(args.output, result)
    print("| contender | SST-2 sent/s | AG News sent/s | x ST fp32 (SST-2 / AG) | min / mean cos to fp32 | STS-B ρ |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        s, x = r["sentences_per_s"], r["speedup_vs_st_fp32"]
        print(
            f"| {name} | {s['sst2']:.0f} | {s['agnews']:.0f} | {x['sst2']:.2f} / {x['agnews']:.2f} | "
            f"{r['min_cosine_to_fp32']:.5f} / {r['mean_cosine_to_fp32']:.5f} | {r['stsb_dev_spearman']:.2f} |"
        )


if __name__ == "__main__":
    main()
