"""Embedding quality of any model on STS-B dev: Spearman x100 of the cosine of pooled, normalised fp32 embeddings.

    python benchmarks/embedding_quality.py                          # the packaged encoder ("default")
    python benchmarks/embedding_quality.py default runs/multitask/best runs/multitask_sts/best

Each model is a directory (mtsent, Hugging Face or sentence-transformers) or "default". The pairs come from
`evaluation.embedding_quality` of --config (configs/multitask.yaml: STS-B dev, 1,500 pairs), the evaluator the
trainer runs at each evaluation. Results are merged by model into docs/results/embedding_quality.json.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

from parity import machine, write_report

from mtsent.encoder import SentenceEncoder
from mtsent.training import load_config
from mtsent.training.embedding_quality import METRIC, EmbeddingQuality

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=["default"], help="model directories, or 'default'")
    parser.add_argument("--config", default=str(ROOT / "configs" / "multitask.yaml"))
    parser.add_argument("--data-dir", default=None, help="default: the config's data_dir, then the usual lookup")
    parser.add_argument("--output", default=str(ROOT / "docs" / "results" / "embedding_quality.json"))
    args = parser.parse_args()
    config = load_config(args.config)
    data = config.evaluation.embedding_quality
    if data is None:
        parser.error(f"{args.config} has no evaluation.embedding_quality section")
    data_dir = args.data_dir or config.data_dir
    quality = EmbeddingQuality.from_config(data, Path(data_dir) if data_dir else None)
    output = Path(args.output)
    report = json.loads(output.read_text(encoding="utf-8")) if output.is_file() else {"results": {}}
    for model in args.models:
        encoder = SentenceEncoder(device="cpu") if model == "default" else SentenceEncoder.from_pretrained(model, "cpu")
        started = time.perf_counter()
        metrics = quality.evaluate(encoder)
        seconds = round(time.perf_counter() - started, 1)
        spearman, pearson = metrics[METRIC], metrics["sts_pearson"]
        print(f"{model}: STS Spearman x100 {spearman:.2f}, Pearson x100 {pearson:.2f} ({seconds} s)")
        report["results"][model] = {**metrics, "seconds": seconds, "date": date.today().isoformat()}
    report.update(
        data=data.model_dump(mode="json", exclude_defaults=True),
        metric="Spearman x100 of the cosine of pooled, L2-normalised fp32 embeddings against the gold scores",
        machine=machine(),
    )
    write_report(output, report)


if __name__ == "__main__":
    main()
