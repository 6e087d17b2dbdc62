"""Where the default encode pass spends its time, and how far its matrix products are from the machine's peak.

Run: `python benchmarks/encode_profile.py` (writes docs/results/encode_profile.json). The packaged encoder encodes
SST-2 dev phrases and AG News articles with the default settings (`precision="auto"`, 2,048-token batches) under
`torch.profiler`, after a warm-up. Every operator's own (exclusive) time falls in one class: matrix products
(`addmm`, `mm`, `bmm`, ...), attention, layer norms, GELU, casts and copies, other torch operators; the wall time
outside every operator (tokenisation, batching, Python) is its own class. The matrix products' FLOPs (from the
profiler's shapes) over their own time give their achieved rate, set against two references timed in the same
run: the best of a few 4096² bf16 products (the peak the speed tables use) and products of the encoder's own
shapes (2,048 tokens x hidden size x hidden or feed-forward size). What the classes imply for the whole pass is
an upper bound: if everything but the matrix products took no time, the pass would be `1 / matmul share` times
faster; if the products also ran at the encoder-shape rate, faster still. On CPUs with bf16 units the default
runs fused oneDNN linear layers (mtsent.fused): their GELU and residual adds count as matrix-product time, and
their FLOPs are counted from the recorded shapes (the profiler counts none for them). `MTSENT_FUSED=0
python benchmarks/encode_profile.py` profiles the unfused bf16 path.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import torch
from corpora import read_agnews, read_sst2
from records import RESULTS, machine, write_report
from throughput import matmul_peaks

from mtsent.batching import DEFAULT_MAX_TOKENS
from mtsent.encoder import SentenceEncoder
from mtsent.fused import fusion_available

CLASSES = (
    ("matrix products", ("addmm", "aten::mm", "bmm", "baddbmm", "matmul", "linear", "mkldnn")),
    ("attention", ("attention", "flash", "softmax")),
    ("layer norm", ("layer_norm",)),
    ("GELU", ("gelu",)),
    ("casts and copies", ("aten::to", "_to_copy", "copy_", "contiguous", "clone", "empty", "cat", "index")),
)


def op_class(name: str) -> str:
    """The class of a profiled operator by its name; anything unlisted is 'other torch operators'."""
    for label, keys in CLASSES:
        if any(k in name for k in keys):
            return label
    return "other torch operators"


def shape_rate(tokens: int, hidden: int, ffn: int, repeats: int = 5) -> float:
    """Best bf16 FLOP/s over the encoder's product shapes (q/k/v/output, feed-forward up and down) at `tokens` rows."""
    shapes = [(tokens, hidden, hidden)] * 4 + [(tokens, hidden, ffn), (tokens, ffn, hidden)]
    flops = sum(2 * m * k * n for m, k, n in shapes)
    pairs = [(torch.randn(m, k).bfloat16(), torch.randn(k, n).bfloat16()) for m, k, n in shapes]
    best = float("inf")
    for _ in range(repeats + 1):  # the first round warms up
        start = time.perf_counter()
        for a, b in pairs:
            a @ b
        best = min(best, time.perf_counter() - start)
    return flops / best


def fused_linear_flops(event) -> float:
    """FLOPs of the calls of a fused oneDNN linear event (`mkldnn::_linear_pointwise`, both overloads under one
    name), from its input shapes: the input's rows x its width x the weight's rows, twice, per call. The
    residual overload's second tensor has the input's leading dimensions and the weight comes third."""
    shapes = [shape for shape in event.input_shapes if shape]
    x = shapes[0]
    residual = len(shapes) > 2 and shapes[1][:-1] == x[:-1] and len(shapes[2]) == 2 and shapes[2][1] == x[-1]
    weight = shapes[2] if residual else shapes[1]
    rows = 1
    for size in x[:-1]:
        rows *= size
    return 2.0 * rows * x[-1] * weight[0] * event.count


def profile(encoder: SentenceEncoder, texts: list[str]) -> dict:
    """Profile one default encode pass over `texts` (after a warm-up pass): time per class, matmul FLOP/s."""
    encoder.encode(texts)
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, with_flops=True, record_shapes=True) as prof:
        start = time.perf_counter()
        encoder.encode(texts)
        wall = time.perf_counter() - start
    seconds: dict[str, float] = defaultdict(float)
    matmul_flops = 0.0
    for event in prof.key_averages(group_by_input_shape=True):
        label = op_class(event.key)
        seconds[label] += event.self_cpu_time_total / 1e6
        if label == "matrix products":
            matmul_flops += event.flops or (fused_linear_flops(event) if "_linear_pointwise" in event.key else 0)
    seconds["outside torch operators (tokenisation, batching, Python)"] = max(0.0, wall - sum(seconds.values()))
    return {
        "texts": len(texts),
        "wall_s": wall,
        "seconds": dict(seconds),
        "share": {k: v / wall for k, v in seconds.items()},
        "matmul_gflop_per_s": matmul_flops / max(seconds["matrix products"], 1e-9) / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sst2", type=int, default=1000)
    parser.add_argument("--agnews", type=int, default=150)
    parser.add_argument("--output", type=Path, default=RESULTS / "encode_profile.json")
    args = parser.parse_args()

    encoder = SentenceEncoder(device="cpu")
    config = encoder.backbone.config
    peak = matmul_peaks(4096)["bf16"]
    at_shape = shape_rate(DEFAULT_MAX_TOKENS, config.hidden_size, config.intermediate_size)
    corpora = {"sst2": read_sst2()[: args.sst2], "agnews": read_agnews()[: args.agnews]}
    results = {}
    for name, texts in corpora.items():
        r = profile(encoder, texts)
        matmul_share = r["share"]["matrix products"]
        r["bound_if_only_matmuls"] = 1 / matmul_share
        r["bound_if_only_matmuls_at_shape_rate"] = 1 / (matmul_share * r["matmul_gflop_per_s"] * 1e9 / at_shape)
        results[name] = r
        shares = ", ".join(f"{k} {100 * v:.1f} %" for k, v in sorted(r["share"].items(), key=lambda kv: -kv[1]))
        print(f"{name}: {r['texts'] / r['wall_s']:.0f} texts/s; {shares}")
        print(
            f"  matrix products {r['matmul_gflop_per_s']:.0f} GFLOP/s (4096² peak {peak / 1e9:.0f}, encoder shapes "
            f"{at_shape / 1e9:.0f}); bounds x{r['bound_if_only_matmuls']:.2f} / "
            f"x{r['bound_if_only_matmuls_at_shape_rate']:.2f}"
        )
    write_report(
        args.output,
        {
            "benchmark": "encode_profile",
            "date": date.today().isoformat(),
            "machine": machine(),
            "threads": torch.get_num_threads(),
            "precision": "auto",
            "fused": fusion_available(),
            "max_tokens": DEFAULT_MAX_TOKENS,
            "bf16_peak_flop_per_s_4096": peak,
            "bf16_flop_per_s_encoder_shapes": at_shape,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
