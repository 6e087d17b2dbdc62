"""Keeping sentence embeddings: the similarity task in a run, the embedding-quality evaluator and distillation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import STS_COLUMNS

from mtsent.training import load_config
from mtsent.training.embedding_quality import EmbeddingQuality

QUALITY = {"format": "tsv", "path": "sts.dev.tsv", **STS_COLUMNS}


def test_a_run_with_a_similarity_task_trains_and_scores_it(make_config, train):
    _, summary, out = train(make_config(tasks=("sentiment", "sts")))
    sts = summary["best_metrics"]["sts"]
    assert set(sts) >= {"spearman", "pearson", "main", "n"} and sts["main"] == sts["spearman"] and sts["n"] == 16
    assert summary["data"]["sts"]["sizes"] == {"train": 40, "dev": 16, "test": 0}
    assert summary["data"]["sts"]["labels"] == []
    assert "sts" in out


def test_the_evaluator_reaches_metrics_csv_summary_plots_and_the_best_checkpoint(make_config, train, tmp_path):
    run = tmp_path / "run"
    config = make_config(run_dir=run, tasks=("sentiment",), evaluation={"embedding_quality": QUALITY})
    config["output"]["plots"] = True
    trainer, summary, out = train(config)
    with open(run / "metrics.csv", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["task"] == "embedding" and r["metric"] == "sts_spearman"]
    assert [int(r["step"]) for r in rows] == [3, 6]  # every evaluation, the last one at the end of the run
    data = load_config(None, **config).evaluation.embedding_quality
    expected = EmbeddingQuality.from_config(data, Path(config["data_dir"]))
    final = expected.evaluate(trainer.model.encoder)
    assert float(rows[-1]["value"]) == pytest.approx(final["sts_spearman"], abs=1e-6)
    quality = summary["embedding_quality"]
    assert quality["last"]["step"] == 6 and quality["last"]["pairs"] == 16
    assert quality["last"]["sts_spearman"] == pytest.approx(final["sts_spearman"], abs=1e-6)
    assert quality["best_checkpoint"]["step"] == summary["best"]["step"]
    best = json.loads((run / "best" / "metrics.json").read_text(encoding="utf-8"))
    assert best["embedding"] == quality["best_checkpoint"]
    assert json.loads((run / "summary.json").read_text(encoding="utf-8"))["embedding_quality"] == quality
    assert (run / "plot_embedding_quality.png").is_file() and (run / "plot_dev_metrics.png").is_file()
    assert "embedding quality at step 6: sts_spearman" in out


def test_embedding_quality_must_be_a_pair_file(make_config):
    bad = {"format": "tsv", "path": "sentiment.dev.tsv", "header": True, "text_column": "text", "label_column": "label"}
    with pytest.raises(ValueError, match="embedding_quality reads one file of text pairs"):
        load_config(None, **make_config(evaluation={"embedding_quality": bad}))


def _distance_to_start(make_config, train, tiny_backbone, tmp_path, weight: float) -> float:
    """Mean (1 - cosine) between the trained and the starting encoder's embeddings of the training texts."""
    from mtsent import SentenceEncoder

    config = make_config(
        run_dir=tmp_path / f"run_{weight}",
        tasks=("sentiment", "sts"),
        training={"max_steps": 12},
        optim={"learning_rate": 3e-3, "head_learning_rate": 1e-2, "warmup_steps": 0},
        distillation={"embedding_weight": weight},
    )
    trainer, _, _ = train(config)
    texts = [e.text for e in trainer.tasks["sentiment"].splits.train]
    texts += [t for e in trainer.tasks["sts"].splits.train for t in (e.text, e.text_pair)]
    start = SentenceEncoder(str(tiny_backbone), device="cpu").encode(texts, precision="fp32", normalize=True)
    trained = trainer.model.encoder.encode(texts, precision="fp32", normalize=True)
    return float(np.mean(1 - np.sum(start * trained, axis=1)))


def test_distillation_keeps_embeddings_closer_to_the_starting_encoder(make_config, train, tiny_backbone, tmp_path):
    free = _distance_to_start(make_config, train, tiny_backbone, tmp_path, 0.0)
    distilled = _distance_to_start(make_config, train, tiny_backbone, tmp_path, 10.0)
    assert distilled < 0.5 * free, (distilled, free)


def test_distillation_logs_its_loss_and_caches_each_text_of_a_pair(make_config, train, tmp_path):
    run = tmp_path / "run"
    config = make_config(run_dir=run, tasks=("sentiment", "sts"), distillation={"embedding_weight": 1.0})
    trainer, _, out = train(config)
    cache = trainer.distillation.cache
    assert cache["sentiment"].shape == (1, 48, 32) and cache["sts"].shape == (2, 40, 32)
    # before training, the student is the teacher: the cached rows are the starting encoder's embeddings
    assert torch.allclose(cache["sts"].norm(dim=-1), torch.ones(2, 40), atol=1e-4)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in records if r["task"] == "distillation"] == [2, 4, 6]
    assert "teacher embeddings of 88 training examples (sentiment, sts) cached" in out


def test_distillation_limited_to_some_tasks_leaves_the_others_batches_alone(make_config, train, tmp_path):
    run = tmp_path / "run"
    distillation = {"embedding_weight": 1.0, "embedding_tasks": ["sts"]}
    config = make_config(run_dir=run, tasks=("sentiment", "sts"), distillation=distillation)
    trainer, _, out = train(config)
    assert set(trainer.distillation.cache) == {"sts"}
    assert "teacher embeddings of 40 training examples (sts) cached" in out
    for name in ("sentiment", "sts"):
        features = trainer.tasks[name].train_features[:4]
        batch = trainer.collators[name](features)
        if name in trainer.distillation.cache:
            batch["teacher_embeddings"] = trainer.distillation.targets(name, range(4))
        loss, weighted, distilled, _ = trainer.objective(batch, name)
        assert (distilled is None) == (name == "sentiment")
        if distilled is None:
            assert torch.equal(weighted, loss)  # static weight 1, nothing added
        else:
            assert float(weighted.detach()) == pytest.approx(float((loss + distilled).detach()), rel=1e-5)


@pytest.mark.parametrize(
    ("tasks", "message"),
    [(["topic"], "embedding_tasks names unknown task 'topic'"), ([], "embedding_tasks is empty")],
)
def test_distillation_embedding_tasks_must_name_tasks_of_the_run(make_config, tasks, message):
    distillation = {"embedding_weight": 1.0, "embedding_tasks": tasks}
    with pytest.raises(ValueError, match=message):
        load_config(None, **make_config(tasks=("sentiment", "sts"), distillation=distillation))


def test_resumed_distillation_rebuilds_the_starting_teacher(make_config, train, tmp_path):
    run = tmp_path / "run"
    config = make_config(run_dir=run, tasks=("sentiment",), distillation={"embedding_weight": 1.0})
    first, _, _ = train({**config, "training": {**config["training"], "max_steps": 3}})
    resumed, _, _ = train(config, resume=True)
    torch.testing.assert_close(resumed.distillation.cache["sentiment"], first.distillation.cache["sentiment"])
