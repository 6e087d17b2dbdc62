"""sentence-transformers directories: honour their pooling, Dense and normalisation on load; write encoders as them.

A sentence-transformers directory lists its modules in `modules.json` (Transformer, Pooling, then optional Dense,
LayerNorm, Dropout, Normalize). mtsent reads the modules it can represent exactly and refuses the others with a
message naming the file, so that a model is never silently loaded with the wrong pooling. Writing uses the
long-standing `sentence_transformers.models.*` names and config keys, which every release from 2.x to 6.x loads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["STSettings", "check_st_exportable", "read_st_settings", "write_st_dir"]

MODULES_NAME = "modules.json"
# sentence-transformers pooling modes mtsent computes identically (right-padded inputs: CLS is the first token)
_POOLING = {"mean": "mean", "cls": "cls", "max": "max"}
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# what mtsent can represent: its projection is Linear + LayerNorm (+ Dropout), normalisation is optional
_LAYOUT = re.compile(r"Transformer Pooling( Dense LayerNorm( Dropout)?)?( Normalize)?")
_IDENTITY = ("torch.nn.modules.linear.Identity", "torch.nn.Identity")


@dataclass
class STSettings:
    """What a directory's modules.json prescribes; the defaults describe a plain Hugging Face directory."""

    pooling: str | None = None
    normalize: bool | None = None
    projection_dim: int | None = None
    projection_dropout: float = 0.0
    projection_state: dict[str, torch.Tensor] = field(default_factory=dict)

    def encoder_fields(
        self, pooling: str | None, normalize: bool | None, projection_dim: int | None, projection_dropout: float
    ) -> dict:
        """EncoderConfig fields: the caller's explicit choices, else the directory's, else mtsent's defaults."""
        if self.projection_dim is not None:
            if projection_dim is not None:
                raise ValueError(
                    f"this sentence-transformers directory already has a Dense projection to {self.projection_dim}; "
                    "leave projection_dim unset to load it"
                )
            projection_dim, projection_dropout = self.projection_dim, self.projection_dropout
        return {
            "pooling": pooling or self.pooling or "mean",
            "normalize": (self.normalize if self.normalize is not None else True) if normalize is None else normalize,
            "projection_dim": projection_dim,
            "projection_dropout": projection_dropout,
        }

    def load_projection(self, projection: nn.Module | None) -> None:
        """Copy the directory's Dense + LayerNorm weights into the encoder's projection, when it has them."""
        if self.projection_state and projection is not None:
            projection.load_state_dict(self.projection_state, strict=False)


def _pooling_mode(cfg: dict, cfg_file: Path) -> str:
    mode = cfg.get("pooling_mode")
    if mode is None:
        modes = [name for key, name in _LEGACY_POOLING_KEYS.items() if cfg.get(key)]
        mode = modes[0] if len(modes) == 1 else (modes or "mean")
    if isinstance(mode, list | tuple) and len(mode) == 1:
        mode = mode[0]
    if not isinstance(mode, str) or mode not in _POOLING:
        raise ValueError(
            f"{cfg_file}: pooling {mode!r} has no exact mtsent equivalent (mtsent pools with {', '.join(_POOLING)})"
        )
    return _POOLING[mode]


def _read_json(file: Path) -> dict | list:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{file} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file} is not valid JSON: {exc}") from exc


def _weights(module_dir: Path) -> dict[str, torch.Tensor]:
    file = module_dir / "model.safetensors"
    if not file.is_file():
        raise ValueError(f"{module_dir}: no model.safetensors (mtsent reads no pickled pytorch_model.bin)")
    return load_file(str(file))


def read_st_settings(name_or_path: str | Path) -> STSettings:
    """The settings a sentence-transformers directory's modules.json prescribes (defaults for any other model)."""
    from mtsent.checkpoint import locate_model

    kind, path = locate_model(name_or_path)
    if kind != "transformers":  # a hub id, or an mtsent directory (whose loaders say what to do with it)
        return STSettings()
    modules_file = Path(path) / MODULES_NAME
    if not modules_file.is_file():
        return STSettings()
    modules = _read_json(modules_file)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ValueError(f"{modules_file}: expected a list of modules")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in sorted(modules, key=lambda m: m.get("idx", 0))]
    if not _LAYOUT.fullmatch(" ".join(kinds)):
        raise ValueError(
            f"{modules_file}: modules {' -> '.join(kinds)} cannot be loaded exactly; mtsent reads Transformer -> "
            "Pooling [-> Dense (no activation) -> LayerNorm [-> Dropout]] [-> Normalize]"
        )
    settings = STSettings(normalize=kinds[-1] == "Normalize")
    for module, kind in zip(sorted(modules, key=lambda m: m.get("idx", 0)), kinds):
        module_dir = Path(path) / str(module.get("path", ""))
        if kind == "Pooling":
            settings.pooling = _pooling_mode(_read_json(module_dir / "config.json"), module_dir / "config.json")
        elif kind == "Dense":
            cfg_file = module_dir / "config.json"
            cfg = _read_json(cfg_file)
            activation = cfg.get("activation_function", "torch.nn.modules.activation.Tanh")
            if activation not in _IDENTITY or not cfg.get("bias", True) or cfg.get("use_residual"):
                raise ValueError(
                    f"{cfg_file}: a Dense layer with activation {activation!r}, bias={cfg.get('bias', True)} and "
                    f"residual={cfg.get('use_residual', False)} has no exact mtsent equivalent (mtsent's projection "
                    "is Linear with bias, then LayerNorm)"
                )
            settings.projection_dim = int(cfg["out_features"])
            settings.projection_state |= {f"0.{k.removeprefix('linear.')}": v for k, v in _weights(module_dir).items()}
        elif kind == "LayerNorm":
            settings.projection_state |= {f"1.{k.removeprefix('norm.')}": v for k, v in _weights(module_dir).items()}
        elif kind == "Dropout":
            settings.projection_dropout = float(_read_json(module_dir / "config.json").get("dropout", 0.0))
    return settings


def _write_json(file: Path, payload: dict | list) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def check_st_exportable(encoder) -> None:
    """Refuse, before anything is written, an encoder that sentence-transformers modules cannot reproduce."""
    if encoder.config.pooling == "attention":
        raise ValueError(
            "learnable attention pooling has no sentence-transformers module, so the export could not give the "
            "same embeddings; export to onnx instead, or train with mean, cls or max pooling"
        )


def write_st_dir(encoder, out: Path) -> None:
    """Write an encoder as a sentence-transformers directory into the (empty, temporary) directory `out`.

    The backbone and tokenizer go to the root (the Transformer module), then Pooling, the projection as Dense
    (no activation) + LayerNorm + Dropout, and Normalize when the encoder normalises.
    """
    from mtsent import __version__

    check_st_exportable(encoder)
    encoder.backbone.save_pretrained(out)
    encoder.tokenizer.save_pretrained(out)
    modules = [("", "Transformer")]
    hidden = encoder.hidden_size
    _write_json(
        out / "1_Pooling" / "config.json",
        {"word_embedding_dimension": hidden}
        | {key: encoder.config.pooling == mode for key, mode in _LEGACY_POOLING_KEYS.items()},
    )
    modules.append(("1_Pooling", "Pooling"))
    if encoder.projection is not None:
        linear, norm = encoder.projection[0], encoder.projection[1]
        dim = linear.out_features
        _write_json(
            out / "2_Dense" / "config.json",
            {"in_features": hidden, "out_features": dim, "bias": True, "activation_function": _IDENTITY[0]},
        )
        save_file(_cpu(linear.state_dict(), "linear."), str(out / "2_Dense" / "model.safetensors"))
        _write_json(out / "3_LayerNorm" / "config.json", {"dimension": dim})
        save_file(_cpu(norm.state_dict(), "norm."), str(out / "3_LayerNorm" / "model.safetensors"))
        _write_json(out / "4_Dropout" / "config.json", {"dropout": encoder.config.projection_dropout})
        modules += [("2_Dense", "Dense"), ("3_LayerNorm", "LayerNorm"), ("4_Dropout", "Dropout")]
    if encoder.config.normalize:
        modules.append((f"{len(modules)}_Normalize", "Normalize"))
    _write_json(
        out / MODULES_NAME,
        [
            {"idx": i, "name": str(i), "path": path, "type": f"sentence_transformers.models.{kind}"}
            for i, (path, kind) in enumerate(modules)
        ],
    )
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": encoder.max_length, "do_lower_case": False})
    _write_json(
        out / "config_sentence_transformers.json",
        {"__version__": {"mtsent": __version__, "pytorch": torch.__version__}, "similarity_fn_name": "cosine"},
    )


def _cpu(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().to("cpu").contiguous() for k, v in state.items()}
