"""What attention costs at each batch width, padded in each way, and what shaping it saves on real text.

Run: `python benchmarks/attention_shapes.py` (writes docs/results/attention_shapes.json). Two parts:

1. Widths. For each batch width from 16 to `--max-width` tokens, bf16 projections of the packaged encoder's
   shape (heads x head size) for a batch of `--tokens` padded tokens (every other text three tokens short) go
   through torch's CPU attention kernel (`scaled_dot_product_attention`, as the fused bf16 layers call it) in
   five ways: as they are; keys padded to whole 16-key tiles; keys and queries padded to 16; keys padded to
   whole 32-key tiles; keys and queries padded to 32. Each is timed with its padding copies (best of three
   rounds) and reported per (text, head). The width `mtsent.fused._attention_widths` picks is set against the
   cheapest of the five: how often it is the cheapest, and what it costs over the cheapest.
2. Real text. The default encode (`precision="auto"`, fused bf16) of SST-2 dev phrases and AG News articles,
   side by side in one process, with the attention shaping on and off (`mtsent.fused.tiled_attention` patched to
   False: no shared blocks for short texts, no padded tiles), alternating rounds; median sentences/s. Skipped
   with a note when the data is absent.

The shapes are what torch's kernel runs fast on AMX (Intel Xeon 4th generation and later); on other CPUs mtsent
leaves attention unshaped, and this benchmark still measures what shaping would do there.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from unittest import mock

import torch
from corpora import read_agnews, read_sst2
from records import RESULTS, machine, write_report

import mtsent.fused
from mtsent.batching import DEFAULT_MAX_TOKENS
from mtsent.encoder import SentenceEncoder


def _best_seconds(fn: Callable[[], object], calls: int, rounds: int = 3) -> float:
    """Best mean seconds per call over `rounds` rounds of `calls` calls, after one warm-up call."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def width_costs(width: int, tokens: int, heads: int, head_size: int, calls: int) -> dict[str, float]:
    """Microseconds per (text, head) of attention over a batch `width` tokens wide, for each way of padding it."""
    batch = max(1, tokens // width)
    generator = torch.Generator().manual_seed(width)
    query, key, value = (
        torch.randn(batch, width, heads * head_size, generator=generator).bfloat16() for _ in range(3)
    )
    keep = torch.ones(batch, width, dtype=torch.bool)
    keep[::2, -3:] = False
    mask = keep[:, None, None]
    to16, to32 = -(-width // 16) * 16, -(-width // 32) * 32
    ways = {
        "as is": (width, width),
        "keys to 16": (width, to16),
        "keys and queries to 16": (to16, to16),
        "keys to 32": (width, to32),
        "keys and queries to 32": (to32, to32),
    }
    scaling = head_size**-0.5
    with torch.inference_mode():
        return {
            name: 1e6
            * _best_seconds(
                lambda w=widths: mtsent.fused._padded_attention(query, key, value, mask, heads, scaling, w), calls
            )
            / (batch * heads)
            for name, widths in ways.items()
        }


def widths_part(max_width: int, tokens: int, heads: int, head_size: int, calls: int) -> dict:
    rows = {}
    with mock.patch.object(mtsent.fused, "tiled_attention", lambda: True):
        for width in range(16, max_width + 1):
            costs = width_costs(width, tokens, heads, head_size, calls)
            queries, keys = mtsent.fused._attention_widths(width)
            if (queries, keys) == (width, width):
                chosen = "as is"
            else:  # mtsent pads to the next whole 16-key tile
                chosen = "keys to 16" if queries == width else "keys and queries to 16"
            cheapest = min(costs, key=costs.get)
            rows[width] = {
                "us_per_text_and_head": costs,
                "cheapest": cheapest,
                "mtsent": chosen,
                "mtsent_over_cheapest": costs[chosen] / costs[cheapest] - 1,
                "as_is_over_mtsent": costs["as is"] / costs[chosen] - 1,
            }
            print(
                f"{width:4d}: mtsent {chosen:23s} {costs[chosen]:6.2f} us, cheapest {cheapest:23s} "
                f"{costs[cheapest]:6.2f} us, as is {costs['as is']:6.2f} us",
                flush=True,
            )
    overs = [r["mtsent_over_cheapest"] for r in rows.values()]
    return {
        "tokens_per_batch": tokens,
        "heads": heads,
        "head_size": head_size,
        "widths": rows,
        "mtsent_is_cheapest": sum(r["mtsent"] == r["cheapest"] for r in rows.values()) / len(rows),
        "mtsent_over_cheapest_mean": statistics.mean(overs),
        "mtsent_over_cheapest_max": max(overs),
    }


def real_text_part(rounds: int, agnews: int) -> dict:
    corpora = {"sst2": read_sst2(), "agnews": read_agnews()[:agnews]}
    encoder = SentenceEncoder(device="cpu")
    encoder.encode(corpora["sst2"][:500])
    rates: dict[str, dict[str, list[float]]] = {"shaped": {}, "unshaped": {}}
    for _ in range(rounds):
        for variant in rates:
            shaped = mtsent.fused.tiled_attention() if variant == "shaped" else False
            with mock.patch.object(mtsent.fused, "tiled_attention", lambda s=shaped: s):
                for name, texts in corpora.items():
                    start = time.perf_counter()
                    encoder.encode(texts, long_texts="truncate")
                    rates[variant].setdefault(name, []).append(len(texts) / (time.perf_counter() - start))
    result = {
        name: {variant: statistics.median(rates[variant][name]) for variant in rates} for name in corpora
    }
    for name, r in result.items():
        r["gain"] = r["shaped"] / r["unshaped"] - 1
        print(f"{name}: shaped {r['shaped']:.0f} / unshaped {r['unshaped']:.0f} sentences/s ({100 * r['gain']:+.1f} %)")
    return {"texts": {name: len(texts) for name, texts in corpora.items()}, "rounds": rounds, "results": result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-width", type=int, default=130)
    parser.add_argument("--tokens", type=int, default=DEFAULT_MAX_TOKENS, help="padded tokens per batch")
    parser.add_argument("--calls", type=int, default=12, help="calls per timing round")
    parser.add_argument("--rounds", type=int, default=8, help="alternating rounds of the real-text part")
    parser.add_argument("--agnews", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=RESULTS / "attention_shapes.json")
    args = parser.parse_args()

    config = SentenceEncoder(device="cpu").backbone.config
    heads = config.num_attention_heads
    head_size = config.hidden_size // heads
    report = {
        "benchmark": "attention_shapes",
        "date": date.today().isoformat(),
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "amx_shapes_used_by_default": mtsent.fused.tiled_attention(),
        "widths": widths_part(args.max_width, args.tokens, heads, head_size, args.calls),
    }
    try:
        report["real_text"] = real_text_part(args.rounds, args.agnews)
    except FileNotFoundError as missing:
        print(f"real-text part skipped: {missing}")
    w = report["widths"]
    print(
        f"mtsent's widths are the cheapest at {100 * w['mtsent_is_cheapest']:.0f} % of widths; over the cheapest: "
        f"mean {100 * w['mtsent_over_cheapest_mean']:.1f} %, max {100 * w['mtsent_over_cheapest_max']:.1f} %"
    )
    write_report(args.output, report)


if __name__ == "__main__":
    main()
