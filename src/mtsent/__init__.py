"""mtsent: multi-task sentence transformers: one shared encoder, many task heads, one forward pass.

The public classes are imported on first use, so `import mtsent` (and the CLI's `--help`) does not load torch.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from mtsent._lazy import lazy_exports

# The Rust tokenizer's own thread pool stays off, so a process that forks after tokenising (a data loader's
# workers, Ray) neither warns nor deadlocks; large calls use threads of ours instead (`batching.tokenize_texts`).
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

try:
    __version__ = version("mtsent")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from mtsent.config import EncoderConfig, HeadConfig, ModelConfig
    from mtsent.encoder import SentenceEncoder
    from mtsent.model import MultiTaskModel
    from mtsent.spans import EntitySpan
    from mtsent.tasks import SentencePrediction, TokenPrediction

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

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "EncoderConfig": "config",
        "HeadConfig": "config",
        "ModelConfig": "config",
        "SentenceEncoder": "encoder",
        "MultiTaskModel": "model",
        "SentencePrediction": "tasks",  # importing mtsent.tasks registers the task types
        "TokenPrediction": "tasks",
        "EntitySpan": "spans",
    },
)
