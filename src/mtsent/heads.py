"""Task heads: small classifiers on top of the shared encoder.

A sentence head reads the pooled sentence embedding, a token head reads every token embedding; both are
dropout + linear, optionally with one hidden layer (linear + GELU + dropout) in between.
"""

from __future__ import annotations

from torch import Tensor, nn

from mtsent.config import HeadConfig

__all__ = ["ClassificationHead", "build_head"]


class ClassificationHead(nn.Module):
    """Maps (..., in_dim) features to (..., num_labels) logits."""

    def __init__(self, in_dim: int, num_labels: int, hidden_dim: int | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden_dim:
            layers += [nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
            in_dim = hidden_dim
        layers.append(nn.Linear(in_dim, num_labels))
        self.net = nn.Sequential(*layers)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


def build_head(config: HeadConfig, sentence_dim: int, token_dim: int) -> ClassificationHead:
    """Build the head a HeadConfig declares, reading the right feature size for its level."""
    in_dim = token_dim if config.type == "token_classification" else sentence_dim
    return ClassificationHead(in_dim, len(config.labels), config.hidden_dim, config.dropout)
