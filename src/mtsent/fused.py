"""Fused oneDNN kernels for the bf16 inference copy on CPU: fewer, larger operators per encoder layer.

At MiniLM's width (384) the matrix products of a bf16 pass on AMX take only a third of its time; the rest is
operators around them (docs/RESULTS.md, "Where the default pass spends its time"). oneDNN, which torch's CPU
build ships, runs a linear layer with its weight packed once into the layout its kernels read, and with a
pointwise epilogue: the GELU after the feed-forward up-projection, or the residual add before a layer norm,
happen while the product's output is still in cache instead of as separate operators. These are the fusions
inductor's CPU freezing pass makes (`torch.ops.mkldnn._linear_pointwise`), without a compiler at run time.

`fuse_linear_layers` rewrites a bf16 copy in place; the weights and results stay those of bf16 (a product
rounds once to bf16 where it rounded twice, so outputs move in their last bits). It is used by `precision`'s
bf16 copy on CPUs with bf16 units and changes no saved format: the fused copy is never saved. `MTSENT_FUSED=0`
in the environment turns it off for copies built afterwards (the plain bf16 layers run instead).
"""

from __future__ import annotations

import inspect
import os

import torch
from torch import Tensor, nn

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


def fuse_linear_layers(module: nn.Module) -> nn.Module:
    """Run every `nn.Linear` of an inference module through oneDNN, fusing the GELU of a feed-forward block
    (`dense` + `intermediate_act_fn`) and the residual add of a BERT-style output block; in place, returns it.

    For inference only: the fused operators have no backward.
    """
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
