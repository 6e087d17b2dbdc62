"""Embedding quality: how well the encoder's sentence embeddings order sentence pairs by similarity.

Multi-task training moves the shared encoder, and with it what `encode()` returns; this measures it. The number is
the Spearman correlation (x100) between gold scores and the cosine of the pooled, L2-normalised fp32 embeddings,
over every pair of a file (STS-B dev: 1,500 pairs). fp32 makes it reproducible (to ~1e-7 across batchings), so
a packaged or trained encoder gets the same number whatever the training precision. The trainer runs it at each
evaluation (`evaluation.embedding_quality`), and `benchmarks/embedding_quality.py` runs it on any model directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtsent.data import DataConfig, DataError, PairExample
from mtsent.data.tasks import read_examples
from mtsent.encoder import SentenceEncoder
from mtsent.metrics import similarity_metrics

__all__ = ["METRIC", "SECTION", "EmbeddingQuality"]

SECTION = "embedding"
"""The `task` column of the evaluator's rows in metrics.csv (and its key in summaries)."""
METRIC = "sts_spearman"
"""The evaluator's headline metric: `embedding/sts_spearman` in metrics.csv."""


@dataclass
class EmbeddingQuality:
    """The pairs of one similarity file, read once; `evaluate(encoder)` scores an encoder's embeddings on them."""

    examples: list[PairExample]
    source: str

    @classmethod
    def from_config(cls, config: DataConfig, data_dir: Path | None = None) -> EmbeddingQuality:
        """Read the file of a pair `DataConfig` (`path`, else `train`; relative to the data dir) in full."""
        source = config.path or config.train
        if config.text_pair_column is None or source is None:
            raise DataError("embedding quality needs a data config with text_pair_column and a path")
        examples = read_examples(config, source, data_dir)
        if len(examples) < 2 or not all(isinstance(e, PairExample) for e in examples):
            raise DataError(f"{source}: embedding quality needs at least 2 text pairs, found {len(examples)}")
        return cls(examples, source)  # type: ignore[arg-type]

    def evaluate(self, encoder: SentenceEncoder, batch_size: int = 128) -> dict[str, float | int]:
        """`sts_spearman` and `sts_pearson` (x100) of the cosines, and `pairs`: the number of pairs scored."""
        texts = list(dict.fromkeys(t for e in self.examples for t in (e.text, e.text_pair)))  # each text once
        row = {text: i for i, text in enumerate(texts)}
        embeddings = encoder.encode(texts, batch_size=batch_size, normalize=True, precision="fp32")
        first = embeddings[[row[e.text] for e in self.examples]]
        second = embeddings[[row[e.text_pair] for e in self.examples]]
        metrics = similarity_metrics([e.score for e in self.examples], np.sum(first * second, axis=1).tolist())
        return {
            METRIC: 100 * metrics["spearman"],
            "sts_pearson": 100 * metrics["pearson"],
            "pairs": metrics["n"],
        }
