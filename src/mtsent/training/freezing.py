"""Freezing strategies: which parameters train at a given step.

Frozen parameters get `requires_grad=False`, so they receive no gradient and AdamW skips them entirely (no
weight decay either): they stay bit-identical, which tests check for every strategy.
"""

from __future__ import annotations

from torch import nn

from mtsent.adapters import is_adapter_parameter
from mtsent.encoder import LAYER_STACK_NAMES
from mtsent.model import MultiTaskModel
from mtsent.training.config import FreezingConfig

__all__ = ["backbone_layer_groups", "count_parameters", "set_trainable"]


def backbone_layer_groups(model: MultiTaskModel) -> list[list[nn.Parameter]]:
    """Backbone parameters by depth from the top: [top layer (+ anything above it), ..., layer 0, embeddings].

    The order of progressive unfreezing, and the depth used by layer-wise learning-rate decay.
    """
    backbone = model.encoder.backbone
    n_layers = int(backbone.config.num_hidden_layers)
    groups: list[list[nn.Parameter]] = [[] for _ in range(n_layers + 1)]
    for name, p in backbone.named_parameters():
        index = _layer_index(name)
        if "embeddings" in name:
            groups[n_layers].append(p)
        elif index is None:
            groups[0].append(p)
        else:
            groups[n_layers - 1 - index].append(p)
    return groups


def _layer_index(name: str) -> int | None:
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part in LAYER_STACK_NAMES and parts[i + 1].isdigit():
            return int(parts[i + 1])
    return None


def set_trainable(model: MultiTaskModel, config: FreezingConfig, step: int) -> None:
    """Set requires_grad on every parameter for `step` (idempotent; cheap enough to call every step).

    Strategy `backbone` freezes the whole encoder: the transformer backbone *and* the pooling and projection
    layers above it, so only the heads train. That is what keeps the sentence embedding, and so every other
    head's output, bit-identical when a head is added to a trained model. `progressive` and `freeze_embeddings`
    act on the transformer backbone only; pooling and projection train with the heads there. With an adapter
    (`model.adapter`), only its parameters train in the backbone.
    """
    for p in model.parameters():
        p.requires_grad_(config.strategy != "all")
    if config.strategy == "backbone":
        for p in model.encoder.parameters():  # backbone, pooling and projection
            p.requires_grad_(False)
    elif config.strategy == "progressive":
        groups = backbone_layer_groups(model)
        unfrozen = 1 + step // config.unfreeze_every
        for i, group in enumerate(groups):
            for p in group:
                p.requires_grad_(i < unfrozen)
    if config.freeze_embeddings:
        for name, p in model.encoder.backbone.named_parameters():
            if "embeddings" in name:
                p.requires_grad_(False)
    for head in config.frozen_heads:
        for p in model.heads[head].parameters():
            p.requires_grad_(False)
    adapter = model.encoder.config.adapter
    if adapter is not None:  # under an adapter the pre-trained weights never train, whatever the strategy
        for name, p in model.encoder.backbone.named_parameters():
            if not is_adapter_parameter(name, adapter):
                p.requires_grad_(False)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
