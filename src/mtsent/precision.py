"""Precision of inference: which numeric mode runs, and the converted model copies that run it.

Precisions (one option everywhere: `precision=` in `encode`/`predict`, `--precision` in the CLI):

- `fp32` (reference precision): matches sentence-transformers; a vector moves by ~1e-7 with padding (kernel
  summation order), so `batch_invariant=True` (what the service uses) pads each text to a width of its own.
- `bf16`: bfloat16 weights (a cached copy) under autocast; matrix products run on AMX (recent Intel Xeon) or
  tensor cores (GPU). On a CPU with bf16 units the copy's layers are fused (`mtsent.fused`: oneDNN products on
  packed weights with the GELU and residual adds inside, flat BERT-family layers, attention on 32-key tiles).
- `int8`: dynamic int8 quantisation of most Linear layers (CPU only), smoothed with the model's calibration
  statistics when it has them (`mtsent.quantization`); for CPUs without bf16 units.
- `auto` (the default in the library and the CLI; the service defaults to `fp32`): `bf16` where the hardware
  has bf16 matrix units, else `fp32`.

See docs/speed.md for measurements and how to choose.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import cache

import torch
from torch import nn

from mtsent.fused import fuse_linear_layers, fusion_available

__all__ = [
    "PRECISIONS",
    "batch_invariant_rows",
    "drop_inference_copies",
    "eval_mode",
    "fast_bf16",
    "inference_copy",
    "precision_context",
    "resolve_precision",
]

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8", "auto")


@cache
def _cpu_has_bf16_units() -> bool:
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 matrix products are native here (AMX / AVX512-BF16 CPU, Ampere or newer GPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_has_bf16_units()


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision for a requested one: `auto` picks bf16 only where the hardware makes it fast (never
    int8: on the shipped model even smoothed int8 moves two sentence tasks by more than 0.3, docs/speed.md)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    if precision == "int8" and device.type != "cpu":
        raise ValueError("precision 'int8' (dynamic quantisation) runs on CPU only; use bf16 on a GPU")
    return precision


def batch_invariant_rows(device: torch.device, precision: str) -> int | None:
    """Rows per forward pass that keep each row's result independent of its batch mates (None: any number).

    On CPU at fp32 and bf16 with one torch thread (the service's setting on a 2-core machine) a row padded to a
    width of its own (`batching.invariant_width`) gives bit-identical results in a batch of any size. With more
    threads the matrix kernels share a product's work among them by its size, so batch mates move a row's last
    bits (seen on a 2-thread Xeon); int8 scales each layer's input per tensor, so batch mates move every
    row's quantisation; GPU libraries pick matrix kernels by shape: in all these cases every row runs alone.
    """
    if (
        device.type == "cpu"
        and resolve_precision(precision, device) in ("fp32", "bf16")
        and torch.get_num_threads() == 1
    ):
        return None
    return 1


def precision_context(device: torch.device, precision: str):
    """Autocast context for a precision name: bf16 autocast, nothing for fp32 and int8 (see `inference_copy`)."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


_COPIES: weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[tuple, nn.Module]]] = weakref.WeakKeyDictionary()


def _weights_key(module: nn.Module) -> tuple:
    """Changes whenever a weight is replaced, moved or updated in place (an optimiser step bumps `_version`)."""
    key = []
    for p in module.parameters():
        try:
            version = p._version
        except RuntimeError:  # inference tensors keep no version counter; they cannot be updated in place either
            version = -1
        key.append((p.data_ptr(), version))
    return tuple(key)


def _copy_key(module: nn.Module, precision: str) -> tuple:
    """What a converted copy depends on: the weights, and for int8 also the calibration statistics it smooths with."""
    key = (precision, _weights_key(module))
    if precision == "int8":
        key += tuple(id(getattr(sub, "int8_calibration", None)) for sub in module.modules())
    return key


def _converted(module: nn.Module, precision: str) -> nn.Module:
    """A copy of the module with weights stored for `precision`; tokenizers and configs are shared, not copied.

    bf16: every weight in bfloat16, run under autocast (which keeps the float32 pooling and heads working); this
    saves autocast's cast of each weight on every call; on a CPU with bf16 units, its layers become
    `mtsent.fused`'s. int8: `quantization.quantize_int8` (dynamic int8, smoothed where the model carries calibration
    statistics).
    """
    shared = {
        id(value): value
        for sub in module.modules()
        for name, value in vars(sub).items()
        if not name.startswith("_") and not isinstance(value, nn.Module | torch.Tensor)
    }
    clone = copy.deepcopy(module, memo=shared)
    if precision == "bf16":
        clone = clone.to(torch.bfloat16).eval()
        device = next(clone.parameters()).device
        if device.type == "cpu" and fast_bf16(device) and fusion_available():  # oneDNN emulates bf16 elsewhere
            fuse_linear_layers(clone)
        return clone
    from mtsent.quantization import quantize_int8

    return quantize_int8(clone)


def inference_copy(module: nn.Module, precision: str) -> nn.Module:
    """The module that runs a precision: itself for fp32, a cached converted copy for bf16 and int8.

    The copy is rebuilt when the weights change (training, loading, moving) or, for int8, the calibration
    statistics do, and it is kept outside the module (no new sub-module), so `state_dict` and the saved
    checkpoint format are unchanged. Run it inside `precision_context`. Weight changes are detected by tensor
    version counters, which fused optimizers (`torch.optim.AdamW(fused=True)`) do not bump: a loop that steps
    one must call `drop_inference_copies` before inference, as mtsent's Trainer does before each evaluation.
    """
    precision = resolve_precision(precision, next(module.parameters()).device)
    if precision == "fp32":
        return module
    key = _copy_key(module, precision)
    cached = _COPIES.get(module, {}).get(precision)
    if cached is None or cached[0] != key:
        cached = (key, _converted(module, precision))
        _COPIES.setdefault(module, {})[precision] = cached
        # a child run on its own (a model's encoder, by `encode`) uses its part of this copy, not a second one
        clone_children = dict(cached[1].named_children())
        for name, child in module.named_children():
            if any(True for _ in child.parameters()) and name in clone_children:
                _COPIES.setdefault(child, {})[precision] = (_copy_key(child, precision), clone_children[name])
    return cached[1]


def drop_inference_copies(module: nn.Module) -> None:
    """Forget the converted copies of `module` and its sub-modules, so the next inference call rebuilds them."""
    for sub in module.modules():
        _COPIES.pop(sub, None)


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Switch to eval (no dropout) for the block, then restore whatever mode the module was in."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)
