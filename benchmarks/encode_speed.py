"""Encoding speed and quality: sentence-transformers (torch fp32 and bf16 weights; with `--anchor-python`, also
its ONNX, ONNX O3, ONNX int8 and OpenVINO backends) vs mtsent's precisions, same model.

Run: `python benchmarks/encode_speed.py` (writes docs/results/encode_speed.json); add
`--anchor-python ANCHOR_VENV/bin/python --anchor-cache DIR` for the backends that need transformers 4 and
optimum (anchor_backends.py, a child process whose models are exported and loaded before any timing). Every
contender is warmed up, then timed round-robin (so machine noise hits all alike) and the median of the
repetitions is reported as sentences/s, tokens/s and the fraction of the bf16 matmul peak measured in the same
run (throughput.py says how). Quality is measured on the STS-B dev sentences: cosine to mtsent's fp32
embeddings and the STS-B dev Spearman. `int8 (calibrated)` is smoothed int8 (mtsent.quantization), calibrated
on 512 training texts (corpora.calibration_texts). `auto, unfused` is the default with its bf16 copy built under
`MTSENT_FUSED=0` (plain bf16 linear layers instead of mtsent.fused's oneDNN ones), for the fusion's share.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING
from unittest import mock

import numpy as np
import torch
from anchor_backends import ANCHORS, AnchorProcess, anchor_session
from corpora import calibration_texts, read_agnews, read_sst2, read_stsb
from records import RESULTS, machine, write_report
from similarity import row_cosine, sts_spearman
from throughput import FLOPS_FORMULA, Batcher, by_characters, corpus_load, matmul_peaks, rates

if TYPE_CHECKING:
    from mtsent.encoder import SentenceEncoder

Encode = Callable[[list[str]], np.ndarray]
CORPORA = ("sst2", "agnews")
WARMUP = 256
"""Texts of each corpus in the untimed warm-up pass: converted copies, allocator, kernels."""


@dataclass(frozen=True)
class Contender:
    """One way to embed: a timed pass over (the first n texts of) a corpus, a corpus's embeddings, and how it
    truncates and batches (what its tokens and padding are counted by)."""

    timed: Callable[[str, int | None], float]
    embed: Callable[[str], np.ndarray]
    max_length: int
    batches: Batcher


def local(encode: Encode, texts: dict[str, list[str]], max_length: int, batches: Batcher) -> Contender:
    def timed(corpus: str, limit: int | None) -> float:
        start = time.perf_counter()
        encode(texts[corpus][:limit])
        return time.perf_counter() - start

    return Contender(timed, lambda corpus: encode(texts[corpus]), max_length, batches)


def contenders(texts: dict[str, list[str]], ours: SentenceEncoder, calibrated: SentenceEncoder) -> dict[str, Contender]:
    """Name -> contender embedding sentences into normalised float32 vectors, in this interpreter."""
    from sentence_transformers import SentenceTransformer

    from mtsent.batching import DEFAULT_MAX_TOKENS, token_budget_batches
    from mtsent.encoder import SentenceEncoder, default_backbone_path
    from mtsent.precision import inference_copy

    st32 = SentenceTransformer(str(default_backbone_path()), device="cpu")
    st16 = SentenceTransformer(str(default_backbone_path()), device="cpu").to(torch.bfloat16)

    def st(model: SentenceTransformer) -> Contender:
        def encode(sentences: list[str]) -> np.ndarray:
            return model.encode(sentences, normalize_embeddings=True, convert_to_tensor=True).float().numpy()

        return local(encode, texts, model.max_seq_length, by_characters(32))  # encode's default batch_size

    def mtsent(precision: str, encoder: SentenceEncoder = ours) -> Contender:
        def budget(_: object, lengths: list[int]) -> list[list[int]]:
            return token_budget_batches(lengths, DEFAULT_MAX_TOKENS)

        return local(lambda s: encoder.encode(s, precision=precision), texts, encoder.max_length, budget)

    unfused = SentenceEncoder(device="cpu")
    with mock.patch.dict(os.environ, {"MTSENT_FUSED": "0"}), torch.inference_mode():
        inference_copy(unfused, "auto")  # cached: later encode calls run this unfused copy

    return {
        "sentence-transformers fp32": st(st32),
        "sentence-transformers bf16": st(st16),
        "mtsent fp32": mtsent("fp32"),
        "mtsent auto (= bf16 here)": mtsent("auto"),
        "mtsent auto, unfused (MTSENT_FUSED=0)": mtsent("auto", unfused),
        "mtsent int8": mtsent("int8"),
        "mtsent int8 (calibrated)": mtsent("int8", calibrated),
    }


def anchor_contenders(anchors: AnchorProcess | None) -> dict[str, Contender]:
    """The child process's sentence-transformers backends, batched as sentence-transformers does."""
    if anchors is None:
        return {}
    return {
        ANCHORS[key].label: Contender(
            lambda corpus, limit, key=key: anchors.seconds(key, corpus, limit),
            lambda corpus, key=key: anchors.embed(key, corpus),
            int(details["max_length"]),
            by_characters(int(details["batch_size"])),
        )
        for key, details in anchors.details.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sst2", type=int, default=2000, help="SST-2 dev phrases to encode per repetition")
    parser.add_argument("--agnews", type=int, default=300, help="AG News articles to encode per repetition")
    parser.add_argument("--stsb", type=int, default=None, help="STS-B dev pairs for the quality guard (all)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peak-size", type=int, default=4096, help="side of the square matmuls timed for the peak")
    parser.add_argument("--anchor-python", default=None, help="interpreter with optimum (default: no anchors)")
    parser.add_argument("--anchor-cache", type=Path, default=Path.home() / ".cache" / "mtsent-anchors")
    parser.add_argument("--output", type=Path, default=RESULTS / "encode_speed.json")
    args = parser.parse_args()

    from mtsent.encoder import SentenceEncoder, default_backbone_path

    first, second, gold = read_stsb()
    first, second, gold = first[: args.stsb], second[: args.stsb], gold[: args.stsb]
    n = len(first)
    texts = {"sst2": read_sst2()[: args.sst2], "agnews": read_agnews()[: args.agnews], "stsb": first + second}
    threads = torch.get_num_threads()
    session = anchor_session(args.anchor_python, "encode", texts, threads, default_backbone_path(), args.anchor_cache)
    with session as anchors:
        ours = SentenceEncoder(device="cpu")  # also the tokenizer and config every contender shares
        calibrated = SentenceEncoder(device="cpu")
        calibrated.calibrate_int8(calibration_texts())
        runs = contenders(texts, ours, calibrated) | anchor_contenders(anchors)
        peaks = matmul_peaks(args.peak_size)
        times: dict[str, dict[str, list[float]]] = {name: {c: [] for c in CORPORA} for name in runs}
        for corpus in CORPORA:
            for run in runs.values():
                run.timed(corpus, WARMUP)
            for _ in range(args.repeats):
                for name, run in runs.items():
                    times[name][corpus].append(run.timed(corpus, None))
        embeddings = {name: run.embed("stsb") for name, run in runs.items()}
        anchor_record = (
            {"python": anchors.python, "versions": anchors.versions, "details": anchors.details} if anchors else None
        )

    config = ours.backbone.config
    speed = {
        name: {
            c: rates(
                len(texts[c]),
                statistics.median(times[name][c]),
                corpus_load(ours.tokenizer, texts[c], run.max_length, run.batches),
                config,
                1,
                peaks["bf16"],
            )
            for c in CORPORA
        }
        for name, run in runs.items()
    }
    reference = embeddings["mtsent fp32"]
    base = speed["sentence-transformers fp32"]
    rows = {}
    for name, emb in embeddings.items():
        cos = row_cosine(reference, emb)
        s = speed[name]
        rows[name] = {
            "sentences_per_s": {c: s[c]["per_s"] for c in CORPORA},
            "tokens_per_s": {c: s[c]["tokens_per_s"] for c in CORPORA},
            "mean_padded_length": {c: s[c]["mean_padded_length"] for c in CORPORA},
            "gflop_per_s": {c: s[c]["gflop_per_s"] for c in CORPORA},
            "fraction_of_bf16_peak": {c: s[c]["fraction_of_bf16_peak"] for c in CORPORA},
            "speedup_vs_st_fp32": {c: s[c]["per_s"] / base[c]["per_s"] for c in CORPORA},
            "seconds": times[name],
            "min_cosine_to_fp32": float(cos.min()),
            "mean_cosine_to_fp32": float(cos.mean()),
            "stsb_dev_spearman": sts_spearman(emb[:n], emb[n:], gold),
        }
    result = {
        "benchmark": "encode_speed",
        "date": date.today().isoformat(),
        "machine": machine(),
        "threads": threads,
        "corpora": {c: len(texts[c]) for c in CORPORA},
        "stsb_pairs": n,
        "repeats": args.repeats,
        "peak_flop_per_s": {**peaks, "matmul_size": args.peak_size},
        "flops_per_token": FLOPS_FORMULA,
        "anchors": anchor_record,
        "results": rows,
    }
    write_report(args.output, result)
    print(f"peak: bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s, fp32 {peaks['fp32'] / 1e9:.0f} GFLOP/s ({threads} threads)")
    print(
        "| contender | SST-2 sent/s | AG News sent/s | SST-2 tok/s | AG News tok/s | % bf16 peak (SST-2 / AG) "
        "| x ST fp32 (SST-2 / AG) | min / mean cos to fp32 | STS-B ρ |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        s, t, f, x = r["sentences_per_s"], r["tokens_per_s"], r["fraction_of_bf16_peak"], r["speedup_vs_st_fp32"]
        print(
            f"| {name} | {s['sst2']:.0f} | {s['agnews']:.0f} | {t['sst2']:.0f} | {t['agnews']:.0f} | "
            f"{100 * f['sst2']:.1f} / {100 * f['agnews']:.1f} | {x['sst2']:.2f} / {x['agnews']:.2f} | "
            f"{r['min_cosine_to_fp32']:.5f} / {r['mean_cosine_to_fp32']:.5f} | {r['stsb_dev_spearman']:.2f} |"
        )


if __name__ == "__main__":
    main()
