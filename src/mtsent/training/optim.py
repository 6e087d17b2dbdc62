"""Optimizer and schedule: AdamW with decoupled weight decay, separate encoder/head learning rates,
optional layer-wise learning-rate decay, linear or cosine decay after warm-up, or a constant rate."""

from __future__ import annotations

import torch
from torch import nn

from mtsent.model import MultiTaskModel
from mtsent.training.config import OptimConfig
from mtsent.training.freezing import backbone_layer_groups

__all__ = ["build_optimizer", "build_scheduler", "parameter_groups"]


def parameter_groups(model: MultiTaskModel, config: OptimConfig, extra: list[nn.Parameter] = ()) -> list[dict]:
    """One group per (learning rate, decay or not). 1-D tensors (biases, norms) get no weight decay.

    Backbone layers get `learning_rate * layerwise_lr_decay ** depth`, depth counted from the top layer
    (embeddings deepest); heads, pooling, projection and `extra` (loss weights) get `head_learning_rate`.
    """
    backbone_ids = {id(p) for p in model.encoder.backbone.parameters()}
    buckets: dict[tuple[float, bool], list[nn.Parameter]] = {}

    def add(p: nn.Parameter, lr: float) -> None:
        buckets.setdefault((lr, p.ndim >= 2), []).append(p)

    for depth, group in enumerate(backbone_layer_groups(model)):
        for p in group:
            add(p, config.learning_rate * config.layerwise_lr_decay**depth)
    for p in model.parameters():
        if id(p) not in backbone_ids:
            add(p, config.head_learning_rate)
    for p in extra:
        add(p, config.head_learning_rate)
    return [
        {"params": params, "lr": lr, "weight_decay": config.weight_decay if decay else 0.0}
        for (lr, decay), params in buckets.items()
    ]


def build_optimizer(model: MultiTaskModel, config: OptimConfig, extra: list[nn.Parameter] = ()) -> torch.optim.AdamW:
    """AdamW, fused where the device supports it: on a 2-core CPU that makes the update 5x cheaper than the
    per-tensor loop (MiniLM: 0.17 s to 0.03 s a step), which is half of a training step's time."""
    groups = parameter_groups(model, config, extra)
    fused = model.device.type in ("cpu", "cuda")
    return torch.optim.AdamW(groups, betas=config.betas, eps=config.eps, fused=fused or None)


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int):
    """Warm-up then decay; `warmup_steps` wins over `warmup_ratio`."""
    from transformers import get_scheduler

    warmup = config.warmup_steps if config.warmup_steps is not None else round(config.warmup_ratio * total_steps)
    name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[config.scheduler]
    return get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)
