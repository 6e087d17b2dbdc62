"""How benchmarks compare embeddings: row-wise cosine between two runs, and STS Spearman against gold scores."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def row_cosine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows of two embedding matrices."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = y / np.linalg.norm(y, axis=1, keepdims=True)
    return (x * y).sum(axis=1)


def sts_spearman(first: np.ndarray, second: np.ndarray, gold: np.ndarray) -> float:
    """STS-B Spearman (x100) of the pairs' cosine similarity against the gold scores."""
    return float(spearmanr(row_cosine(first, second), gold).statistic * 100)
