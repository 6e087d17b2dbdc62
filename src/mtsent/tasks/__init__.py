"""Task types: one module per type, each registered by name (see `mtsent.tasks.base` for the contract).

Importing this package registers the built-in types; a new type is a new module imported here.
"""

from mtsent.tasks.base import LongTexts, TaskType, WindowOutput, get_task_type, register_task_type
from mtsent.tasks.sentence_classification import SentenceClassification, SentencePrediction
from mtsent.tasks.sentence_similarity import SentenceSimilarity
from mtsent.tasks.token_classification import TokenClassification, TokenPrediction, bio_label_list

__all__ = [
    "LongTexts",
    "SentenceClassification",
    "SentencePrediction",
    "SentenceSimilarity",
    "TaskType",
    "TokenClassification",
    "TokenPrediction",
    "WindowOutput",
    "bio_label_list",
    "get_task_type",
    "register_task_type",
]
