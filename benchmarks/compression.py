"""What `mtsent compress` costs: a fully fine-tuned model against its compressed copies, on every dev set.

    python benchmarks/compression.py runs/multitask_sts --variants q3/2,q4/2,64/32,32/0 \\
        --output docs/results/compression.json

RUN is a training run directory (its config.yaml says which tasks and dev sets; its best/ is the model). A
variant qBITS/EMBEDDING_BITS is the quantised difference from the backbone (`SentenceEncoder.compress_quantized`,
groups of 128), RANK/EMBEDDING_RANK the low-rank adapter (`SentenceEncoder.compress`, float16 storage). Each is
saved, loaded back as a plain model and scored like the full model: each task's main dev metric in fp32 and the
STS-B dev embedding quality. The record gives each variant's files in MB beside its scores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

from dev_metrics import embedding_score, task_scores
from records import machine, write_report

from mtsent.model import MultiTaskModel
from mtsent.training import load_config


def scores(model: MultiTaskModel, config, data_dir: Path | None) -> dict[str, float]:
    rows = {name: round(100 * s["fp32"], 2) for name, s in task_scores(model, config, data_dir, ("fp32",)).items()}
    return {**rows, "embedding": round(embedding_score(model, config, data_dir), 2)}


def megabytes(directory: Path) -> float:
    return round(sum(f.stat().st_size for f in directory.iterdir() if f.is_file()) / 1e6, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a training run directory (config.yaml and best/)")
    parser.add_argument(
        "--variants",
        default="q3/2,64/32",
        help="comma-separated qBITS/EMBEDDING_BITS or RANK/EMBEDDING_RANK (0: no embeddings)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $MTSENT_DATA, then ../shared/data")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    config = load_config(str(args.run / "config.yaml"))
    full = MultiTaskModel.from_pretrained(args.run / "best", device="cpu")
    started = time.perf_counter()
    rows = [{"variant": "full", "mb": megabytes(args.run / "best"), **scores(full, config, args.data_dir)}]
    print(rows[-1], flush=True)
    for variant in args.variants.split(","):
        model = MultiTaskModel.from_pretrained(args.run / "best", device="cpu")
        first, second = (int(x) for x in variant.removeprefix("q").split("/"))
        if variant.startswith("q"):
            model.encoder.compress_quantized(bits=first, embedding_bits=second)
        else:
            model.encoder.compress(first, second or None)
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(Path(tmp) / "m")
            size = megabytes(Path(tmp) / "m")
            loaded = MultiTaskModel.from_pretrained(Path(tmp) / "m", device="cpu")
        rows.append({"variant": variant, "mb": size, **scores(loaded, config, args.data_dir)})
        print(rows[-1], flush=True)
    write_report(
        args.output,
        {
            "benchmark": "compression",
            "run": str(args.run),
            "rows": rows,
            "metric": "each task's main dev metric x100 (NER entity F1 with the model's decoding, others accuracy "
            "or Spearman), fp32; embedding: STS-B dev Spearman x100 of normalised embeddings; mb: the model "
            "directory's files (weights, tokenizer, config, card)",
            "seconds": round(time.perf_counter() - started, 1),
            "date": date.today().isoformat(),
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
