"""A fully fine-tuned backbone stored as its quantised difference from the pre-trained one.

Fine-tuning moves every weight a little: the change is small next to the weights and spread over all of a
weight's directions (a low-rank cut of it, `SentenceEncoder.compress`, loses far more), but it survives coarse
rounding. Each weight matrix's change is split into groups of `group_size` values that share one float16 scale
(the group's largest magnitude over the largest level) and each value is kept as one of 2^bits - 1 levels around
zero, packed `bits` to a value; vectors (biases, layer norms) are kept whole. With 3 bits for the layers and 2 for
the word embeddings a MiniLM-L6 fine-tune with four heads takes 7.6 MB instead of 86 MiB (docs/training.md).
Loading rebuilds the backbone named in the config, checks that its weights are the ones the difference was taken
from (a SHA-256 recorded at save time) and adds the difference back: a loaded model is a plain, fully fine-tuned
one.
"""

from __future__ import annotations

import numpy as np
import torch

from mtsent.config import DeltaConfig

__all__ = [
    "CODES",
    "SCALES",
    "WORD_EMBEDDINGS",
    "dequantize",
    "expand",
    "quantize",
    "quantized_state",
    "round_trip",
    "rounded_state",
]

CODES = ".delta_codes"
"""Key suffix of a weight's packed levels in a saved state (after the weight's own key)."""
SCALES = ".delta_scales"
"""Key suffix of a weight's float16 group scales."""
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"


def quantize(delta: torch.Tensor, bits: int, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed levels (uint8) and float16 scales of `delta`, read flat in groups of `group_size` (the last
    group padded with zeros)."""
    groups = _grouped(delta.detach().float().cpu(), group_size)
    top = 2 ** (bits - 1) - 1
    scales = (groups.abs().amax(dim=1) / top).half()
    divisor = torch.where(scales > 0, scales.float(), torch.ones(()))[:, None]
    levels = (groups / divisor).round().clamp(-top, top).to(torch.int16) + top
    return _pack(levels.flatten().to(torch.uint8), bits), scales


def dequantize(
    codes: torch.Tensor, scales: torch.Tensor, bits: int, group_size: int, shape: torch.Size
) -> torch.Tensor:
    """The float32 tensor of `shape` that `quantize` packed into `codes` and `scales`."""
    top = 2 ** (bits - 1) - 1
    levels = _unpack(codes, bits, scales.numel() * group_size).to(torch.float32) - top
    values = levels.view(scales.numel(), group_size) * scales.float()[:, None]
    return values.flatten()[: _numel(shape)].view(shape)


def round_trip(delta: torch.Tensor, bits: int, group_size: int) -> torch.Tensor:
    """`delta` as it comes back from being saved quantised."""
    codes, scales = quantize(delta, bits, group_size)
    return dequantize(codes, scales, bits, group_size, delta.shape)


def rounded_state(
    state: dict[str, torch.Tensor], base: dict[str, torch.Tensor], config: DeltaConfig
) -> dict[str, torch.Tensor]:
    """The backbone matrices of `state` as they come back from a quantised save: `base` plus the rounded
    difference (what `SentenceEncoder.compress_quantized` puts in place so that memory and disk agree)."""
    return {
        name: (
            base[name].float()
            + round_trip(value.float().cpu() - base[name].float(), _bits(name, config), config.group_size)
        ).to(value.dtype)
        for name, value in state.items()
        if _is_difference(name, value, base)
    }


def quantized_state(
    state: dict[str, torch.Tensor], base: dict[str, torch.Tensor], config: DeltaConfig, prefix: str = ""
) -> dict[str, torch.Tensor]:
    """What a saved model keeps of `state` (holding the backbone's keys under `prefix`, next to others that are
    kept as they are): every backbone matrix as its quantised difference from `base`, its vectors whole."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key[len(prefix) :] if key.startswith(prefix) else ""
        if not _is_difference(name, value, base):
            out[key] = value
            continue
        delta = value.float().cpu() - base[name].float()
        out[key + CODES], out[key + SCALES] = quantize(delta, _bits(name, config), config.group_size)
    return out


def expand(
    tensors: dict[str, torch.Tensor], base: dict[str, torch.Tensor], config: DeltaConfig, prefix: str = ""
) -> dict[str, torch.Tensor]:
    """The full state a quantised save (`quantized_state`) came from, as far as rounding allows: each stored
    difference added to the `base` weight of the same name. A difference whose base weight is missing or has
    another size is a ValueError naming it."""
    out = {k: v for k, v in tensors.items() if not k.endswith((CODES, SCALES))}
    for key in [k[: -len(CODES)] for k in tensors if k.endswith(CODES)]:
        name = key[len(prefix) :]
        if not key.startswith(prefix) or name not in base:
            raise ValueError(f"{key}: a stored difference for a weight the backbone does not have")
        if key + SCALES not in tensors:
            raise ValueError(f"{key}: the difference's scales ({key + SCALES}) are missing")
        weight = base[name]
        bits = _bits(name, config)
        expected = -(-weight.numel() // config.group_size)
        codes, scales = tensors[key + CODES], tensors[key + SCALES]
        if scales.numel() != expected or codes.numel() != -(-expected * config.group_size * bits // 8):
            raise ValueError(f"{key}: the stored difference does not fit the backbone's {tuple(weight.shape)} weight")
        out[key] = (weight.float() + dequantize(codes, scales, bits, config.group_size, weight.shape)).to(weight.dtype)
    return out


def _is_difference(name: str, value: torch.Tensor, base: dict[str, torch.Tensor]) -> bool:
    """Whether a backbone tensor is saved as a quantised difference: its matrices; vectors are kept whole."""
    return name in base and value.ndim >= 2 and value.is_floating_point()


def _bits(name: str, config: DeltaConfig) -> int:
    return config.embedding_bits if name == WORD_EMBEDDINGS else config.bits


def _grouped(values: torch.Tensor, group_size: int) -> torch.Tensor:
    flat = values.flatten()
    padding = -flat.numel() % group_size
    return torch.cat([flat, flat.new_zeros(padding)]).view(-1, group_size)


def _numel(shape: torch.Size) -> int:
    return int(np.prod(shape)) if len(shape) else 1


def _pack(levels: torch.Tensor, bits: int) -> torch.Tensor:
    """`bits` low bits of each uint8 level, packed end to end (little-endian bit order)."""
    planes = (levels.numpy()[:, None] >> np.arange(bits, dtype=np.uint8)) & 1
    return torch.from_numpy(np.packbits(planes.reshape(-1), bitorder="little"))


def _unpack(codes: torch.Tensor, bits: int, count: int) -> torch.Tensor:
    planes = np.unpackbits(codes.numpy(), count=count * bits, bitorder="little").reshape(count, bits)
    return torch.from_numpy(planes.astype(np.int32) @ (1 << np.arange(bits, dtype=np.int32)))
