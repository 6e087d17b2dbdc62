"""Model cards: the README.md (Hugging Face format) of every saved or exported model directory.

A card is rendered from records, never written by hand: the model's config.json (tasks, labels, encoder), the
`metrics.json` a trainer writes next to a best checkpoint (dev metrics; its file date is the evaluation date),
`evaluations.jsonl` (what `mtsent evaluate --update-card` measured) and, for checkpoints inside a run
directory, the run's `config.yaml` (training config and data) and `summary.json` (data sizes, machine).
"""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path

import yaml

from mtsent.config import DEFAULT_BACKBONE, ModelConfig

__all__ = ["CARD_NAME", "EVALUATIONS_NAME", "machine_description", "record_evaluation", "write_model_card"]

CARD_NAME = "README.md"
EVALUATIONS_NAME = "evaluations.jsonl"
METRICS_NAME = "metrics.json"
_DEFAULT_BACKBONE_ID = "sentence-transformers/all-MiniLM-L6-v2"
# library_name and pipeline tag of each directory format, as the Hugging Face hub knows them
_FORMATS = {
    "mtsent": ("mtsent", None),
    "sentence-transformers": ("sentence-transformers", "sentence-similarity"),
    "transformers": ("transformers", "token-classification"),
    "onnx": ("onnx", "feature-extraction"),
}


def machine_description() -> str:
    """The machine a measurement ran on, as cards and records state it."""
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    return f"{platform.platform()}, {platform.machine()}, {device}, {torch.get_num_threads()} torch threads"


def _run_dir(model_dir: Path) -> Path | None:
    """The training run a checkpoint belongs to: its parent, when that holds the trainer's records."""
    parent = model_dir.parent
    return parent if (parent / "config.yaml").is_file() and (parent / "metrics.jsonl").is_file() else None


def _read_json(file: Path) -> dict | None:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _date(file: Path) -> str:
    return datetime.fromtimestamp(file.stat().st_mtime, tz=UTC).strftime("%Y-%m-%d")


def _datasets(run_config: dict | None) -> list[str]:
    """Dataset names from the run's data config: the hub name, else the first folder of the data path."""
    names: list[str] = []
    for task in (run_config or {}).get("tasks", {}).values():
        data = task.get("data", {})
        name = data.get("hf_name") or next((Path(data[k]).parts[0] for k in ("train", "path") if data.get(k)), None)
        if name and name not in names:
            names.append(name)
    return names


def _metric_rows(metrics: dict[str, dict]) -> list[str]:
    rows = ["| task | main | accuracy / precision | macro-F1 / recall | F1 |", "|---|---|---|---|---|"]
    for task, m in metrics.items():
        first, second = (
            (m.get("accuracy"), m.get("macro_f1")) if "accuracy" in m else (m.get("precision"), m.get("recall"))
        )
        cells = [m.get("main"), first, second, m.get("f1", m.get("macro_f1"))]
        rows.append(f"| {task} | " + " | ".join("" if v is None else f"{v:.4f}" for v in cells) + " |")
    return rows


def _front_matter(config: ModelConfig, fmt: str, datasets: list[str], metric_names: list[str]) -> str:
    library, pipeline_tag = _FORMATS[fmt]
    types = {t.type for t in config.tasks}
    tags = ["mtsent", "sentence-embeddings", "multi-task"]
    tags += ["token-classification"] if "token_classification" in types else []
    tags += ["text-classification"] if "sentence_classification" in types else []
    meta: dict = {"library_name": library, "tags": tags}
    if config.encoder.backbone == DEFAULT_BACKBONE:
        meta["base_model"] = _DEFAULT_BACKBONE_ID
    if pipeline_tag:
        meta["pipeline_tag"] = pipeline_tag
    if datasets:
        meta["datasets"] = datasets
    if metric_names:
        meta["metrics"] = metric_names
    return "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n"


def _loading(fmt: str, name: str) -> list[str]:
    """How to load this directory, then how to turn the mtsent original into each other format."""
    snippets = {
        "mtsent": [
            "```python",
            "from mtsent import MultiTaskModel",
            f'model = MultiTaskModel.from_pretrained("{name}")',
            'model.predict(["Ada Lovelace lived in London."])',
            "```",
            f'Command line: `mtsent predict -m {name} "Ada Lovelace lived in London."`.',
        ],
        "sentence-transformers": [
            "```python",
            "from sentence_transformers import SentenceTransformer",
            f'SentenceTransformer("{name}").encode(["Ada Lovelace lived in London."])',
            "```",
            f'mtsent reads it back as an encoder: `SentenceEncoder("{name}")`.',
        ],
        "transformers": [
            "```python",
            "from transformers import pipeline",
            f'ner = pipeline("token-classification", model="{name}", aggregation_strategy="first")',
            'ner("Ada Lovelace lived in London.")',
            "```",
        ],
        "onnx": [
            "```python",
            "import numpy as np, onnxruntime as ort",
            "from tokenizers import Tokenizer",
            f'tok = Tokenizer.from_file("{name}/tokenizer.json")',
            f'session = ort.InferenceSession("{name}/model.onnx")',
            'enc = tok.encode("Ada Lovelace lived in London.")',
            'feeds = {"input_ids": np.array([enc.ids]), "attention_mask": np.array([enc.attention_mask])}',
            "outputs = session.run(None, feeds)  # names and shapes: export.json",
            "```",
        ],
    }
    lines = snippets[fmt]
    if fmt == "mtsent":
        lines += [
            "",
            "Other formats (see docs/export.md for what maps exactly):",
            "",
            f"- sentence-transformers: `mtsent export {name} --to sentence-transformers OUT_DIR`",
            f"- transformers, one token task: `mtsent export {name} --to transformers OUT_DIR --task NAME`",
            f"- ONNX, every head in one graph: `mtsent export {name} --to onnx OUT_DIR`",
        ]
    return lines


def render_model_card(
    config: ModelConfig,
    records_dir: Path | None,
    display_name: str,
    fmt: str = "mtsent",
    measured_here: bool = False,
    source: str = "",
) -> str:
    """The card's Markdown for the directory `display_name`.

    `records_dir` holds metrics.json / evaluations.jsonl (the mtsent model directory, or its temporary twin while
    it is being saved; None when there are no records); `measured_here` says its metrics.json was written by this
    process, on this machine.
    """
    run = _run_dir(records_dir) if records_dir is not None else None
    run_config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) if run else None
    summary = _read_json(run / "summary.json") if run else None
    best = _read_json(records_dir / METRICS_NAME) if records_dir is not None else None
    evaluations = _evaluations(records_dir) if records_dir is not None else []
    metric_names = sorted(
        {"accuracy" if "accuracy" in m else "f1" for m in ((best or {}).get("metrics") or {}).values()}
        | {"accuracy" if "accuracy" in e["metrics"] else "f1" for e in evaluations}
    )
    name = (run_config or {}).get("name") or Path(display_name).name
    e = config.encoder
    backbone = f"packaged {_DEFAULT_BACKBONE_ID}" if e.backbone == DEFAULT_BACKBONE else e.backbone
    lines = [_front_matter(config, fmt, _datasets(run_config), metric_names), f"# {name}", ""]
    lines += [
        f"A multi-task sentence transformer trained with mtsent: one shared encoder ({backbone} backbone, "
        f"{e.pooling} pooling{f', projection to {e.projection_dim}' if e.projection_dim else ''}, "
        f"{'L2-normalised' if e.normalize else 'unnormalised'} embeddings, at most {e.max_length} sub-words per "
        f"input) and {len(config.tasks)} task head(s).",
        "",
    ]
    if e.adapter is not None and e.adapter.origin == "compressed":
        embeddings = f", the word embeddings' at rank {e.adapter.embedding_r}" if e.adapter.embedding_r else ""
        lines += [
            "The backbone was fine-tuned fully, then compressed (`mtsent compress`): this directory holds a LoRA "
            f"adapter with the top singular directions of each linear weight's change (rank {e.adapter.r}"
            f"{embeddings}), the fine-tuned biases, the pooling/projection layers and the heads; layer norms and "
            "position embeddings are the backbone's. mtsent reads the backbone's weights from the backbone named "
            "above (checked against a SHA-256 recorded here) and merges the adapter into them at load.",
            "",
        ]
    elif e.delta is not None:
        lines += [
            "The backbone was fine-tuned fully, then compressed (`mtsent compress`): this directory holds each "
            f"weight matrix's change from the backbone quantised to {e.delta.bits} bits per value (the word "
            f"embeddings' to {e.delta.embedding_bits}), one float16 scale per {e.delta.group_size} values, the "
            "fine-tuned biases and layer norms whole, the pooling/projection layers and the heads. mtsent reads the "
            "backbone's weights from the backbone named above (checked against a SHA-256 recorded here) and adds "
            "the change back at load. Dev metrics shown below, if any, were measured before compression.",
            "",
        ]
    elif e.adapter is not None:
        targets = e.adapter.target_modules
        targets = targets if isinstance(targets, str) else ", ".join(targets)
        lines += [
            f"The backbone was not fine-tuned itself: a LoRA adapter (rank {e.adapter.r}, alpha {e.adapter.alpha:g}, "
            f"on {targets}"
            f"{', biases trained' if e.adapter.train_biases else ''}) was. This directory holds only the adapter, the "
            "pooling/projection layers and the heads; mtsent reads the backbone's weights from the backbone named "
            "above (checked against a SHA-256 recorded here) and merges the adapter into them at load.",
            "",
        ]
    if fmt != "mtsent":
        lines += [f"This directory is the {fmt} export of the mtsent model `{source}`.", ""]
    lines += ["## Tasks", ""]
    if config.tasks:
        lines += ["| task | type | labels | head |", "|---|---|---|---|"]
        for t in config.tasks:
            head = f"hidden layer {t.hidden_dim}" if t.hidden_dim else "linear"
            lines.append(f"| {t.name} | {t.type} | {', '.join(t.labels)} | {head}, dropout {t.dropout} |")
    else:
        lines.append("No task heads: this model is a sentence encoder only.")
    lines += ["", "## Training data", ""]
    if run_config:
        for task_name, task in run_config.get("tasks", {}).items():
            data = task.get("data", {})
            where = data.get("hf_name") or ", ".join(f"{k}: {data[k]}" for k in ("train", "dev", "path") if data.get(k))
            sizes = ((summary or {}).get("data", {}).get(task_name) or {}).get("sizes")
            size_text = f" ({', '.join(f'{k} {v:,}' for k, v in sizes.items() if v)} examples)" if sizes else ""
            lines.append(f"- {task_name}: {data.get('format', '?')} data, {where}{size_text}")
        lines += ["", "## Training configuration", "", "```yaml", yaml.safe_dump(run_config, sort_keys=False).rstrip()]
        lines += ["```"]
    else:
        lines.append("Not recorded: this directory was not saved by a training run.")
    lines += ["", "## Dev metrics", ""]
    if best and best.get("metrics"):
        if summary and summary.get("machine"):
            m = summary["machine"]
            machine = f"{m.get('platform')}, {m.get('processor') or 'unknown processor'}"
        else:
            machine = machine_description() if measured_here else "not recorded"
        lines += [
            f"Measured on the dev split at training step {best.get('step')} on {_date(records_dir / METRICS_NAME)}, "
            f"machine: {machine}. Main metric: accuracy for sentence tasks, entity-level F1 (seqeval) for token tasks.",
            "",
            *_metric_rows(best["metrics"]),
        ]
    else:
        lines.append("No dev metrics were recorded with this checkpoint.")
    if evaluations:
        lines += ["", "## Further evaluations", "", "| date | task | file | main | machine |", "|---|---|---|---|---|"]
        for r in evaluations:
            lines.append(f"| {r['date']} | {r['task']} | {r['file']} | {r['metrics']['main']:.4f} | {r['machine']} |")
    lines += [
        "",
        "## Intended use and limits",
        "",
        "- Sentence embeddings for search, clustering and similarity, and the listed tasks with exactly the listed "
        "labels; anything else needs new training.",
        f"- Inputs longer than {e.max_length} sub-words are truncated for embeddings; `predict` cuts long texts into "
        "overlapping windows so that every word is tagged.",
        "- The metrics above are dev-split numbers of the training data; expect lower scores on text unlike it "
        "(other domains, other languages, noisy text).",
    ]
    if e.backbone == DEFAULT_BACKBONE:
        lines.append(f"- The backbone ({_DEFAULT_BACKBONE_ID}) was trained on English text.")
    lines += ["", "## How to load", "", *_loading(fmt, display_name), ""]
    return "\n".join(lines)


def _evaluations(model_dir: Path) -> list[dict]:
    file = model_dir / EVALUATIONS_NAME
    if not file.is_file():
        return []
    return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_model_card(
    target_dir: Path,
    config: ModelConfig,
    *,
    records_dir: Path | None,
    display_name: str | None = None,
    fmt: str = "mtsent",
    measured_here: bool = False,
    source: str = "",
) -> Path:
    """Write README.md into `target_dir` (atomically: a reader never sees half a card).

    `records_dir` is where the records are read (None: the card describes the config only), `display_name` the
    directory's final path (default `target_dir`).
    """
    card = render_model_card(config, records_dir, display_name or str(target_dir), fmt, measured_here, source)
    file = target_dir / CARD_NAME
    tmp = file.with_name(f".{CARD_NAME}.tmp-{os.getpid()}")
    tmp.write_text(card, encoding="utf-8")
    os.replace(tmp, file)
    return file


def record_evaluation(model_dir: Path, config: ModelConfig, task: str, data_file: Path, metrics: dict) -> Path:
    """Append an evaluation (date, machine, file, scalar metrics) to the model's records and re-render its card."""
    record = {
        "date": datetime.now(tz=UTC).strftime("%Y-%m-%d"),
        "machine": machine_description(),
        "task": task,
        "file": str(data_file),
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
    }
    with open(model_dir / EVALUATIONS_NAME, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    return write_model_card(model_dir, config, records_dir=model_dir)
