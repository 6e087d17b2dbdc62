"""Pooling ignores padding: an embedding never depends on what a sentence was batched with."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtsent.pooling import POOLING_MODES, Pooling

HIDDEN = 8


def _random_attention_pooling(seed: int) -> Pooling:
    pool = Pooling(HIDDEN, "attention")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        pool.scorer.weight.copy_(torch.randn(1, HIDDEN, generator=g))
        pool.scorer.bias.copy_(torch.randn(1, generator=g))
    return pool


@st.composite
def padded_batches(draw):
    """Token embeddings and masks of a batch, plus the same batch with extra garbage padding appended."""
    seed = draw(st.integers(0, 2**31 - 1))
    lengths = draw(st.lists(st.integers(1, 7), min_size=1, max_size=4))
    extra = draw(st.integers(1, 5))
    garbage_scale = draw(st.sampled_from([1.0, 1e6, float("inf"), float("nan")]))  # huge, inf and nan too
    g = torch.Generator().manual_seed(seed)
    width = max(lengths)
    x = torch.randn(len(lengths), width, HIDDEN, generator=g)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
        x[i, n:] = torch.randn(width - n, HIDDEN, generator=g) * garbage_scale  # garbage in the padding
    pad = torch.randn(len(lengths), extra, HIDDEN, generator=g) * garbage_scale
    x_padded = torch.cat([x, pad], dim=1)
    mask_padded = torch.cat([mask, torch.zeros(len(lengths), extra, dtype=torch.long)], dim=1)
    return x, mask, x_padded, mask_padded, seed


@pytest.mark.parametrize("mode", POOLING_MODES)
@given(batch=padded_batches())
@settings(max_examples=40, deadline=None)
def test_padding_does_not_change_embeddings(mode, batch):
    x, mask, x_padded, mask_padded, seed = batch
    pool = _random_attention_pooling(seed) if mode == "attention" else Pooling(HIDDEN, mode)
    with torch.no_grad():
        a = pool(x, mask)
        b = pool(x_padded, mask_padded)
        # each row alone, cut to its own length, is the same again
        alone = torch.stack(
            [pool(x[i : i + 1, : int(mask[i].sum())], mask[i : i + 1, : int(mask[i].sum())])[0] for i in range(len(x))]
        )
    assert a.shape == (len(x), HIDDEN)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a, alone, atol=1e-5, rtol=1e-5)
    assert torch.isfinite(a).all()


def test_reference_values():
    x = torch.tensor([[[1.0, -2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(Pooling(2, "mean")(x, mask), torch.tensor([[2.0, 1.0]]))
    torch.testing.assert_close(Pooling(2, "max")(x, mask), torch.tensor([[3.0, 4.0]]))
    torch.testing.assert_close(Pooling(2, "cls")(x, mask), torch.tensor([[1.0, -2.0]]))


def test_max_pooling_of_all_negative_tokens_ignores_zero_padding():
    x = torch.tensor([[[-5.0, -1.0], [-3.0, -2.0], [0.0, 0.0]]])
    out = Pooling(2, "max")(x, torch.tensor([[1, 1, 0]]))
    torch.testing.assert_close(out, torch.tensor([[-3.0, -1.0]]))


def test_cls_takes_position_zero():
    x = torch.randn(3, 5, HIDDEN)
    mask = torch.ones(3, 5, dtype=torch.long)
    mask[1, 2:] = 0
    torch.testing.assert_close(Pooling(HIDDEN, "cls")(x, mask), x[:, 0])


def test_attention_pooling_starts_as_mean_pooling():
    x = torch.randn(4, 6, HIDDEN)
    mask = torch.ones(4, 6, dtype=torch.long)
    mask[0, 3:] = 0
    mask[2, 1:] = 0
    attention = Pooling(HIDDEN, "attention")
    assert torch.count_nonzero(attention.scorer.weight) == 0
    with torch.no_grad():
        torch.testing.assert_close(attention(x, mask), Pooling(HIDDEN, "mean")(x, mask), atol=1e-6, rtol=1e-6)


def test_attention_pooling_is_learnable():
    pool = Pooling(HIDDEN, "attention")
    x = torch.randn(2, 4, HIDDEN)
    out = pool(x, torch.ones(2, 4, dtype=torch.long))
    out.pow(2).sum().backward()
    assert pool.scorer.weight.grad is not None
    assert [n for n, _ in pool.named_parameters()] == ["scorer.weight", "scorer.bias"]
    assert list(Pooling(HIDDEN, "mean").parameters()) == []


def test_half_precision_input_pools_in_float32():
    x = torch.randn(2, 3, HIDDEN).to(torch.bfloat16)
    out = Pooling(HIDDEN, "mean")(x, torch.ones(2, 3, dtype=torch.long))
    assert out.dtype == torch.float32


def test_unknown_mode_names_the_choices():
    with pytest.raises(ValueError, match="unknown pooling mode 'sum'") as info:
        Pooling(HIDDEN, "sum")
    for mode in POOLING_MODES:
        assert mode in str(info.value)


# ---------------------------------------------------------------- end to end with the real backbone
SHORT = "A cat sat."
LONG = "This much longer sentence, full of words and clauses, forces plenty of padding onto the short one."


@pytest.mark.parametrize("mode", ["mean", "max", "cls"])
def test_encode_alone_equals_encode_in_padded_batch(encoder, mode):
    from mtsent import EncoderConfig, SentenceEncoder

    enc = SentenceEncoder.from_parts(EncoderConfig(pooling=mode), encoder.backbone, encoder.tokenizer, device="cpu")
    alone = enc.encode([SHORT], precision="fp32")
    together = enc.encode([SHORT, LONG], batch_size=2, precision="fp32")
    np.testing.assert_allclose(alone[0], together[0], atol=1e-5)
    assert not np.allclose(together[0], together[1], atol=1e-3)
