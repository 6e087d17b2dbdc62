"""Class weights for imbalanced classification losses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from mtsent.batching import IGNORE_INDEX

WeightMode = Literal["inverse", "sqrt_inverse", "none"]


def class_weights(
    labels: Sequence[int],
    num_classes: int,
    mode: WeightMode = "inverse",
    given: Sequence[float] | None = None,
) -> torch.Tensor:
    """Per-class loss weights, scaled to mean 1 over the classes present in ``labels``.

    Scaling to mean 1 keeps the loss magnitude (and so the learning rate) comparable with unweighted
    training. ``-100`` labels are ignored. Classes absent from ``labels`` get weight 1 (they never
    occur as targets in training, so their weight only matters if the data changes). ``given`` wins
    over ``mode``; all its weights are divided by their mean over the present classes.
    """
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for y in labels:
        if y == IGNORE_INDEX:
            continue
        if not 0 <= y < num_classes:
            raise ValueError(f"label id {y} outside 0..{num_classes - 1}")
        counts[y] += 1
    present = counts > 0
    if not present.any():
        present = torch.ones(num_classes, dtype=torch.bool)
    if given is not None:
        if len(given) != num_classes:
            raise ValueError(f"given has {len(given)} weights, expected num_classes={num_classes}")
        w = torch.tensor([float(x) for x in given], dtype=torch.float64)
        if (w < 0).any():
            raise ValueError("class weights must be non-negative")
    elif mode == "none":
        w = torch.ones(num_classes, dtype=torch.float64)
    elif mode in ("inverse", "sqrt_inverse"):
        from sklearn.utils.class_weight import compute_class_weight

        w = torch.ones(num_classes, dtype=torch.float64)
        if counts.any():  # "balanced" is n / (k * count_c): inverse frequency, rescaled to mean 1 below
            classes = present.nonzero().flatten().numpy()
            ids = [y for y in labels if y != IGNORE_INDEX]
            w[present] = torch.from_numpy(compute_class_weight("balanced", classes=classes, y=ids))
        if mode == "sqrt_inverse":
            w = w.sqrt()
    else:
        raise ValueError(f"unknown class weight mode {mode!r}; expected 'inverse', 'sqrt_inverse' or 'none'")
    mean = w[present].mean()
    if given is not None:
        return (w / mean if mean > 0 else w).to(torch.float32)
    w[present] = w[present] / mean
    return w.to(torch.float32)
