"""Score a model on the dev splits of a training config, exactly as the trainer scores it (same readers, split
seeds, max_length and decoding): the shared part of the benchmarks that check a model's recorded metrics."""

from __future__ import annotations

from pathlib import Path

from mtsent.data import load_task_data
from mtsent.model import MultiTaskModel
from mtsent.training import TrainConfig
from mtsent.training.embedding_quality import EmbeddingQuality
from mtsent.training.evaluation import evaluate_task, tokenize_task


def task_scores(
    model: MultiTaskModel, config: TrainConfig, data_dir: Path | None, precisions: tuple[str, ...]
) -> dict[str, dict[str, float]]:
    """Each task's main dev metric (a fraction) per precision."""
    rows: dict[str, dict[str, float]] = {}
    for name, task in config.tasks.items():
        splits = load_task_data(name, task.type, task.data, data_dir)
        features, _ = tokenize_task(model, name, splits.dev, config.training.max_length)
        rows[name] = {p: evaluate_task(model, name, splits.dev, features, precision=p)["main"] for p in precisions}
    return rows


def embedding_score(model: MultiTaskModel, config: TrainConfig, data_dir: Path | None) -> float:
    """STS-B dev Spearman x100 of the encoder's fp32 normalised embeddings (the trainer's evaluator)."""
    quality = EmbeddingQuality.from_config(config.evaluation.embedding_quality, data_dir)
    return quality.evaluate(model.encoder)["sts_spearman"]
