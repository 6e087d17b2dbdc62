"""Padding ratio with and without length bucketing on real training sets.

Usage: python benchmarks/padding.py [--data-dir DIR] [--batch-size 32] [--max-length 128] [--seeds 5]

Sub-word lengths come from the packaged all-MiniLM-L6-v2 tokenizer (truncated at --max-length, special
tokens included), exactly as the collator would pad them. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from mtsent.batching import bucketed_batches, padding_ratio, random_batches
from mtsent.data import (
    align_token_labels,
    encode_sentences,
    load_task_data,
    load_tokenizer,
    read_task_specs,
    resolve_data_dir,
)

REPO = Path(__file__).resolve().parents[1]


def lengths_for(task: str, data_dir: Path, max_length: int) -> list[int]:
    spec = read_task_specs(REPO / "configs" / "multitask.yaml")[task]
    splits = load_task_data(task, spec.type, spec.data, data_dir)
    tok = load_tokenizer(None)
    if spec.type == "token_classification":
        feats, _ = align_token_labels(tok, splits.train, splits.label2id, max_length)
    else:
        feats = encode_sentences(tok, splits.train, splits.label2id, max_length)
    return [len(f["input_ids"]) for f in feats]


def padded_tokens(lengths: list[int], batches: list[list[int]]) -> int:
    return sum(max(lengths[i] for i in b) * len(b) for b in batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--chunk-multiplier", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    data_dir = resolve_data_dir(args.data_dir)
    bs = args.batch_size
    print(
        f"batch_size={bs} max_length={args.max_length} chunk_multiplier={args.chunk_multiplier} "
        f"seeds=0..{args.seeds - 1} (mean ± sd over seeds)\n"
    )
    print(
        "| data set (train) | examples | real tokens | no bucketing: pad ratio | bucketed: pad ratio "
        "| sorted (eval, lower bound) | padded tokens/epoch no bucketing → bucketed |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for task, label in (("ner", "CoNLL-2003"), ("sentiment", "SST-2")):
        t0 = time.perf_counter()
        lengths = lengths_for(task, data_dir, args.max_length)
        seeds = range(args.seeds)
        plain = [random_batches(len(lengths), bs, s) for s in seeds]
        bucket = [bucketed_batches(lengths, bs, s, chunk_multiplier=args.chunk_multiplier) for s in seeds]
        plain_r = [padding_ratio(lengths, b) for b in plain]
        bucket_r = [padding_ratio(lengths, b) for b in bucket]
        sorted_r = padding_ratio(lengths, bucketed_batches(lengths, bs, 0, shuffle=False))
        plain_t = statistics.mean(padded_tokens(lengths, b) for b in plain)
        bucket_t = statistics.mean(padded_tokens(lengths, b) for b in bucket)
        print(
            f"| {label} | {len(lengths):,} | {sum(lengths):,} "
            f"| {statistics.mean(plain_r):.1%} ± {statistics.stdev(plain_r):.1%} "
            f"| {statistics.mean(bucket_r):.1%} ± {statistics.stdev(bucket_r):.1%} "
            f"| {sorted_r:.1%} | {plain_t:,.0f} → {bucket_t:,.0f} ({bucket_t / plain_t - 1:+.0%}) |"
        )
        print(f"<!-- {label}: {time.perf_counter() - t0:.1f}s -->")


if __name__ == "__main__":
    main()
