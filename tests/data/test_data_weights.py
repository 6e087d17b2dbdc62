from __future__ import annotations

import pytest
import torch

from mtsent.data import class_weights


def test_inverse_weights_mean_one_over_present() -> None:
    w = class_weights([0, 0, 0, 1, -100], num_classes=3, mode="inverse")
    assert w[0] * 3 == pytest.approx(w[1].item())
    assert w[:2].mean().item() == pytest.approx(1.0)
    assert w[2].item() == 1.0  # absent class
    assert w.dtype == torch.float32


def test_sqrt_inverse_and_none() -> None:
    w = class_weights([0] * 9 + [1], 2, "sqrt_inverse")
    assert (w[1] / w[0]).item() == pytest.approx(3.0)
    assert class_weights([0, 1, 1], 2, "none").tolist() == [1.0, 1.0]


def test_given_weights_are_normalised() -> None:
    assert class_weights([0, 1], 2, "inverse", given=[1.0, 3.0]).tolist() == [0.5, 1.5]
    with pytest.raises(ValueError, match="num_classes"):
        class_weights([0], 2, given=[1.0])


def test_bad_labels_and_mode() -> None:
    with pytest.raises(ValueError, match="outside"):
        class_weights([5], 2)
    with pytest.raises(ValueError, match="mode"):
        class_weights([0], 2, mode="log")  # type: ignore[arg-type]
