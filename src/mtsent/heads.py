"""Task heads: small classifiers on top of the shared encoder.

Which encoder features a head reads (the pooled sentence embedding or every token embedding) is its task
type's choice (`mtsent.tasks`); the head itself is dropout + linear, optionally with one hidden layer
(linear + GELU + dropout) in between. A token head can also own copies of the backbone's top layers
(`TopLayersHead`): it then reads a lower layer's states through layers that no other task trains.
"""

from __future__ import annotations

from torch import Tensor, nn

from mtsent.config import HeadOptions

__all__ = ["ClassificationHead", "TopLayersHead"]


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


class TopLayersHead(nn.Module):
    """Copies of the backbone's top transformer layers, then a classifier: (batch, seq, hidden) states of the
    layer below the copied ones in, (batch, seq, labels) logits out.

    The copies start as the backbone's own layers, so before training the head sees exactly the states the
    shared top layers produce; training then moves them for this head alone. `backbone_config` tells the
    attention mask builder which attention implementation the layers use.
    """

    def __init__(self, layers: list[nn.Module], classifier: ClassificationHead, backbone_config) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.classifier = classifier
        self.backbone_config = backbone_config

    def forward(self, hidden: Tensor, attention_mask: Tensor) -> Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        config = self.backbone_config
        mask = create_bidirectional_mask(config=config, inputs_embeds=hidden, attention_mask=attention_mask)
        for layer in self.layers:
            out = layer(hidden, mask)
            hidden = out[0] if isinstance(out, tuple) else out
        return self.classifier(hidden)
