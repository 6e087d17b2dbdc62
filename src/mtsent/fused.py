"""Fused oneDNN kernels for the bf16 inference copy on CPU: fewer, larger operators per encoder layer.

At MiniLM's width (384) the matrix products of a bf16 pass on AMX take only a third of its time; the rest is
operators around them (docs/RESULTS.md, "Where the default pass spends its time"). oneDNN, which torch's CPU
build ships, runs a linear layer with its weight packed once into the layout its kernels read, and with a
pointwise epilogue: the GELU after the feed-forward up-projection, or the residual add before a layer norm,
happen while the product's output is still in cache instead of as separate operators. These are the fusions
inductor's CPU freezing pass makes (`torch.ops.mkldnn._linear_pointwise`), without a compiler at run time.

A BERT-family encoder layer gets one flat forward (`_FusedLayer`): the same operators in the same order,
without the calls through five nested modules, the attention-interface lookup and the keyword plumbing that
transformers runs around them on every call, and with the padding mask given to attention as one row per text
([B, 1, 1, S]) instead of one per token ([B, 1, S, S]); a layer is replaced only after a trial run has shown it
computes what the original does. On AMX its attention runs on the shapes torch's kernel is fast on: short texts
share 32-token blocks (`_blocked_attention`), other batches get keys padded to whole 16-key tiles
(`_padded_attention`).

`fuse_linear_layers` rewrites a bf16 copy in place; the weights and results stay those of bf16 (a product
rounds once to bf16 where it rounded twice, so outputs move in their last bits). It is used by `precision`'s
bf16 copy on CPUs with bf16 units and changes no saved format: the fused copy is never saved. `MTSENT_FUSED=0`
in the environment turns it off for copies built afterwards (the plain bf16 layers run instead).
"""

from __future__ import annotations

import inspect
import os
from functools import cache

import torch
from torch import Tensor, nn

from mtsent.batching import rows_invariant

__all__ = ["FusedLinear", "fuse_linear_layers", "fusion_available"]


def fusion_available() -> bool:
    """Whether bf16 CPU copies are fused: this torch build has oneDNN's fused linear operators and
    `MTSENT_FUSED=0` does not turn them off."""
    if os.environ.get("MTSENT_FUSED", "1").strip() == "0":
        return False
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class FusedLinear(nn.Module):
    """A bf16 linear layer run by oneDNN on a pre-packed weight, with an optional GELU or residual add fused in.

    `activation` is "none" or "gelu" (`approximate` "none" = erf, or "tanh"); `forward(x, residual)` adds
    `residual` to the product inside the same kernel.
    """

    def __init__(self, linear: nn.Linear, activation: str = "none", approximate: str = "none") -> None:
        super().__init__()
        weight = linear.weight.detach().to(torch.bfloat16)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", torch.ops.mkldnn._reorder_linear_weight(weight, None), persistent=False)
        bias = None if linear.bias is None else linear.bias.detach().to(torch.bfloat16)
        self.register_buffer("bias", bias, persistent=False)
        self.activation, self.algorithm = activation, approximate if activation == "gelu" else ""

    def forward(self, x: Tensor, residual: Tensor | None = None) -> Tensor:
        x = x.to(torch.bfloat16)
        if residual is not None:
            residual = residual.to(torch.bfloat16)
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, self.weight, self.bias, "add")
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, self.activation, [], self.algorithm)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class _FusedResidualOutput(nn.Module):
    """A BERT-style output block, `LayerNorm(dropout(dense(h)) + input)`, with the add inside the product (eval:
    dropout is the identity)."""

    def __init__(self, dense: nn.Linear, norm: nn.LayerNorm) -> None:
        super().__init__()
        self.dense, self.LayerNorm = FusedLinear(dense), norm

    def forward(self, hidden_states: Tensor, input_tensor: Tensor) -> Tensor:
        return self.LayerNorm(self.dense(hidden_states, residual=input_tensor))


def _gelu_kind(fn: nn.Module) -> str | None:
    """The oneDNN GELU algorithm for an activation module, or None if it is not a plain GELU."""
    if isinstance(fn, nn.GELU):
        return fn.approximate
    if type(fn).__name__ == "GELUActivation" and getattr(fn, "act", None) is nn.functional.gelu:
        return "none"  # transformers' exact GELU (its Python fallback has another `act`)
    return None


def _is_residual_output(module: nn.Module) -> bool:
    """BERT-family `...Output` blocks: dense, dropout and LayerNorm, called as (hidden_states, input_tensor)."""
    parameters = list(inspect.signature(type(module).forward).parameters)
    return (
        parameters == ["self", "hidden_states", "input_tensor"]
        and isinstance(getattr(module, "dense", None), nn.Linear)
        and isinstance(getattr(module, "LayerNorm", None), nn.LayerNorm)
        and isinstance(getattr(module, "dropout", None), nn.Dropout)
        and set(dict(module.named_children())) == {"dense", "LayerNorm", "dropout"}
    )


class _FusedLayer(nn.Module):
    """A BERT-family encoder layer (self-attention, residual output, GELU feed-forward, residual output) as one
    flat forward over fused products. Called as the layer it replaces: `(hidden_states, attention_mask, ...)`
    with transformers' SDPA mask (None, or booleans [B, 1, S, S]) or any mask SDPA takes; returns the hidden
    states. Its sub-modules keep the replaced layer's names (`attention.self.query`, `attention.output`,
    `intermediate.dense`, `output`), so its parameters are named as the model's are. `_fused_layer` builds it as a
    subclass of the replaced layer's class, so transformers still records its output among the hidden states."""

    def __init__(self, layer: nn.Module) -> None:
        nn.Module.__init__(self)  # not the replaced class's __init__, which builds a layer from a config
        attention = layer.attention.self
        self.attention, self.intermediate = nn.Module(), nn.Module()
        self.attention.self = nn.Module()
        for name in ("query", "key", "value"):
            setattr(self.attention.self, name, FusedLinear(getattr(attention, name)))
        self.attention.output = _FusedResidualOutput(layer.attention.output.dense, layer.attention.output.LayerNorm)
        act = _gelu_kind(layer.intermediate.intermediate_act_fn)
        self.intermediate.dense = FusedLinear(layer.intermediate.dense, "gelu", act)
        self.output = _FusedResidualOutput(layer.output.dense, layer.output.LayerNorm)
        self.heads, self.head_size = attention.num_attention_heads, attention.attention_head_size
        self.scaling = attention.scaling

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None, *args, **kwargs) -> Tensor:
        length = hidden_states.shape[1]
        attention = self.attention.self
        projections = [attention.query(hidden_states), attention.key(hidden_states), attention.value(hidden_states)]
        mask = attention_mask
        if mask is not None and mask.dtype == torch.bool and mask.shape[1:3] == (1, length):
            # the copy is only run on mtsent's 2-D padding masks, which transformers repeats for every query:
            # its first row, broadcast over the queries (a view, not a reduction per layer)
            mask = mask[:, :, :1]
        padding_only = mask is None or (mask.dtype == torch.bool and mask.shape[1:3] == (1, 1))
        # shared blocks: a row's result moves with its mates, so never inside batch-invariant passes
        short = length < SHORT_ROWS and tiled_attention() and not rows_invariant()
        if padding_only and short:
            keep = None if mask is None else mask[:, 0, 0]
            context = _blocked_attention(*projections, keep, self.heads, self.scaling)
        else:
            widths = _attention_widths(length) if padding_only else None
            context = _padded_attention(*projections, mask, self.heads, self.scaling, widths)
        hidden = self.attention.output(context, hidden_states)
        return self.output(self.intermediate.dense(hidden), hidden)


SHORT_ROWS = 16
"""Batches narrower than this many tokens share `_blocked_attention`'s blocks between texts."""
ATTENTION_BLOCK = 32
"""Tokens per block that short texts share in `_blocked_attention`."""
KEY_TILE = 16
"""Keys per tile on the fast path of torch's CPU attention kernel with AMX."""
KEY_SLACK = 4
"""Ragged keys (past the last whole 32-key tile, counted once per 32-query block) that cost less than padding."""
NARROWEST_PADDED = 21
"""Narrower batches (16-20 tokens) cost less as they are than with keys padded to a whole 32-key tile."""
PADDED_QUERIES = range(49, 64)
"""Batch widths at which padding the queries too (to 64) costs less than padding only the keys."""


@cache
def tiled_attention() -> bool:
    """Whether attention is shaped for torch's AMX attention kernel here (`_attention_widths`, `_blocked_attention`):
    the shapes were measured on AMX; elsewhere attention runs on the batch as it comes."""
    return bool(torch.cpu._is_amx_tile_supported())


def _attention_widths(length: int) -> tuple[int, int]:
    """(queries, keys) that attention over a batch `length` tokens wide runs on.

    torch's CPU kernel on AMX runs a key count that is a whole number of 16-key tiles on its fast path and any
    other far slower: per text and head, 47 keys cost 1.7 times 48, 63 keys 2.0 times 64
    (`benchmarks/attention_shapes.py`). So keys are padded to whole 16-key tiles, unless the keys past the last
    whole 32-key tile, counted once per 32-query block, are at most `KEY_SLACK` (33-36 keys cost less left as they
    are than padded to 48, 65-66 than padded to 80) or the batch is narrower than `NARROWEST_PADDED`; at widths in
    `PADDED_QUERIES` the queries are padded too. Widths under `SHORT_ROWS` share blocks instead
    (`_blocked_attention`)."""
    ragged = length % ATTENTION_BLOCK * max(1, length // ATTENTION_BLOCK)
    if length < NARROWEST_PADDED or not tiled_attention() or ragged <= KEY_SLACK:
        return length, length
    keys = -(-length // KEY_TILE) * KEY_TILE
    return (keys if length in PADDED_QUERIES else length), keys


def _padded_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    mask: Tensor | None,
    heads: int,
    scaling: float,
    widths: tuple[int, int] | None = None,
) -> Tensor:
    """Attention of (B, S, H*D) projections under `mask` (None, or any mask SDPA takes), the (B, S, H*D) context
    out; with `widths` (queries, keys), for a mask that is None or a boolean padding mask [B, 1, 1, S], run on
    that many: padding keys are masked and padding queries dropped, so no text's context changes."""
    batch, length, features = query.shape
    queries, keys = widths or (length, length)
    projections = [query, key, value]
    if (queries, keys) != (length, length):
        visible = query.new_ones(batch, 1, 1, length, dtype=torch.bool) if mask is None else mask
        mask = nn.functional.pad(visible, (0, keys - length))
        widths = (queries, keys, keys)
        projections = [nn.functional.pad(p, (0, 0, 0, w - length)) for p, w in zip(projections, widths)]
    query, key, value = (p.view(batch, -1, heads, features // heads).transpose(1, 2) for p in projections)
    context = nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling)
    return context.transpose(1, 2).reshape(batch, queries, features)[:, :length]


def _blocked_attention(
    query: Tensor, key: Tensor, value: Tensor, keep: Tensor | None, heads: int, scaling: float
) -> Tensor:
    """Attention for texts under `SHORT_ROWS` tokens, computed on shared 32-token blocks: (B, S, H*D)
    projections and a (B, S) key mask (None: no padding) in, the (B, S, H*D) context out, each text's own
    attention up to bf16 rounding.

    torch's CPU attention kernel works one (text, head) pair at a time and pays for a few keys about as much as
    for a whole tile: a pair of 5 tokens costs as much as one of 32. Texts are padded to a power of two and
    32 // width of them share a block, with a block-diagonal mask so that a token sees the keys of its own text
    only. On 1,000 SST-2 phrases (mostly 5-15 tokens) attention went from 135 to 77 ms of the pass
    (`benchmarks/encode_profile.py`).
    """
    batch, length, features = query.shape
    width = 1 << (length - 1).bit_length()
    group = ATTENTION_BLOCK // width
    rows = -(-batch // group) * group
    visible = torch.zeros(rows, width, dtype=torch.bool, device=query.device)
    visible[:batch, :length] = True if keep is None else keep
    visible[batch:, 0] = True  # the filler texts that complete the last block see one key: no empty softmax row
    text = torch.arange(group * width, device=query.device) // width
    mask = (text[:, None] == text[None, :]) & visible.view(-1, 1, group * width)

    def blocks(x: Tensor) -> Tensor:
        x = nn.functional.pad(x, (0, 0, 0, width - length, 0, rows - batch))
        return x.view(rows // group, group * width, heads, features // heads).transpose(1, 2)

    context = nn.functional.scaled_dot_product_attention(
        blocks(query), blocks(key), blocks(value), attn_mask=mask[:, None], scale=scaling
    )
    return context.transpose(1, 2).reshape(rows, width, features)[:batch, :length]


def _is_bert_layer(layer: nn.Module) -> bool:
    """The shape `_FusedLayer` computes: an encoder (not decoder) layer with SDPA self-attention of query, key and
    value only, BERT-style residual outputs and a GELU feed-forward, unchunked."""
    attention = getattr(getattr(layer, "attention", None), "self", None)
    intermediate = getattr(layer, "intermediate", None)
    return (
        attention is not None
        and set(dict(attention.named_children())) == {"query", "key", "value", "dropout"}
        and all(type(getattr(attention, n)) is nn.Linear for n in ("query", "key", "value"))
        and all(hasattr(attention, n) for n in ("num_attention_heads", "attention_head_size", "scaling"))
        and getattr(getattr(attention, "config", None), "_attn_implementation", None) == "sdpa"
        and set(dict(layer.attention.named_children())) == {"self", "output"}
        and _is_residual_output(layer.attention.output)
        and _is_residual_output(getattr(layer, "output", nn.Identity()))
        and type(getattr(intermediate, "dense", None)) is nn.Linear
        and _gelu_kind(getattr(intermediate, "intermediate_act_fn", nn.Identity())) is not None
        and not getattr(layer, "is_decoder", True)
        and not hasattr(layer, "crossattention")
        and getattr(layer, "chunk_size_feed_forward", None) == 0
    )


_FUSED_CLASSES: dict[type, type] = {}
_HOOKS = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks", "_forward_hooks_with_kwargs")


def _fused_class(layer_class: type) -> type:
    """`_FusedLayer` as a subclass of a transformers layer class: transformers installs the hooks that record
    hidden states (`output_hidden_states`) on instances of the model's layer class."""
    if layer_class not in _FUSED_CLASSES:
        _FUSED_CLASSES[layer_class] = type(f"Fused{layer_class.__name__}", (_FusedLayer, layer_class), {})
    return _FUSED_CLASSES[layer_class]


def _fused_layer(layer: nn.Module) -> _FusedLayer | None:
    """The fused form of a BERT-family layer, if a trial run on padded random input matches the original's
    output (to bf16 precision); None otherwise, and the layer keeps its own forward. Hooks already on the layer
    (transformers' output recorders, a user's) move to the fused one."""
    if not _is_bert_layer(layer):
        return None
    fused = _fused_class(type(layer))(layer)
    width = layer.attention.self.query.in_features
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(2, 7, width, generator=generator).to(torch.bfloat16)
    keep = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    mask = keep[:, None, None, :].expand(2, 1, 7, 7)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):  # `forward`: no hook sees the trial
        want = layer.forward(hidden, mask).float()[keep]
        got = fused.forward(hidden, mask).float()[keep]
    if not bool(torch.isclose(got, want, atol=0.05, rtol=0.02).all()):
        return None
    for hooks in _HOOKS:
        getattr(fused, hooks).update(getattr(layer, hooks))
    return fused


def fuse_linear_layers(module: nn.Module) -> nn.Module:
    """Run every `nn.Linear` of an inference module through oneDNN, fusing the GELU of a feed-forward block
    (`dense` + `intermediate_act_fn`) and the residual add of a BERT-style output block, and flatten each
    BERT-family layer into a `_FusedLayer`; in place, returns it.

    For inference only: the fused operators have no backward.
    """
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            fused = _fused_layer(child)
            if fused is not None:
                setattr(parent, name, fused)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if _is_residual_output(child):
                setattr(parent, name, _FusedResidualOutput(child.dense, child.LayerNorm))
            elif isinstance(getattr(child, "dense", None), nn.Linear) and hasattr(child, "intermediate_act_fn"):
                kind = _gelu_kind(child.intermediate_act_fn)
                if kind is not None:
                    child.dense = FusedLinear(child.dense, "gelu", kind)
                    child.intermediate_act_fn = nn.Identity()
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, FusedLinear(child))
    return module
