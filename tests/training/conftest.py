"""Fixtures for the training tests: a tiny random BERT backbone, tiny task data and config factories.

The backbone (2 layers, hidden size 32, the packaged MiniLM tokenizer) is built once per session, so a
training step costs milliseconds and a whole Trainer run about a second even on a busy 2-core machine.
"""

from __future__ import annotations

import copy
import io
import random
from pathlib import Path

import pytest
import torch
from rich.console import Console

NER_TAGS = ["O", "B-PER", "I-PER", "B-LOC"]

_PEOPLE = [["Anna", "Smith"], ["John", "Brown"], ["Maria", "Lopez"], ["Peter", "Jones"], ["Lena", "Berg"]]
_PLACES = ["Paris", "Berlin", "Madrid", "Oslo", "Rome"]
_VERBS = ["visited", "left", "loves", "saw"]
_POSITIVE = ["good", "great", "excellent", "wonderful", "superb", "lovely"]
_NEGATIVE = ["bad", "awful", "terrible", "horrible", "dreadful", "poor"]
_FILLER = ["the", "film", "was", "really", "very", "food", "service", "and"]
_TOPICS = {
    "sports": ["football", "match", "goal", "team", "coach", "league"],
    "tech": ["software", "computer", "chip", "internet", "robot", "code"],
}


def _sentiment_rows(n: int, rng: random.Random) -> list[tuple[str, str]]:
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        words = _POSITIVE if label == "positive" else _NEGATIVE
        text = " ".join([*rng.sample(_FILLER, 2), *rng.sample(words, 2), rng.choice(_FILLER)])
        rows.append((text, label))
    return rows


def _topic_rows(n: int, rng: random.Random) -> list[tuple[str, str]]:
    rows = []
    for i in range(n):
        label = "sports" if i % 2 == 0 else "tech"
        text = " ".join([rng.choice(_FILLER), *rng.sample(_TOPICS[label], 3)])
        rows.append((text, label))
    return rows


def _ner_sentences(n: int, rng: random.Random) -> list[list[tuple[str, str]]]:
    sentences = []
    for _ in range(n):
        first, last = rng.choice(_PEOPLE)
        sentences.append(
            [(first, "B-PER"), (last, "I-PER"), (rng.choice(_VERBS), "O"), (rng.choice(_PLACES), "B-LOC"), (".", "O")]
        )
    return sentences


def _sts_rows(n: int, rng: random.Random) -> list[tuple[str, str, float]]:
    """Pairs of toy texts: two of the same topic score 4-5, two of different topics 0-1 (STS-B's 0-5 scale)."""
    texts = _topic_rows(2 * n, rng)
    rows = []
    for (a, label_a), (b, label_b) in zip(texts[::2], texts[1::2]):
        if rng.random() < 0.5:
            b, label_b = next((t, y) for t, y in texts if y == label_a and t != a)
        score = rng.uniform(4, 5) if label_a == label_b else rng.uniform(0, 1)
        rows.append((a, b, round(score, 2)))
    return rows


def _write_tsv(path: Path, rows: list[tuple[str, str]]) -> None:
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")


def _write_conll(path: Path, sentences: list[list[tuple[str, str]]]) -> None:
    path.write_text("".join("".join(f"{w} {t}\n" for w, t in s) + "\n" for s in sentences), encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """sentiment.{train,dev}.tsv, topic.{train,dev}.tsv, ner.{train,dev}.conll (and an unseen ner.test.conll),
    sts.{train,dev}.tsv (scored pairs in STS-B's layout)."""
    path = tmp_path_factory.mktemp("tiny_data")
    rng = random.Random(7)
    _write_tsv(path / "sentiment.train.tsv", _sentiment_rows(48, rng))
    _write_tsv(path / "sentiment.dev.tsv", _sentiment_rows(16, rng))
    _write_tsv(path / "topic.train.tsv", _topic_rows(40, rng))
    _write_tsv(path / "topic.dev.tsv", _topic_rows(12, rng))
    _write_conll(path / "ner.train.conll", _ner_sentences(40, rng))
    _write_conll(path / "ner.dev.conll", _ner_sentences(12, rng))
    _write_conll(path / "ner.test.conll", _ner_sentences(10, rng))
    _write_tsv(path / "sentiment.test.tsv", _sentiment_rows(10, rng))
    for split, n in (("train", 40), ("dev", 16)):  # GLUE STS-B layout: no header, texts in columns 7 and 8
        rows = _sts_rows(n, rng)
        text = "".join(f"{i}\tg\tg\t2012\t{i}\tnone\tnone\t{a}\t{b}\t{y}\n" for i, (a, b, y) in enumerate(rows))
        (path / f"sts.{split}.tsv").write_text(text, encoding="utf-8")
    return path


def _tsv_task(name: str) -> dict:
    return {
        "type": "sentence_classification",
        "data": {
            "format": "tsv",
            "train": f"{name}.train.tsv",
            "dev": f"{name}.dev.tsv",
            "header": True,
            "text_column": "text",
            "label_column": "label",
        },
    }


STS_COLUMNS = {"header": False, "quoted": False, "text_column": 7, "text_pair_column": 8, "label_column": 9}


def base_config(backbone: Path, data_dir: Path, output: Path, tasks: tuple[str, ...] = ("sentiment", "topic", "ner")):
    """A complete, fast, deterministic (fp32) config dict; tests deep-copy and adjust it."""
    all_tasks = {
        "sentiment": _tsv_task("sentiment"),
        "topic": _tsv_task("topic"),
        "ner": {
            "type": "token_classification",
            "data": {"format": "conll", "train": "ner.train.conll", "dev": "ner.dev.conll"},
        },
        "sts": {
            "type": "sentence_similarity",
            "data": {"format": "tsv", "train": "sts.train.tsv", "dev": "sts.dev.tsv", **STS_COLUMNS},
        },
    }
    return {
        "name": "tiny",
        "model": {"backbone": str(backbone), "max_length": 32},
        "data_dir": str(data_dir),
        "tasks": {name: all_tasks[name] for name in tasks},
        "training": {
            "seed": 3,
            "batch_size": 8,
            "max_steps": 6,
            "precision": "fp32",
            "max_length": 32,
            "log_every": 2,
            "num_threads": 1,
        },
        "optim": {"learning_rate": 1e-3, "head_learning_rate": 1e-2, "warmup_steps": 0},
        "sampling": {"strategy": "round_robin"},
        "evaluation": {"every_steps": 3, "batch_size": 64},
        "output": {"dir": str(output), "plots": False},
    }


@pytest.fixture
def make_config(tiny_backbone, tiny_data, tmp_path):
    """`make_config(run_dir=None, tasks=(...), **sections)`: the base config, each given section merged in."""

    def make(run_dir: Path | None = None, tasks: tuple[str, ...] = ("sentiment", "topic", "ner"), **sections) -> dict:
        raw = base_config(tiny_backbone, tiny_data, run_dir or tmp_path / "run", tasks)
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(raw.get(key), dict):
                raw[key] = {**raw[key], **copy.deepcopy(value)}
            else:
                raw[key] = copy.deepcopy(value)
        return raw

    return make


def quiet_console() -> tuple[Console, io.StringIO]:
    """A rich console writing to a string (wide, so log lines are not wrapped)."""
    buffer = io.StringIO()
    return Console(file=buffer, width=200, force_terminal=False, color_system=None), buffer


@pytest.fixture
def train():
    """`train(config, **trainer_kwargs)` -> (trainer, summary, console text); progress bar off, console captured."""
    from mtsent.training import Trainer

    def run(config, **kwargs):
        console, buffer = quiet_console()
        trainer = Trainer(config, show_progress=False, console=console, **kwargs)
        summary = trainer.fit()
        return trainer, summary, buffer.getvalue()

    return run


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Trainer runs set torch's thread count (training.num_threads); put it back for other test modules."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def console_buffer():
    """A (console, buffer) pair: pass the console to a Trainer and read what it printed from the buffer."""
    return quiet_console()


@pytest.fixture
def initial_weights(monkeypatch):
    """Records a copy of each model's weights right after the Trainer builds it (a list, one dict per fit)."""
    from mtsent.training.trainer import Trainer

    snapshots: list[dict[str, torch.Tensor]] = []
    original = Trainer._build_model

    def build_and_record(self, tasks, device):
        model = original(self, tasks, device)
        snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(Trainer, "_build_model", build_and_record)
    return snapshots


def load_weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(Path(directory) / "model.safetensors"))


@pytest.fixture
def weights_of():
    """`weights_of(checkpoint_dir)`: the tensors of a saved model directory."""
    return load_weights
