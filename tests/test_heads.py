"""Task heads: the right input size per level, optional hidden layer, dropout only in training."""

from __future__ import annotations

import torch

from mtsent.config import HeadConfig
from mtsent.heads import ClassificationHead, build_head


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


def test_build_head_reads_the_right_feature_size():
    sentence = HeadConfig(name="s", type="sentence_classification", labels=["a", "b"])
    token = HeadConfig(name="t", type="token_classification", labels=["O", "B-X", "I-X"], hidden_dim=5)
    s_head = build_head(sentence, sentence_dim=64, token_dim=384)
    t_head = build_head(token, sentence_dim=64, token_dim=384)
    assert s_head(torch.randn(2, 64)).shape == (2, 2)
    assert t_head(torch.randn(2, 9, 384)).shape == (2, 9, 3)
    assert t_head.net[1].in_features == 384 and t_head.net[1].out_features == 5
