"""LoRA adapters on the backbone (through peft): train about a million parameters instead of 22 million,
and save only what differs from the pre-trained backbone.

A model trained with `encoder.adapter` keeps its backbone frozen, so its directory holds only the adapter's
low-rank matrices (and the biases, when they train), the pooling/projection layers and the heads: 5.45 MB of
tensors for the shipped model (all-MiniLM-L6-v2, rank 32 on every linear layer), against 86 MiB for a full
one. Loading rebuilds the backbone named in the config (`encoder.backbone`: the packaged one by default),
checks that its weights are the ones the adapter was trained on (a SHA-256 of the base weights, recorded at
save time), attaches the adapter and, for inference, merges it into the weights, so a loaded model is a plain one
(the architecture of a fully fine-tuned model) and exports to every format as such.
"""

from __future__ import annotations

import hashlib
import warnings

import torch
from torch import nn

from mtsent.config import AdapterConfig

__all__ = ["attach_adapter", "base_fingerprint", "is_adapter_parameter", "merge_adapter", "set_to_difference"]


def attach_adapter(backbone: nn.Module, config: AdapterConfig) -> nn.Module:
    """The backbone wrapped with fresh LoRA layers (peft), its own weights frozen.

    The wrapper forwards attribute access (`.config`) to the backbone, and at initialisation it computes exactly
    what the backbone computes (LoRA's B matrices start at zero).
    """
    from peft import LoraConfig, get_peft_model

    targets: str | list[str] = config.target_modules
    patterns: dict[str, dict[str, float]] = {"rank_pattern": {}, "alpha_pattern": {}}
    if config.embedding_r is not None:  # peft's "all-linear" cannot be combined with other names: list them
        linear = {n.rsplit(".", 1)[-1] for n, m in backbone.named_modules() if isinstance(m, nn.Linear)}
        embedding = _module_name(backbone, backbone.get_input_embeddings()).rsplit(".", 1)[-1]
        targets = [*sorted(linear if targets == "all-linear" else targets), embedding]
        patterns = {
            "rank_pattern": {embedding: config.embedding_r},
            "alpha_pattern": {embedding: config.alpha * config.embedding_r / config.r},  # the same scale
        }
    lora = LoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=targets,
        bias="all" if config.train_biases else "none",
        **patterns,
    )
    with warnings.catch_warnings():  # peft warns that bias="all" also changes the output with adapters disabled
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)  # transformers deprecations peft still triggers
        wrapped = get_peft_model(backbone, lora)
    for name, p in wrapped.named_parameters():
        p.requires_grad_(is_adapter_parameter(name, config))
    return wrapped


def is_adapter_parameter(name: str, config: AdapterConfig) -> bool:
    """Whether a backbone parameter trains (and is saved) under the adapter: LoRA matrices, and biases when
    `train_biases` is set. Everything else is the pre-trained backbone, frozen and read from it at load."""
    return "lora_" in name or (config.train_biases and name.endswith("bias"))


def merge_adapter(backbone: nn.Module) -> nn.Module:
    """The plain backbone with the adapter folded into its weights (W + B A * alpha / r): same outputs, no
    adapter layers left, so precision modes, torch.compile and the export formats see an ordinary model."""
    return backbone.merge_and_unload()


def base_fingerprint(backbone: nn.Module, config: AdapterConfig | None = None) -> str:
    """SHA-256 of the frozen pre-trained weights (names, shapes and bytes, in name order), with or without the
    adapter attached: what trains under `config` is left out (nothing without one).

    An adapter only makes sense on the weights it was trained against; this is how loading tells that the
    backbone it found (a newer packaged model, another hub revision) is not the one.
    """
    digest = hashlib.sha256()
    state = {
        _base_name(k): v
        for k, v in backbone.state_dict().items()
        if config is None or not is_adapter_parameter(k, config)
    }
    for name in sorted(state):
        tensor = state[name].detach().to("cpu", torch.float32).contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _base_name(key: str) -> str:
    """A parameter's name in the plain backbone (without peft's wrapper prefixes)."""
    return key.removeprefix("base_model.model.").replace(".base_layer.", ".")


def _module_name(root: nn.Module, module: nn.Module) -> str:
    return next(name for name, m in root.named_modules() if m is module)


@torch.no_grad()
def set_to_difference(wrapped: nn.Module, tuned: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> None:
    """Set the LoRA factors of a backbone wrapped by `attach_adapter` (with the `base` weights under it) so that
    each adapted weight becomes base + the best approximation of (tuned - base) of the adapter's rank (truncated
    SVD), and its biases to the `tuned` ones: a fine-tune compressed into an adapter (`SentenceEncoder.compress`).
    """
    for name, module in wrapped.named_modules():
        weight = _base_name(name) + ".weight"
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            b, a = _factors(tuned[weight] - base[weight], module.r["default"])
            module.lora_B["default"].weight.copy_(b)
            module.lora_A["default"].weight.copy_(a)
        elif hasattr(module, "lora_embedding_A") and "default" in module.lora_embedding_A:
            b, a = _factors((tuned[weight] - base[weight]).T, module.r["default"])  # peft keeps embeddings' transposed
            module.lora_embedding_B["default"].copy_(b)
            module.lora_embedding_A["default"].copy_(a)
    for key, param in wrapped.named_parameters():
        if key.endswith("bias") and "lora_" not in key:
            param.copy_(tuned[_base_name(key)])


def _factors(delta: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """B (out x rank) and A (rank x in) with B @ A the best rank-`rank` approximation of `delta` (out x in)."""
    u, s, vh = torch.linalg.svd(delta.float(), full_matrices=False)
    root = s[:rank].sqrt()
    return u[:, :rank] * root, root[:, None] * vh[:rank]
