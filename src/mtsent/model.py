"""The multi-task model: one shared encoder, any number of named task heads, one forward pass for all.

`predict` answers every requested task for raw texts, each in the form its task type defines (a label with
every label's probability for sentence classification, entity spans with character offsets for token
classification). Texts longer than the backbone's limit are cut into overlapping windows of whole words, so
every word still gets a tag; sentence-level answers read the first window, or the mean over all windows with
`long_texts="mean"`. A sentence-pair task (similarity) answers pairs instead: `similarity(texts_a, texts_b)`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError
from torch import Tensor, nn

from mtsent.batching import DEFAULT_MAX_TOKENS, pad_batch, text_windows
from mtsent.checkpoint import load_weights, locate_model, read_model_dir, resolve_model_name, write_model_dir
from mtsent.config import DEFAULT_MODEL, HeadConfig, ModelConfig
from mtsent.encoder import ENCODER_PREFIX, LongTexts, SentenceEncoder
from mtsent.inputs import check_sentences, one_or_many
from mtsent.precision import eval_mode, inference_copy, precision_context
from mtsent.quantization import load_calibration
from mtsent.spans import split_words
from mtsent.tasks import SentencePrediction, TaskType, TokenPrediction, WindowOutput, get_task_type

__all__ = ["MultiTaskModel", "MultiTaskOutput", "SentencePrediction", "TokenPrediction"]


@dataclass
class MultiTaskOutput:
    """A forward pass: the encoder's outputs and one logits tensor per requested task."""

    sentence_embedding: Tensor
    token_embeddings: Tensor
    logits: dict[str, Tensor]


class MultiTaskModel(nn.Module):
    """A SentenceEncoder shared by named heads; the heads are declared by HeadConfig objects or dicts."""

    def __init__(self, encoder: SentenceEncoder | None = None, tasks: Sequence[HeadConfig | dict] = ()) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else SentenceEncoder()
        self.tasks: dict[str, HeadConfig] = {}
        self.task_types: dict[str, TaskType] = {}
        self.heads = nn.ModuleDict()
        for task in tasks:
            self.add_task(task)
        self.train(self.encoder.training)  # a new container must not flip a loaded (eval) encoder into training

    @classmethod
    def from_config(cls, config: ModelConfig, device: str | torch.device | None = None) -> MultiTaskModel:
        """A new model: pre-trained backbone from `config.encoder`, freshly initialised heads."""
        e = config.encoder
        encoder = SentenceEncoder(
            e.backbone,
            pooling=e.pooling,
            projection_dim=e.projection_dim,
            projection_dropout=e.projection_dropout,
            normalize=e.normalize,
            max_length=e.max_length,
            device=device,
        )
        if e.adapter is not None:
            encoder.attach_adapter(e.adapter)
        return cls(encoder, config.tasks)

    def add_task(self, task: HeadConfig | dict) -> None:
        """Add a freshly initialised head; its name must be new."""
        task = task if isinstance(task, HeadConfig) else HeadConfig.model_validate(task)
        if task.name in self.tasks:
            raise ValueError(f"task {task.name!r} already exists")
        task_type = get_task_type(task.type)(task)
        self.tasks[task.name] = task
        self.task_types[task.name] = task_type
        head = task_type.build_head(self.encoder.dim, self.encoder.hidden_size, self.encoder)
        self.heads[task.name] = head.to(self.encoder.device)

    def set_decoding(self, task: str, decoding: str) -> None:
        """Decode `task`'s outputs with `decoding` from now on (predict, evaluation; saved with the model).

        A decoding the task's type does not offer is a ValueError naming the task and the ones it offers.
        """
        name = self.check_tasks([task])[0]
        config = self.tasks[name]
        try:  # validated on a copy first: a failed assignment would leave the head's config changed
            HeadConfig.model_validate({**config.model_dump(), "decoding": decoding})
        except ValidationError as exc:
            problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise ValueError(f"task {name!r}: {problems}") from None
        config.decoding = decoding

    def use_decoding(self, decoding: str, tasks: Sequence[str]) -> list[str]:
        """Decode every task of `tasks` that offers `decoding` that way; returns their names. None of them
        offering it is a ValueError (a request that would silently change nothing)."""
        names = self.check_tasks(tasks)
        decoded = [n for n in names if decoding in self.task_types[n].decodings]
        if not decoded:
            raise ValueError(f"--decoding {decoding}: none of the tasks {names} decodes that way")
        for name in decoded:
            self.set_decoding(name, decoding)
        return decoded

    # ---------------------------------------------------------------- description
    @property
    def config(self) -> ModelConfig:
        return ModelConfig(
            encoder=self.encoder.config,
            tasks=list(self.tasks.values()),
            backbone_config=self.encoder.backbone.config.to_dict(),
        )

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    def check_tasks(self, tasks: Sequence[str] | None) -> list[str]:
        """The requested task names, or a ValueError listing the valid ones.

        None means every task that answers a single text (pair tasks are asked by name, or through `similarity`).
        """
        if tasks is None:
            return [n for n, t in self.task_types.items() if t.texts_per_example == 1]
        if isinstance(tasks, str):
            tasks = [tasks]
        valid = ", ".join(self.tasks) or "(this model has no task heads)"
        for name in tasks:
            if name not in self.tasks:
                raise ValueError(f"unknown task {name!r}; valid tasks: {valid}")
        return list(dict.fromkeys(tasks))

    # ---------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        token_type_ids: Tensor | None = None,
        tasks: Sequence[str] | None = None,
    ) -> MultiTaskOutput:
        """One encoder pass, then every requested head (all heads when `tasks` is None)."""
        names = self.check_tasks(tasks)
        hidden = any(self.task_types[name].needs_hidden_states for name in names)
        enc = self.encoder(input_ids, attention_mask, token_type_ids, output_hidden_states=hidden)
        logits = {name: self.task_types[name].logits(self.heads[name], enc) for name in names}
        return MultiTaskOutput(enc.sentence_embedding, enc.token_embeddings, logits)

    def encode(self, sentences: str | Sequence[str], **kwargs) -> np.ndarray | Tensor:
        """Sentence embeddings from the shared encoder (see SentenceEncoder.encode)."""
        return self.encoder.encode(sentences, **kwargs)

    # ---------------------------------------------------------------- prediction
    @one_or_many
    @torch.inference_mode()
    def predict(
        self,
        texts: str | Sequence[str],
        tasks: Sequence[str] | None = None,
        batch_size: int | None = None,
        precision: str = "auto",
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
        long_texts: LongTexts | None = None,
        batch_invariant: bool = False,
    ) -> list[dict[str, SentencePrediction | TokenPrediction]] | dict[str, SentencePrediction | TokenPrediction]:
        """Answer the requested tasks (default: all) for each text, in input order (one answer for one string).

        Batching (`batch_size`, `max_tokens`, `batch_invariant`) and `precision` work as in
        `SentenceEncoder.encode`: one pass of the shared encoder per batch answers every task. A text longer than
        the encoder's window is read in overlapping windows of whole words: token tasks tag every word; sentence
        tasks read the first window (by default with a warning; silently with `long_texts="truncate"`) or average
        over every window (`long_texts="mean"`).
        """
        texts = check_sentences(texts, "texts")
        names = self.check_tasks(tasks)
        if not names:
            raise ValueError("this model has no task heads for single texts; use encode() or similarity()")
        pairs = [n for n in names if self.task_types[n].texts_per_example != 1]
        if pairs:
            raise ValueError(f"tasks {pairs} answer pairs of texts, not single texts: use similarity(texts_a, texts_b)")
        if long_texts not in (None, "truncate", "mean"):
            raise ValueError(f"long_texts must be 'truncate' or 'mean', got {long_texts!r}")
        words = [split_words(t) for t in texts]
        windows = text_windows(self.encoder.tokenizer, [[w.text for w in ws] for ws in words], self.encoder.max_length)
        outputs: list[dict[str, list[WindowOutput]]] = [{n: [] for n in names} for _ in texts]
        pad_id = self.encoder.tokenizer.pad_token_id or 0
        lengths = [len(w.input_ids) for w in windows]
        with (
            eval_mode(self),
            precision_context(self.device, precision),
            self.encoder.row_context(batch_invariant),
        ):
            runner = inference_copy(self, precision)
            for batch in self.encoder.plan_batches(lengths, max_tokens, batch_size, precision, batch_invariant):
                rows = [{"input_ids": windows[k].input_ids, "attention_mask": [1] * lengths[k]} for k in batch]
                inputs = pad_batch(rows, pad_id, invariant=batch_invariant)
                out = runner(inputs["input_ids"].to(self.device), inputs["attention_mask"].to(self.device), tasks=names)
                logits = {n: out.logits[n].float().cpu() for n in names}
                for row, k in enumerate(batch):
                    for n in names:
                        outputs[windows[k].text_index][n].append(WindowOutput(windows[k], logits[n][row]))
        for per_text in outputs:  # windows in text order, whatever order the batches ran in
            for window_outputs in per_text.values():
                window_outputs.sort(key=lambda o: o.window.first_word)
        if long_texts is None:  # the default: the first window, and say so
            self._warn_first_window_only(outputs, names)
        read: LongTexts = long_texts or "truncate"
        return [
            {n: self.task_types[n].decode(text, words[i], outputs[i][n], read) for n in names}
            for i, text in enumerate(texts)
        ]

    def similarity(self, texts_a: Sequence[str], texts_b: Sequence[str], **encode_kwargs) -> np.ndarray:
        """The cosine similarity of each pair (texts_a[i], texts_b[i]), in [-1, 1]: what a similarity task scores.

        A sentence_similarity task has no head of its own (it trains the shared sentence embedding), so its answer
        is the cosine of the two texts' normalised embeddings; `encode_kwargs` go to `encode`.
        """
        texts_a, texts_b = check_sentences(texts_a, "texts_a"), check_sentences(texts_b, "texts_b")
        if len(texts_a) != len(texts_b):
            raise ValueError(f"texts_a has {len(texts_a)} texts but texts_b has {len(texts_b)}; expected pairs")
        encode_kwargs.update(normalize=True, convert_to_numpy=True)
        embeddings = self.encoder.encode([*texts_a, *texts_b], **encode_kwargs)
        first, second = embeddings[: len(texts_a)], embeddings[len(texts_a) :]
        return np.clip((first * second).sum(axis=1), -1.0, 1.0)

    def _warn_first_window_only(self, outputs: list[dict[str, list[WindowOutput]]], names: list[str]) -> None:
        """One warning per call when sentence-level answers read only the first window of some texts."""
        partial = [n for n in names if not self.task_types[n].reads_all_windows]
        if not partial:
            return
        long = sum(len(per_text[partial[0]]) > 1 for per_text in outputs)
        if long:
            warnings.warn(
                f"{long} of {len(outputs)} texts are longer than {self.encoder.max_length} sub-words: tasks "
                f"{', '.join(partial)} read only their first window; pass long_texts='mean' to average over "
                "every window",
                stacklevel=5,  # past one_or_many, torch.inference_mode and predict/encode: the caller's line
            )

    # ---------------------------------------------------------------- persistence
    def save_pretrained(self, path: str | Path, write_extra: Callable[[Path], None] | None = None) -> Path:
        """Write config.json, model.safetensors and the tokenizer files (and `write_extra`'s), atomically."""
        state = self.encoder.checkpoint_tensors(self.state_dict(), prefix=ENCODER_PREFIX)
        return write_model_dir(
            path, self.config, state, self.encoder.save_tokenizer, self.encoder.int8_calibration, write_extra
        )

    @classmethod
    def from_pretrained(
        cls, path: str | Path = DEFAULT_MODEL, device: str | torch.device | None = None, merge_adapter: bool = True
    ) -> MultiTaskModel:
        """Load an mtsent directory; a plain Hugging Face / sentence-transformers model gives an encoder only.

        'default' is the model that ships in the package: NER (CoNLL-2003 types), sentiment (SST-2), topic
        (AG News) and similarity on one encoder. An adapter (mtsent.adapters) is merged into the weights unless
        `merge_adapter=False` (to go on training it).
        """
        path = resolve_model_name(path)
        kind, where = locate_model(path)
        if kind != "mtsent":
            return cls(SentenceEncoder.from_pretrained(path, device=device), [])
        config, tensors = read_model_dir(where)
        model = cls(SentenceEncoder.from_config(config, where, device="cpu"), config.tasks)
        tensors = model.encoder.expand_delta(tensors, config.encoder.delta, where)
        frozen = {ENCODER_PREFIX + k for k in model.encoder.frozen_base_keys()}
        model = load_weights(model, tensors, where, device, from_base=frozen)
        model.encoder.int8_calibration = load_calibration(where)
        if merge_adapter:
            model.encoder.merge_adapter()
        return model

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
