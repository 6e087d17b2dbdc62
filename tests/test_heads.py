"""Classification heads: shapes, optional hidden layer, dropout only in training."""

from __future__ import annotations

import torch

from mtsent.heads import ClassificationHead


def test_linear_head_shapes():
    head = ClassificationHead(16, 3, dropout=0.0)
    assert head(torch.randn(4, 16)).shape == (4, 3)
    assert head(torch.randn(2, 7, 16)).shape == (2, 7, 3)  # token level: any leading dims
    assert sum(p.numel() for p in head.parameters()) == 16 * 3 + 3


def test_hidden_layer():
    head = ClassificationHead(16, 3, hidden_dim=8, dropout=0.0)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 8), (8, 3)]
    assert any(isinstance(m, torch.nn.GELU) for m in head.modules())


def test_dropout_only_in_training():
    torch.manual_seed(0)
    head = ClassificationHead(32, 2, dropout=0.5)
    x = torch.randn(8, 32)
    head.eval()
    torch.testing.assert_close(head(x), head(x))
    head.train()
    assert not torch.allclose(head(x), head(x))
