"""Shared fixtures: the packaged encoder (loaded once) and a small saved multi-task model.

The heads of `tiny_model_dir` are untrained: tests use it for plumbing (shapes, save/load, serving), never for
accuracy.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.manual_seed(0)

NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
TINY_TASKS = [
    {"name": "sentiment", "type": "sentence_classification", "labels": ["negative", "positive"]},
    {"name": "topic", "type": "sentence_classification", "labels": ["World", "Sports", "Business", "Sci/Tech"]},
    {"name": "ner", "type": "token_classification", "labels": NER_LABELS},
]
SHARED_DATA = Path(os.environ.get("MTSENT_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder ($MTSENT_DATA, else ../shared/data beside the repo), or skip with the reason."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MTSENT_DATA or put ../shared/data beside the repo)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def encoder():
    from mtsent import SentenceEncoder

    return SentenceEncoder(device="cpu")


@pytest.fixture(scope="session")
def tiny_model(encoder):
    from mtsent import MultiTaskModel

    torch.manual_seed(0)
    return MultiTaskModel(encoder, TINY_TASKS)


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny"
    tiny_model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A random 2-layer BERT (hidden 32) with the packaged tokenizer, saved as an HF directory: trains in seconds."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from mtsent.encoder import default_backbone_path

    path = tmp_path_factory.mktemp("tiny_backbone")
    tok = AutoTokenizer.from_pretrained(str(default_backbone_path()), local_files_only=True)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tokenizer():
    """The packaged backbone's fast tokenizer."""
    from mtsent.data import load_tokenizer

    return load_tokenizer(None)
