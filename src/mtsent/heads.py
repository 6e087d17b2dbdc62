"""Task heads: small classifiers on top of the shared encoder.

Which encoder features a head reads (the pooled sentence embedding or every token embedding) is its task
type's choice (`mtsent.tasks`); the head itself is dropout + linear, optionally with one hidden layer
(linear + GELU + dropout) in between.
"""

from __future__ import annotations

from torch import Tensor, nn

from mtsent.config import HeadOptions

__all__ = ["ClassificationHead"]


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

    @classmethod
    def from_options(cls, in_dim: int, num_labels: int, options: HeadOptions) -> ClassificationHead:
        """The head a config's `hidden_dim` and `dropout` describe."""
        return cls(in_dim, num_labels, options.hidden_dim, options.dropout)

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)

