"""The bf16 CPU copy's fused oneDNN linear layers: same results as the unfused bf16 layers, GELU and residual
adds fused only where they are what the fusion computes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mtsent.fused import (
    FusedLinear,
    _attention_widths,
    _blocked_attention,
    _FusedLayer,
    _FusedResidualOutput,
    _padded_attention,
    fuse_linear_layers,
    fusion_available,
)
from mtsent.precision import fast_bf16, inference_copy

pytestmark = pytest.mark.skipif(not fusion_available(), reason="this torch build has no oneDNN fused linear ops")


def _bert(hidden_act: str = "gelu", attention: str = "sdpa") -> nn.Module:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_act=hidden_act,
    )
    config._attn_implementation = attention
    return BertModel(config).to(torch.bfloat16).eval()


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(1, 100, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    return ids, mask


def test_fused_bert_matches_the_unfused_bf16_model() -> None:
    plain = _bert()
    fused = fuse_linear_layers(copy.deepcopy(plain))
    layer = fused.encoder.layer[0]
    assert isinstance(layer, _FusedLayer)
    assert isinstance(layer.intermediate.dense, FusedLinear) and layer.intermediate.dense.activation == "gelu"
    assert isinstance(layer.attention.output, _FusedResidualOutput) and isinstance(layer.output, _FusedResidualOutput)
    assert {n for n, _ in fused.named_parameters()} == {n for n, _ in plain.named_parameters()} - {
        n for n, m in plain.named_modules() if isinstance(m, nn.Linear) for n in (f"{n}.weight", f"{n}.bias")
    }  # the layer norms and embeddings keep their names; the products hold packed buffers
    assert not any(type(m) is nn.Linear for m in fused.modules())
    assert sum(isinstance(m, FusedLinear) for m in fused.modules()) == 2 * 6 + 1  # q, k, v, 3 dense; the pooler
    ids, mask = _inputs()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = plain(ids, attention_mask=mask).last_hidden_state.float()
        got = fused(ids, attention_mask=mask).last_hidden_state.float()
    keep = mask.bool()
    # one bf16 rounding where there were two: the last bits of some values move, nothing more
    torch.testing.assert_close(got[keep], want[keep], atol=0.05, rtol=0.02)
    cosine = nn.functional.cosine_similarity(got[keep], want[keep], dim=-1)
    assert float(cosine.min()) > 0.999


def _outputs(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        return model(ids, attention_mask=mask).last_hidden_state.float()


def test_fused_layers_match_without_padding_and_for_one_text() -> None:
    """No padding (transformers passes no mask at all) and a batch of one: the flat layers still compute what
    the original ones do."""
    plain = _bert()
    fused = fuse_linear_layers(copy.deepcopy(plain))
    ids, _ = _inputs()
    for batch in (ids, ids[:1, :4]):
        want, got = _outputs(plain, batch, None), _outputs(fused, batch, None)
        torch.testing.assert_close(got, want, atol=0.05, rtol=0.02)


@pytest.mark.parametrize("hooked_before", [False, True])
def test_fused_layers_are_recorded_among_the_hidden_states(hooked_before: bool) -> None:
    """transformers records `output_hidden_states` with hooks on instances of the model's layer class, installed
    at the first call: a model copied after that call carries them on the layers that fusion replaces."""
    plain = _bert()
    ids, mask = _inputs()

    def states(model: nn.Module) -> tuple[torch.Tensor, ...]:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return model(ids, attention_mask=mask, output_hidden_states=True).hidden_states

    if hooked_before:
        states(plain)
    fused = fuse_linear_layers(copy.deepcopy(plain))
    want, got = states(plain), states(fused)
    assert len(got) == len(want) == 3  # the embeddings and both layers
    keep = mask.bool()
    for w, g in zip(want, got, strict=True):
        torch.testing.assert_close(g.float()[keep], w.float()[keep], atol=0.05, rtol=0.02)


def test_hooks_on_a_layer_move_to_its_fused_form_and_never_see_the_trial_run() -> None:
    plain = _bert()
    calls: list[int] = []
    for layer in plain.encoder.layer:
        layer.register_forward_pre_hook(lambda module, args: calls.append(1))
    fused = fuse_linear_layers(copy.deepcopy(plain))
    assert calls == []  # the trial runs that decide the fusion are not calls of the model
    ids, mask = _inputs()
    _outputs(fused, ids, mask)
    assert len(calls) == 2 and all(isinstance(layer, _FusedLayer) for layer in fused.encoder.layer)


def test_a_layer_that_computes_something_else_keeps_its_own_forward() -> None:
    """Same modules and names as a BERT layer, another computation (a subclass that scales the attention
    output): the trial run tells them apart, so the layer is not flattened, only its products are fused."""
    from transformers.models.bert.modeling_bert import BertSelfAttention

    class Scaled(BertSelfAttention):
        def forward(self, *args, **kwargs):
            output, weights = super().forward(*args, **kwargs)
            return output * 2, weights

    plain = _bert()
    for layer in plain.encoder.layer:
        layer.attention.self.__class__ = Scaled
        with torch.no_grad():  # initial weights are small: make attention matter against the residual
            layer.attention.output.dense.weight.mul_(20)
    fused = fuse_linear_layers(copy.deepcopy(plain))
    assert not any(isinstance(m, _FusedLayer) for m in fused.modules())
    assert isinstance(fused.encoder.layer[0].attention.self.query, FusedLinear)
    ids, mask = _inputs()
    keep = mask.bool()
    torch.testing.assert_close(_outputs(fused, ids, mask)[keep], _outputs(plain, ids, mask)[keep], atol=0.05, rtol=0.02)


def test_layers_of_an_eager_attention_model_are_not_flattened() -> None:
    """Eager attention takes additive float masks, which the flat layer is not tried on: it keeps its forward."""
    plain = _bert(attention="eager")
    fused = fuse_linear_layers(copy.deepcopy(plain))
    assert not any(isinstance(m, _FusedLayer) for m in fused.modules())
    ids, mask = _inputs()
    keep = mask.bool()
    torch.testing.assert_close(_outputs(fused, ids, mask)[keep], _outputs(plain, ids, mask)[keep], atol=0.05, rtol=0.02)


@pytest.mark.parametrize(("batch", "length"), [(1, 1), (3, 5), (7, 8), (33, 3), (9, 15)])
@pytest.mark.parametrize("padded", [False, True])
def test_blocked_attention_is_each_texts_own_attention(batch: int, length: int, padded: bool) -> None:
    """Texts packed into shared 32-token blocks: every real token's context is what attention over its own text
    alone gives (float32, so exactly up to summation order)."""
    heads, size = 2, 4
    generator = torch.Generator().manual_seed(batch * 100 + length)
    query, key, value = (torch.randn(batch, length, heads * size, generator=generator) for _ in range(3))
    lengths = torch.randint(1, length + 1, (batch,), generator=generator) if padded else torch.full((batch,), length)
    keep = torch.arange(length)[None, :] < lengths[:, None]
    got = _blocked_attention(query, key, value, keep if padded else None, heads, size**-0.5)
    assert got.shape == (batch, length, heads * size)
    for i, n in enumerate(lengths.tolist()):
        q, k, v = (x[i, :n].view(n, heads, size).transpose(0, 1) for x in (query, key, value))
        want = nn.functional.scaled_dot_product_attention(q, k, v, scale=size**-0.5).transpose(0, 1).reshape(n, -1)
        torch.testing.assert_close(got[i, :n], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("length", "widths"),
    [
        (16, (16, 16)), (20, (20, 20)), (21, (21, 32)), (33, (33, 33)), (36, (36, 36)), (37, (37, 48)), (47, (47, 48)),
        (48, (48, 48)), (50, (64, 64)), (63, (64, 64)), (66, (66, 66)), (67, (67, 80)), (97, (97, 97)), (98, (98, 112)),
    ],
)
def test_attention_runs_on_whole_key_tiles_with_amx(monkeypatch, length: int, widths: tuple[int, int]) -> None:
    import mtsent.fused

    monkeypatch.setattr(mtsent.fused, "tiled_attention", lambda: True)
    assert _attention_widths(length) == widths
    monkeypatch.setattr(mtsent.fused, "tiled_attention", lambda: False)  # shapes measured on AMX only
    assert _attention_widths(length) == (length, length)


@pytest.mark.parametrize("length", [21, 37, 40, 50, 63, 67])
@pytest.mark.parametrize("padded", [False, True])
def test_padded_attention_is_each_texts_own_attention(monkeypatch, length: int, padded: bool) -> None:
    """Keys (and at some widths queries) padded to whole tiles: every real token's context is what attention
    over its own text gives (float32, so exactly up to summation order)."""
    import mtsent.fused

    monkeypatch.setattr(mtsent.fused, "tiled_attention", lambda: True)
    assert _attention_widths(length) != (length, length)
    batch, heads, size = 5, 2, 4
    generator = torch.Generator().manual_seed(length)
    query, key, value = (torch.randn(batch, length, heads * size, generator=generator) for _ in range(3))
    lengths = torch.randint(1, length + 1, (batch,), generator=generator) if padded else torch.full((batch,), length)
    keep = torch.arange(length)[None, :] < lengths[:, None]
    mask = keep[:, None, None] if padded else None
    got = _padded_attention(query, key, value, mask, heads, size**-0.5, _attention_widths(length))
    assert got.shape == (batch, length, heads * size)
    for i, n in enumerate(lengths.tolist()):
        q, k, v = (x[i, :n].view(n, heads, size).transpose(0, 1) for x in (query, key, value))
        want = nn.functional.scaled_dot_product_attention(q, k, v, scale=size**-0.5).transpose(0, 1).reshape(n, -1)
        torch.testing.assert_close(got[i, :n], want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("length", [21, 40, 55])
def test_fused_layers_match_on_padded_tiles(monkeypatch, length: int) -> None:
    import mtsent.fused

    monkeypatch.setattr(mtsent.fused, "tiled_attention", lambda: True)
    plain = _bert()
    fused = fuse_linear_layers(copy.deepcopy(plain))
    ids = torch.randint(1, 100, (4, length), generator=torch.Generator().manual_seed(length))
    mask = torch.ones_like(ids)
    mask[1, length // 2 :] = 0
    keep = mask.bool()
    for m in (mask, None):
        got, want = _outputs(fused, ids, m), _outputs(plain, ids, m)
        rows = keep if m is not None else torch.ones_like(keep)
        torch.testing.assert_close(got[rows], want[rows], atol=0.05, rtol=0.02)


def test_batch_invariant_passes_never_share_attention_blocks(monkeypatch) -> None:
    """Inside `invariant_rows` a text's attention must not run beside other texts' (its result could move with
    theirs): short batches take the per-text kernel there, and the shared blocks everywhere else."""
    import mtsent.fused
    from mtsent.batching import invariant_rows

    calls = []
    packed = mtsent.fused._blocked_attention
    monkeypatch.setattr(mtsent.fused, "_blocked_attention", lambda *a: calls.append(1) or packed(*a))
    monkeypatch.setattr(mtsent.fused, "tiled_attention", lambda: True)  # the AMX shapes, whatever this CPU has
    fused = fuse_linear_layers(_bert())
    calls.clear()  # the trial runs of fusion itself
    ids = torch.randint(1, 100, (5, 9))
    with invariant_rows():
        _outputs(fused, ids, None)
    assert calls == []
    _outputs(fused, ids, None)
    assert len(calls) == 2  # one per layer
    monkeypatch.setattr(mtsent.fused, "tiled_attention", lambda: False)  # a CPU without AMX: no shared blocks
    calls.clear()
    _outputs(fused, ids, None)
    assert calls == []


def test_only_plain_gelu_is_fused() -> None:
    fused = fuse_linear_layers(_bert("gelu_new"))  # transformers' tanh approximation, a module of its own
    intermediate = fused.encoder.layer[0].intermediate
    assert intermediate.dense.activation == "none" and not isinstance(intermediate.intermediate_act_fn, nn.Identity)
    relu = fuse_linear_layers(_bert("relu")).encoder.layer[0].intermediate
    assert relu.dense.activation == "none" and isinstance(relu.intermediate_act_fn, nn.ReLU)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_fused_linear_computes_gelu_and_residual_adds(approximate: str) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(16, 24).to(torch.bfloat16)
    x, residual = torch.randn(2, 5, 16, dtype=torch.bfloat16), torch.randn(2, 5, 24, dtype=torch.bfloat16)
    with torch.inference_mode():
        want = nn.functional.gelu(linear(x).float(), approximate=approximate)
        got = FusedLinear(linear, "gelu", approximate)(x).float()
        torch.testing.assert_close(got, want, atol=0.03, rtol=0.02)
        plain = FusedLinear(linear)
        torch.testing.assert_close(plain(x.float()).float(), linear(x).float(), atol=0.03, rtol=0.02)
        summed = plain(x, residual=residual).float()
        torch.testing.assert_close(summed, (linear(x) + residual).float(), atol=0.05, rtol=0.02)
    gelu = nn.Sequential()
    gelu.block = nn.Module()
    gelu.block.dense, gelu.block.intermediate_act_fn = linear, nn.GELU(approximate=approximate)
    assert fuse_linear_layers(gelu).block.dense.algorithm == approximate


def test_mtsent_fused_0_turns_fusion_off_for_new_copies(tiny_backbone, monkeypatch) -> None:
    from mtsent import SentenceEncoder

    monkeypatch.setenv("MTSENT_FUSED", "0")
    assert not fusion_available()
    encoder = SentenceEncoder(str(tiny_backbone), device="cpu")
    with torch.inference_mode():
        runner = inference_copy(encoder, "bf16")
    assert not any(isinstance(m, FusedLinear) for m in runner.modules())
    assert any(type(m) is nn.Linear and m.weight.dtype == torch.bfloat16 for m in runner.modules())


def test_a_cpu_without_bf16_units_keeps_plain_bf16_layers(tiny_backbone, monkeypatch) -> None:
    """oneDNN would emulate bf16 there: the copy stays the plain one."""
    import mtsent.precision
    from mtsent import SentenceEncoder

    monkeypatch.setattr(mtsent.precision, "fast_bf16", lambda device: False)
    encoder = SentenceEncoder(str(tiny_backbone), device="cpu")
    with torch.inference_mode():
        runner = inference_copy(encoder, "bf16")
    assert not any(isinstance(m, FusedLinear) for m in runner.modules())


@pytest.mark.skipif(not fast_bf16(torch.device("cpu")), reason="this CPU has no bf16 units: bf16 copies are not fused")
def test_the_bf16_copy_of_an_encoder_is_fused_and_encodes_like_fp32(tiny_backbone) -> None:
    from mtsent import SentenceEncoder

    encoder = SentenceEncoder(str(tiny_backbone), device="cpu")
    texts = ["Tim Cook visited Berlin.", "A much longer sentence about markets, rates and the central bank."]
    fp32 = encoder.encode(texts, precision="fp32")
    bf16 = encoder.encode(texts, precision="bf16")
    with torch.inference_mode():
        runner = inference_copy(encoder, "bf16")
    assert any(isinstance(m, FusedLinear) for m in runner.modules())
    assert not any(isinstance(m, FusedLinear) for m in encoder.modules())  # the model itself is untouched
    assert float((fp32 * bf16).sum(1).min()) > 0.99


def test_fused_copy_keeps_batch_invariant_answers_on_one_thread(tiny_backbone) -> None:
    """With one torch thread, bf16 rows padded to a width of their own stay bit-identical in any batch."""
    from mtsent import SentenceEncoder

    texts = ["ok", "Angela Merkel visited Paris last week.", "Rain is expected tomorrow in London. " * 4] * 7
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encoder = SentenceEncoder(str(tiny_backbone), device="cpu")
        alone = [encoder.encode([t], precision="bf16", batch_invariant=True)[0] for t in texts[:3]]
        together = encoder.encode(texts, precision="bf16", batch_invariant=True)
    finally:
        torch.set_num_threads(threads)
    assert all((row == alone[i % 3]).all() for i, row in enumerate(together))
