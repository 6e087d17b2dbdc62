"""The multi-task model: one shared encoder, any number of named task heads, one forward pass for all.

`predict` answers every requested task for raw texts: a label with every label's probability for sentence tasks,
entity spans with character offsets for token tasks. Texts longer than the backbone's limit are cut into
overlapping windows of whole words, so every word still gets a tag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mtsent.checkpoint import is_mtsent_dir, read_model_dir, write_model_dir
from mtsent.config import HeadConfig, ModelConfig
from mtsent.encoder import SentenceEncoder, eval_mode, precision_context
from mtsent.heads import build_head
from mtsent.inference import DEFAULT_MAX_TOKENS, inference_copy
from mtsent.inputs import check_sentences
from mtsent.spans import EntitySpan, Word, entity_spans, split_words

__all__ = ["MultiTaskModel", "MultiTaskOutput", "SentencePrediction", "TokenPrediction", "word_windows"]


@dataclass
class SentencePrediction:
    """A sentence task's answer: the best label, its probability and every label's probability."""

    label: str
    score: float
    scores: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TokenPrediction:
    """A token task's answer: entity spans, plus the words and the tag each received."""

    entities: list[EntitySpan]
    words: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"entities": [e.to_dict() for e in self.entities], "words": self.words, "tags": self.tags}


@dataclass
class MultiTaskOutput:
    """A forward pass: the encoder's outputs and one logits tensor per requested task."""

    sentence_embedding: Tensor
    token_embeddings: Tensor
    logits: dict[str, Tensor]


def word_windows(piece_counts: Sequence[int], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Cut words (given their sub-word counts) into [start, end) windows of at most `budget` sub-words.

    Consecutive windows share up to `overlap` sub-words of whole words, so words near a cut see context on both
    sides in one of the windows. A single word longer than the budget gets a window of its own (truncated).
    """
    n = len(piece_counts)
    if n == 0:
        return [(0, 0)]
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end, used = start, 0
        while end < n and used + piece_counts[end] <= budget:
            used += piece_counts[end]
            end += 1
        end = max(end, start + 1)
        windows.append((start, end))
        if end >= n:
            return windows
        nxt, back = end, 0
        while (
            nxt - 1 > start
            and back + piece_counts[nxt - 1] <= overlap
            and back + piece_counts[nxt - 1] + piece_counts[end] <= budget  # the next window must add a word
        ):
            nxt -= 1
            back += piece_counts[nxt]
        start = nxt


@dataclass
class _Window:
    text_index: int
    first_word: int
    input_ids: list[int]
    word_ids: list[int | None]


class MultiTaskModel(nn.Module):
    """A SentenceEncoder shared by named heads; the heads are declared by HeadConfig objects or dicts."""

    def __init__(self, encoder: SentenceEncoder | None = None, tasks: Sequence[HeadConfig | dict] = ()) -> None:
        super().__init__()
        self.encoder = encoder if encoder is not None else SentenceEncoder()
        self.tasks: dict[str, HeadConfig] = {}
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
        return cls(encoder, config.tasks)

    def add_task(self, task: HeadConfig | dict) -> None:
        """Add a freshly initialised head; its name must be new."""
        task = task if isinstance(task, HeadConfig) else HeadConfig.model_validate(task)
        if task.name in self.tasks:
            raise ValueError(f"task {task.name!r} already exists")
        self.tasks[task.name] = task
        head = build_head(task, self.encoder.dim, self.encoder.hidden_size)
        self.heads[task.name] = head.to(self.encoder.device)

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
        """The requested task names (all when None), or a ValueError listing the valid ones."""
        if tasks is None:
            return list(self.tasks)
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
        enc = self.encoder(input_ids, attention_mask, token_type_ids)
        logits = {}
        for name in names:
            features = enc.token_embeddings if self.tasks[name].type == "token_classification" else enc.pooled
            logits[name] = self.heads[name](features)
        return MultiTaskOutput(enc.sentence_embedding, enc.token_embeddings, logits)

    def encode(self, sentences: Sequence[str], **kwargs) -> np.ndarray | Tensor:
        """Sentence embeddings from the shared encoder (see SentenceEncoder.encode)."""
        return self.encoder.encode(sentences, **kwargs)

    # ---------------------------------------------------------------- prediction
    def _windows(self, words: list[list[Word]]) -> list[_Window]:
        tok = self.encoder.tokenizer
        budget = self.encoder.max_length - tok.num_special_tokens_to_add(pair=False)
        pieces = tok(
            [[w.text for w in ws] for ws in words], is_split_into_words=True, add_special_tokens=False, verbose=False
        )
        spans: list[tuple[int, int, int]] = []
        for i, ws in enumerate(words):
            counts = [0] * len(ws)
            for w in pieces.word_ids(i):
                if w is not None:
                    counts[w] += 1
            spans += [(i, s, e) for s, e in word_windows(counts, budget, overlap=budget // 4)]
        enc = tok(
            [[w.text for w in words[i][s:e]] for i, s, e in spans],
            is_split_into_words=True,
            truncation=True,
            max_length=self.encoder.max_length,
        )
        return [_Window(i, s, enc["input_ids"][k], enc.word_ids(k)) for k, (i, s, _) in enumerate(spans)]

    @torch.inference_mode()
    def predict(
        self,
        texts: Sequence[str],
        tasks: Sequence[str] | None = None,
        batch_size: int | None = None,
        precision: str = "auto",
        max_tokens: int | None = DEFAULT_MAX_TOKENS,
    ) -> list[dict[str, SentencePrediction | TokenPrediction]]:
        """Answer the requested tasks (default: all) for each text, in input order.

        Batching (`batch_size`, `max_tokens`) and `precision` work as in `SentenceEncoder.encode`: one pass of the
        shared encoder per batch answers every task.
        """
        texts = check_sentences(texts, "texts")
        names = self.check_tasks(tasks)
        if not names:
            raise ValueError("this model has no task heads to predict with; use encode() for embeddings")
        words = [split_words(t) for t in texts]
        windows = self._windows(words)
        sentence_probs: dict[str, list[Tensor | None]] = {}
        token_sums: dict[str, list[Tensor]] = {}
        token_counts = [torch.zeros(len(ws)) for ws in words]
        for n in names:
            if self.tasks[n].type == "token_classification":
                token_sums[n] = [torch.zeros(len(ws), len(self.tasks[n].labels)) for ws in words]
            else:
                sentence_probs[n] = [None] * len(texts)
        pad_id = self.encoder.tokenizer.pad_token_id or 0
        lengths = [len(w.input_ids) for w in windows]
        with eval_mode(self), precision_context(self.device, precision):
            runner = inference_copy(self, precision)
            for batch in SentenceEncoder._batches(lengths, batch_size, max_tokens):
                width = max(lengths[k] for k in batch)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, k in enumerate(batch):
                    ids[row, : lengths[k]] = torch.tensor(windows[k].input_ids)
                    mask[row, : lengths[k]] = 1
                out = runner(ids.to(self.device), mask.to(self.device), tasks=names)
                probs = {n: torch.softmax(out.logits[n].float(), dim=-1).cpu() for n in names}
                for row, k in enumerate(batch):
                    win = windows[k]
                    for n in sentence_probs:
                        if win.first_word == 0:
                            sentence_probs[n][win.text_index] = probs[n][row]
                    firsts = [
                        (pos, win.first_word + w)
                        for pos, w in enumerate(win.word_ids)
                        if w is not None and (pos == 0 or win.word_ids[pos - 1] != w)
                    ]
                    if not firsts:
                        continue
                    pos_idx = torch.tensor([p for p, _ in firsts])
                    word_idx = torch.tensor([w for _, w in firsts])
                    token_counts[win.text_index].index_add_(0, word_idx, torch.ones(len(firsts)))
                    for n, sums in token_sums.items():
                        sums[win.text_index].index_add_(0, word_idx, probs[n][row, pos_idx])
        results: list[dict[str, SentencePrediction | TokenPrediction]] = []
        for i, text in enumerate(texts):
            answer: dict[str, SentencePrediction | TokenPrediction] = {}
            for n in names:
                labels = self.tasks[n].labels
                if n in sentence_probs:
                    p = sentence_probs[n][i]
                    best = int(p.argmax())
                    answer[n] = SentencePrediction(labels[best], float(p[best]), dict(zip(labels, p.tolist())))
                    continue
                counts = token_counts[i].clamp(min=1).unsqueeze(-1)
                avg = token_sums[n][i] / counts
                unseen = token_counts[i] == 0  # a word the tokenizer turned into no sub-word at all
                best = avg.argmax(dim=-1)
                tags = ["O" if unseen[j] else labels[int(best[j])] for j in range(len(words[i]))]
                scores = [1.0 if unseen[j] else float(avg[j, best[j]]) for j in range(len(words[i]))]
                answer[n] = TokenPrediction(
                    entities=entity_spans(text, words[i], tags, scores),
                    words=[w.text for w in words[i]],
                    tags=tags,
                )
            results.append(answer)
        return results

    # ---------------------------------------------------------------- persistence
    def save_pretrained(self, path: str | Path, write_extra: Callable[[Path], None] | None = None) -> Path:
        """Write config.json, model.safetensors and the tokenizer files (and `write_extra`'s), atomically."""
        return write_model_dir(
            path, self.config, self.state_dict(), self.encoder.tokenizer.save_pretrained, write_extra
        )

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device | None = None) -> MultiTaskModel:
        """Load an mtsent directory; a plain Hugging Face / sentence-transformers model gives an encoder only."""
        if not is_mtsent_dir(path):
            return cls(SentenceEncoder(str(path), device=device), [])
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        config, tensors = read_model_dir(path)
        backbone_cfg = dict(config.backbone_config)
        model_type = backbone_cfg.pop("model_type", None)
        if not model_type:
            raise ValueError(f"{Path(path) / 'config.json'}: backbone_config has no model_type")
        backbone = AutoModel.from_config(AutoConfig.for_model(model_type, **backbone_cfg))
        if getattr(backbone, "pooler", None) is not None:
            backbone.pooler = None
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: the tokenizer files are missing or broken: {exc}") from exc
        encoder = SentenceEncoder.from_parts(config.encoder, backbone, tokenizer, device="cpu")
        model = cls(encoder, config.tasks)
        try:
            model.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise ValueError(f"{path}: model.safetensors does not match config.json: {exc}") from exc
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return model.to(device).eval()

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
