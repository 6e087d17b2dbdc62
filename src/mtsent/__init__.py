"""mtsent: multi-task sentence transformers: one shared encoder, many task heads, one forward pass."""

from __future__ import annotations

import os

# Weights ship inside the wheel; never wait on the network for them unless the user asked for a hub id.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"

from mtsent.config import EncoderConfig, HeadConfig, ModelConfig
from mtsent.encoder import SentenceEncoder
from mtsent.model import MultiTaskModel
from mtsent.spans import EntitySpan
from mtsent.tasks import SentencePrediction, TokenPrediction  # importing mtsent.tasks registers the task types

__all__ = [
    "EncoderConfig",
    "EntitySpan",
    "HeadConfig",
    "ModelConfig",
    "MultiTaskModel",
    "SentenceEncoder",
    "SentencePrediction",
    "TokenPrediction",
    "__version__",
]
