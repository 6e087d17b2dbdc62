"""Int8 inference: dynamic int8 Linear layers, smoothed with activation statistics from calibration text.

Dynamic int8 quantises a Linear layer's input with one scale per call (per tensor). Transformer activations
carry a few outlier channels, many times larger than the rest, and one scale for all channels flattens the
others: on a trained NER model that cost 0.42 F1. SmoothQuant (Xiao et al., ICML 2023) moves the outliers into
the weights, which quantise per output row and absorb them: each input channel j is divided by
`s_j = max|x_j|^alpha / max|W_:,j|^(1-alpha)` and the weight's column j multiplied by it, which leaves the float
result unchanged and the int8 one far closer. `max|x_j|` comes from calibration: the per-channel maxima of each
backbone Linear's input over a few hundred sentences (`activation_maxima`), kept with the model in
`int8_calibration.safetensors` (training writes it into its checkpoints, from training sentences; `mtsent
calibrate` / `encoder.calibrate_directory` adds it to any saved model). A model without it runs plain int8.

The division runs as one elementwise product before each smoothed layer: BERT-style backbones normalise after
the residual sum (post-LN), so the usual fold of `1/s` into the preceding LayerNorm would change the residual
stream too.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

__all__ = [
    "CALIBRATION_NAME",
    "SMOOTHING_ALPHA",
    "SmoothedLinear",
    "activation_maxima",
    "load_calibration",
    "quantizable",
    "quantize_int8",
    "save_calibration",
]

CALIBRATION_NAME = "int8_calibration.safetensors"
SMOOTHING_ALPHA = 0.8
"""How much of each outlier moves into the weights (0: none, 1: all). Of 0.35, 0.5, 0.65 and 0.8, 0.8 changed
the fewest of a trained model's answers against fp32 on every task (docs/RESULTS.md); the per-row weight scales
absorb what it moves."""
_EPS = 1e-5


def quantizable(layer: nn.Module) -> bool:
    """Linear layers that int8 runs: those that do not shrink their input. The down-projections (feed-forward
    output, classifier heads) stay float: their inputs' outliers cost ~1 point of STS-B Spearman at int8."""
    return isinstance(layer, nn.Linear) and layer.in_features <= layer.out_features


class SmoothedLinear(nn.Module):
    """A dynamic int8 Linear whose input is divided per channel by the smoothing factors its weight absorbed; its
    weight is quantised per output row (the columns that absorbed outliers would otherwise set a single scale)."""

    def __init__(self, layer: nn.Linear, input_maxima: Tensor, alpha: float | None = None) -> None:
        super().__init__()
        alpha = SMOOTHING_ALPHA if alpha is None else alpha
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
        from torch.ao.quantization import per_channel_dynamic_qconfig

        weight = layer.weight.detach().float()
        x_max = input_maxima.to(weight.device, torch.float32).clamp(min=_EPS)
        w_max = weight.abs().amax(dim=0).clamp(min=_EPS)
        scale = (x_max.pow(alpha) / w_max.pow(1 - alpha)).clamp(min=_EPS)
        smoothed = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
        with torch.no_grad():
            smoothed.weight.copy_(weight * scale)
            if layer.bias is not None:
                smoothed.bias.copy_(layer.bias.detach().float())
        smoothed.qconfig = per_channel_dynamic_qconfig  # the scaled-up columns would set one per-tensor scale
        self.register_buffer("inv_scale", scale.reciprocal())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao eager quantisation is deprecated (torchao); it still works
            self.linear = DynamicLinear.from_float(smoothed)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x * self.inv_scale)


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def quantize_int8(module: nn.Module) -> nn.Module:
    """Turn `module` (a copy: it is changed in place) into its int8 form and return it in eval mode.

    In every sub-module that carries calibration (`int8_calibration`, a SentenceEncoder's), the quantizable
    Linear layers of its backbone that the calibration covers become `SmoothedLinear`; every other quantizable
    Linear gets plain dynamic int8.
    """
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    for sub in list(module.modules()):
        maxima = getattr(sub, "int8_calibration", None)
        backbone = getattr(sub, "backbone", None)
        if not maxima or backbone is None:
            continue
        for name, layer in list(backbone.named_modules()):
            if quantizable(layer) and name in maxima and maxima[name].numel() == layer.in_features:
                _set_submodule(backbone, name, SmoothedLinear(layer, maxima[name]))
    spec = {name: default_dynamic_qconfig for name, layer in module.named_modules() if quantizable(layer)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(module, spec, dtype=torch.qint8, inplace=True).eval()


@torch.inference_mode()
def activation_maxima(encoder: nn.Module, sentences: Sequence[str], batch_size: int = 64) -> dict[str, Tensor]:
    """Per input channel, the largest absolute value each Linear layer of `encoder.backbone` reads while the
    encoder embeds `sentences` in fp32 (padding excluded): the statistics `SmoothedLinear` needs."""
    if not sentences:
        raise ValueError("calibration needs at least one sentence")
    maxima: dict[str, Tensor] = {}
    mask: list[Tensor] = []  # the current batch's real-token mask, set by the backbone's pre-hook

    def keep_mask(_module, _args, kwargs):
        mask[:] = [kwargs["attention_mask"].bool()]

    def record(name):
        def hook(_module, args, _output):
            x = args[0].detach().float()
            if mask and x.dim() == 3 and x.shape[:2] == mask[0].shape:
                x = x[mask[0]]
            x = x.abs().reshape(-1, x.shape[-1]).amax(dim=0)
            maxima[name] = torch.maximum(maxima[name], x) if name in maxima else x

        return hook

    backbone = encoder.backbone
    handles = [backbone.register_forward_pre_hook(keep_mask, with_kwargs=True)]
    handles += [
        layer.register_forward_hook(record(name))
        for name, layer in backbone.named_modules()
        if isinstance(layer, nn.Linear)
    ]
    try:
        encoder.encode(list(sentences), batch_size=batch_size, precision="fp32", long_texts="truncate")
    finally:
        for handle in handles:
            handle.remove()
    return {name: value.cpu().contiguous() for name, value in maxima.items()}


def save_calibration(directory: str | Path, maxima: dict[str, Tensor]) -> Path:
    """Write the statistics next to a model's weights (whole or not at all: a temporary file, then a rename)."""
    path = Path(directory) / CALIBRATION_NAME
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in maxima.items()}, str(tmp), metadata={"format": "pt"})
    tmp.replace(path)
    return path


def load_calibration(directory: str | Path) -> dict[str, Tensor] | None:
    """A model directory's calibration statistics, or None when it has none."""
    path = Path(directory) / CALIBRATION_NAME
    if not path.is_file():
        return None
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated files
        raise ValueError(f"{path} is unreadable or truncated: {exc}") from exc
