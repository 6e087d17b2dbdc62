"""Export an mtsent model to the formats other tools load: sentence-transformers, Hugging Face transformers, ONNX.

Each export is written into a temporary sibling directory and renamed into place only when complete, and each
refuses, before writing anything, what its format cannot represent exactly:

- sentence-transformers: the encoder (backbone, pooling, projection as Dense + LayerNorm + Dropout, Normalize).
  Learnable attention pooling has no sentence-transformers module and is refused.
- transformers: one token task as a `*ForTokenClassification` model (dropout + linear on the last hidden state,
  exactly mtsent's linear token head). Sentence tasks are refused: `*ForSequenceClassification` models classify
  the [CLS] vector through the backbone's pooler (dense + tanh), which mtsent's heads do not have.
- onnx: the whole model as one graph (inputs input_ids and attention_mask; outputs the sentence embedding and
  every head's logits), exported by torch.onnx and checked with onnxruntime before it is kept.

The exporters take an `nn.Module` whose weights are final: a model with adapters is merged before it is passed in.
"""

from __future__ import annotations

import copy
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from mtsent.checkpoint import atomic_directory, empty_target
from mtsent.encoder import SentenceEncoder
from mtsent.model import MultiTaskModel
from mtsent.model_card import write_model_card
from mtsent.st_format import check_st_exportable, write_st_dir

__all__ = ["FORMATS", "ONNX_META_NAME", "export_model", "to_onnx", "to_sentence_transformers", "to_transformers"]

FORMATS = ("sentence-transformers", "transformers", "onnx")
ONNX_META_NAME = "export.json"
TOLERANCE = 1e-4  # largest |difference| to PyTorch fp32 an export may show on the probe sentences
# probe inputs of different lengths: padding is exercised, and the ONNX graph is checked on a second shape
_PROBE = [
    "Ada Lovelace wrote the first program for Charles Babbage's Analytical Engine in London.",
    "It works.",
    "The European Commission said on Thursday it disagreed with German advice to consumers.",
]


def _as_model(model: MultiTaskModel | SentenceEncoder) -> MultiTaskModel:
    return model if isinstance(model, MultiTaskModel) else MultiTaskModel(model, [])


def _cpu_copy(model: MultiTaskModel) -> MultiTaskModel:
    """An fp32 CPU copy in eval mode: exporting must not move or retype the caller's model."""
    return copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()


def _card(model: MultiTaskModel, tmp: Path, out: Path, fmt: str, records_dir: str | Path | None) -> None:
    """The export's card: the source directory's records (metrics, run), this format's loading instructions."""
    records = Path(records_dir) if records_dir is not None else None
    source = str(records) if records is not None else "(in memory)"
    write_model_card(tmp, model.config, display_name=str(out), records_dir=records, fmt=fmt, source=source)


def to_sentence_transformers(
    model: MultiTaskModel | SentenceEncoder, out_dir: str | Path, *, records_dir: str | Path | None = None
) -> Path:
    """Write the encoder as a directory `SentenceTransformer(out_dir)` loads; task heads are not part of it.

    `records_dir` is the mtsent directory the model came from: its metrics go into the model card.
    """
    out = empty_target(out_dir, "export")
    mt = _as_model(model)
    check_st_exportable(mt.encoder)
    with atomic_directory(out) as tmp:
        write_st_dir(mt.encoder, tmp)
        _card(mt, tmp, out, "sentence-transformers", records_dir)
    return out


def to_transformers(
    model: MultiTaskModel, task: str, out_dir: str | Path, *, records_dir: str | Path | None = None
) -> Path:
    """Write one token task as an `AutoModelForTokenClassification` directory with its id2label / label2id."""
    from transformers import AutoModelForTokenClassification

    out = empty_target(out_dir, "export")
    (task,) = model.check_tasks([task])
    head_config = model.tasks[task]
    if head_config.type != "token_classification":
        raise ValueError(
            f"task {task!r} is a sentence task: transformers' *ForSequenceClassification models classify the [CLS] "
            f"vector through the backbone's pooler (dense + tanh), which mtsent's {model.encoder.config.pooling}-"
            "pooled head does not have, so no exact export exists; use --to onnx for sentence tasks"
        )
    if head_config.options.get("own_layers"):
        raise ValueError(
            f"task {task!r} reads the encoder through {head_config.options['own_layers']} layer(s) of its own: a "
            "*ForTokenClassification model has one stack of layers, so no exact export exists; use --to onnx"
        )
    if head_config.hidden_dim:
        raise ValueError(
            f"task {task!r} has a hidden layer ({head_config.hidden_dim}): a *ForTokenClassification model has one "
            "linear classifier, so no exact export exists; use --to onnx"
        )
    src = _cpu_copy(model)
    hf_config = copy.deepcopy(src.encoder.backbone.config)
    hf_config.id2label = dict(enumerate(head_config.labels))
    hf_config.label2id = {label: i for i, label in enumerate(head_config.labels)}
    if hasattr(hf_config, "classifier_dropout"):
        hf_config.classifier_dropout = head_config.dropout
    hf = AutoModelForTokenClassification.from_config(hf_config).eval()
    linear = src.heads[task].net[-1]
    classifier = getattr(hf, "classifier", None)
    if not isinstance(classifier, nn.Linear) or classifier.weight.shape != linear.weight.shape:
        raise ValueError(
            f"{type(hf).__name__} has no linear classifier on the last hidden state; this backbone cannot be "
            "exported to transformers exactly (use --to onnx)"
        )
    try:
        hf.base_model.load_state_dict(src.encoder.backbone.state_dict(), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{type(hf).__name__} does not take this backbone's weights one to one: {exc}") from exc
    classifier.load_state_dict(linear.state_dict())
    batch = src.encoder.tokenizer(_PROBE, padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = src(batch["input_ids"], batch["attention_mask"], tasks=[task]).logits[task]
        got = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    _check_close(got, expected, batch["attention_mask"], "transformers")
    with atomic_directory(out) as tmp:
        hf.save_pretrained(tmp)
        src.encoder.tokenizer.save_pretrained(tmp)
        _card(model, tmp, out, "transformers", records_dir)
    return out


def _check_close(got, expected, mask, fmt: str) -> float:
    """Largest |difference| over real (non-padding) positions; refuse the export above the tolerance."""
    got, expected = torch.as_tensor(got).float(), torch.as_tensor(expected).float()
    if got.dim() == 3:
        keep = torch.as_tensor(mask).bool()
        got, expected = got[keep], expected[keep]
    diff = float((got - expected).abs().max())
    if diff > TOLERANCE:
        raise ValueError(f"the {fmt} export differs from the mtsent model by {diff:.2e} (> {TOLERANCE}); not written")
    return diff


class _OnnxGraph(nn.Module):
    """The model as ONNX sees it: ids and mask in, a flat tuple (embedding, each head's logits) out.

    Tasks that answer one text have logits; a sentence-pair task (similarity) has none of its own: its answer is
    the cosine of two rows of `sentence_embedding`.
    """

    def __init__(self, model: MultiTaskModel) -> None:
        super().__init__()
        self.model = model
        self.names = model.check_tasks(None)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(input_ids, attention_mask)
        return (out.sentence_embedding, *(out.logits[n] for n in self.names))


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's chatter (a warning per missing torchvision operator, axis renaming notes): the
    export is checked against PyTorch with onnxruntime right after, which is what tells whether it worked."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        log.setLevel(level)


def to_onnx(
    model: MultiTaskModel | SentenceEncoder,
    out_dir: str | Path,
    *,
    opset: int | None = None,
    records_dir: str | Path | None = None,
) -> Path:
    """Write the whole model as model.onnx (+ tokenizer files + export.json describing inputs, outputs and opset).

    The graph is exported by torch.onnx (dynamo exporter), then run with onnxruntime on sentences of another
    batch size and length than the tracing ones; an export that differs from PyTorch fp32 by more than 1e-4 is
    not written.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError("ONNX export needs onnx, onnxscript and onnxruntime: pip install 'mtsent[export]'") from exc

    out = empty_target(out_dir, "export")
    mt = _as_model(model)
    graph = _OnnxGraph(_cpu_copy(mt)).eval()
    tokenizer = mt.encoder.tokenizer
    trace = tokenizer(_PROBE[:2], padding=True, return_tensors="pt")
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    output_names = ["sentence_embedding", *(f"logits_{n}" for n in graph.names)]
    with _quiet_exporter():
        program = torch.onnx.export(
            graph,
            (trace["input_ids"], trace["attention_mask"]),
            input_names=["input_ids", "attention_mask"],
            output_names=output_names,
            dynamic_shapes={"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}},
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    with atomic_directory(out) as tmp:
        program.save(str(tmp / "model.onnx"))
        tokenizer.save_pretrained(tmp)
        session = ort.InferenceSession(str(tmp / "model.onnx"), providers=["CPUExecutionProvider"])
        probe = tokenizer(_PROBE, padding=True, return_tensors="np")
        feeds = {k: probe[k].astype("int64") for k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            expected = graph(torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"]))
        diff = max(
            _check_close(got, ref, feeds["attention_mask"], "onnx")
            for got, ref in zip(session.run(output_names, feeds), expected)
        )
        heads = {f"logits_{n}": mt.tasks[n] for n in graph.names}
        meta = {
            "format": "onnx",
            "opset": program.model.opset_imports[""],
            "inputs": [{"name": i.name, "type": i.type, "shape": i.shape} for i in session.get_inputs()],
            "outputs": [
                {"name": o.name, "type": o.type, "shape": o.shape}
                | (
                    {"task": heads[o.name].name, "task_type": heads[o.name].type, "labels": heads[o.name].labels}
                    if o.name in heads
                    else {"normalized": mt.encoder.config.normalize}
                )
                for o in session.get_outputs()
            ],
            "max_length": mt.encoder.max_length,
            "pooling": mt.encoder.config.pooling,
            "checked_max_abs_diff": diff,
            "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__},
        }
        (tmp / ONNX_META_NAME).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        _card(mt, tmp, out, "onnx", records_dir)
    return out


def export_model(model_dir: str | Path, fmt: str, out_dir: str | Path, task: str | None = None) -> Path:
    """Export the mtsent model in `model_dir` to `fmt` (one of FORMATS); bad arguments fail before any loading."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if task is not None and fmt != "transformers":
        raise ValueError(f"--task applies to --to transformers only (the {fmt} export holds the whole model)")
    empty_target(out_dir, "export")
    from mtsent.checkpoint import is_mtsent_dir, resolve_model_name

    model_dir = Path(resolve_model_name(model_dir))

    if not model_dir.is_dir():
        raise FileNotFoundError(f"model directory not found: {model_dir}")
    if not is_mtsent_dir(model_dir):
        raise ValueError(f"{model_dir} is not an mtsent model directory (no config.json written by mtsent)")
    model = MultiTaskModel.from_pretrained(model_dir, device="cpu")
    if fmt == "sentence-transformers":
        return to_sentence_transformers(model, out_dir, records_dir=model_dir)
    if fmt == "onnx":
        return to_onnx(model, out_dir, records_dir=model_dir)
    if task is None:
        token_tasks = [n for n, t in model.tasks.items() if t.type == "token_classification"]
        if len(model.tasks) != 1:
            raise ValueError(
                "--to transformers exports one task: choose it with --task "
                f"(token tasks of this model: {', '.join(token_tasks) or 'none'})"
            )
        task = next(iter(model.tasks))
    return to_transformers(model, task, out_dir, records_dir=model_dir)
