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

__all__ = ["attach_adapter", "base_fingerprint", "is_adapter_parameter", "merge_adapter"]


def attach_adapter(backbone: nn.Module, config: AdapterConfig) -> nn.Module:
    """The backbone wrapped with fresh LoRA layers (peft), its own weights frozen.

    The wrapper forwards attribute access (`.config`) to the backbone, and at initialisation it computes exactly
    what the backbone computes (LoRA's B matrices start at zero).
    """
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.r,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=config.target_modules,
        bias="all" if config.train_biases else "none",
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


def base_fingerprint(backbone: nn.Module, config: AdapterConfig) -> str:
    """SHA-256 of the frozen pre-trained weights (names, shapes and bytes, in name order), with or without the
    adapter attached: what trains under `config` is left out.

    An adapter only makes sense on the weights it was trained against; this is how loading tells that the
    backbone it found (a newer packaged model, another hub revision) is not the one.
    """
    digest = hashlib.sha256()
    state = {_base_name(k): v for k, v in backbone.state_dict().items() if not is_adapter_parameter(k, config)}
    for name in sorted(state):
        tensor = state[name].detach().to("cpu", torch.float32).contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _base_name(key: str) -> str:
    """A parameter's name in the plain backbone (without peft's wrapper prefixes)."""
    return key.removeprefix("base_model.model.").replace(".base_layer.", ".")
