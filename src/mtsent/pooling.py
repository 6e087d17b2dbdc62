"""Pooling: turn a sequence of token embeddings into one sentence embedding.

Every strategy ignores padding, so the embedding of a sentence does not depend on what it was batched with.
"""

from __future__ import annotations

import torch
from torch import nn

from mtsent.config import POOLING_MODES, PoolingMode

__all__ = ["POOLING_MODES", "Pooling", "PoolingMode"]


class Pooling(nn.Module):
    """Mean, CLS, max or learnable attention pooling over non-padding tokens.

    `attention` learns a scoring vector: each token gets a score, padding gets minus infinity, and the sentence
    embedding is the softmax-weighted sum of the tokens. It starts as mean pooling (zero-initialised scorer),
    so adding it to a pre-trained encoder does not throw away what the encoder already knows.
    """

    def __init__(self, hidden_size: int, mode: PoolingMode = "mean") -> None:
        super().__init__()
        if mode not in POOLING_MODES:
            raise ValueError(f"unknown pooling mode {mode!r}; choose one of {', '.join(POOLING_MODES)}")
        self.mode = mode
        self.hidden_size = hidden_size
        if mode == "attention":
            self.scorer = nn.Linear(hidden_size, 1)
            nn.init.zeros_(self.scorer.weight)
            nn.init.zeros_(self.scorer.bias)

    def forward(self, token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(batch, seq, hidden) and (batch, seq) -> (batch, hidden), computed in float32 for stability."""
        x = token_embeddings.float()
        mask = attention_mask.to(x.dtype).unsqueeze(-1)
        if self.mode == "cls":
            return x[:, 0]
        if self.mode == "mean":
            return x.masked_fill(mask == 0, 0.0).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if self.mode == "max":
            return x.masked_fill(mask == 0, torch.finfo(x.dtype).min).max(dim=1).values
        scores = self.scorer(x).squeeze(-1).float()
        scores = scores.masked_fill(attention_mask == 0, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)
        return (weights * x.masked_fill(mask == 0, 0.0)).sum(dim=1)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, hidden_size={self.hidden_size}"
