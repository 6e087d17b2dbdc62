"""Reproduce the shipped model's dev metrics from the files in the package, beside the training run's record.

    python benchmarks/default_model.py          # writes docs/results/default_model_check.json

The model is `MultiTaskModel.from_pretrained("default")` (src/mtsent/resources/model: its quantised difference
added to the packaged backbone at load). Each task of configs/default_model.yaml is scored on its dev split exactly
as the trainer scored it (same reader, split seed, max_length and decoding), in the training precision (bf16, as
the record was taken) and in fp32; the embedding quality is the trainer's STS-B dev evaluator. The record is
docs/results/default_model/summary.json, the best checkpoint's metrics, which is what ships, compressed (and
decoded as the config says, which the record may not have been).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

from dev_metrics import embedding_score, task_scores
from records import RESULTS, machine, write_report

from mtsent.model import MultiTaskModel
from mtsent.training import load_config

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "configs" / "default_model.yaml"))
    parser.add_argument("--record", default=str(RESULTS / "default_model" / "summary.json"))
    parser.add_argument("--data-dir", default=None, help="default: $MTSENT_DATA, then ../shared/data")
    parser.add_argument("--output", default=str(RESULTS / "default_model_check.json"))
    args = parser.parse_args()
    config = load_config(args.config)
    record = json.loads(Path(args.record).read_text(encoding="utf-8"))
    data_dir = Path(args.data_dir) if args.data_dir else None
    model = MultiTaskModel.from_pretrained("default", device="cpu")
    started = time.perf_counter()
    rows: dict[str, dict] = {}
    for name, scores in task_scores(model, config, data_dir, (config.training.precision, "fp32")).items():
        rows[name] = {"recorded": record["best"]["main"][name], **scores}
        print(f"{name:10s} " + "  ".join(f"{k} {100 * v:.2f}" for k, v in rows[name].items()), flush=True)
    quality = embedding_score(model, config, data_dir)
    recorded_quality = record["embedding_quality"]["best_checkpoint"]["sts_spearman"]
    rows["embedding"] = {"recorded": recorded_quality, "fp32": quality}
    print(f"embedding  recorded {recorded_quality:.2f}  fp32 {quality:.2f} (STS-B dev Spearman x100)")
    write_report(
        Path(args.output),
        {
            "model": "default (src/mtsent/resources/model)",
            "results": rows,
            "metric": "each task's main dev metric (fraction; NER entity F1, others accuracy); embedding: STS-B dev "
            "Spearman x100 of fp32 normalised embeddings",
            "seconds": round(time.perf_counter() - started, 1),
            "date": date.today().isoformat(),
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
