"""Fixtures for corpus jobs: tiny models (random BERT) to run them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from corpus_data import TASKS


@pytest.fixture(scope="session")
def tiny_encoder_dir(tiny_backbone) -> Path:
    """The tiny random BERT as a Hugging Face directory (an encoder without heads)."""
    return tiny_backbone


@pytest.fixture(scope="session")
def tiny_tagger_dir(tiny_backbone, tmp_path_factory) -> Path:
    """A tiny 3-task model (random BERT, untrained heads): plumbing only, never accuracy."""
    from mtsent import MultiTaskModel, SentenceEncoder

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("corpus_models") / "tagger"
    MultiTaskModel(SentenceEncoder(str(tiny_backbone), device="cpu"), TASKS).save_pretrained(path)
    return path
