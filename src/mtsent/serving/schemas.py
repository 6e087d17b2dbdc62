"""Request and response models of the HTTP service.

Request models are built per app by `request_models` because the limits (sentences per request, characters per
sentence) are settings: baking them into the models puts them in the OpenAPI schema, so clients and schema-based
fuzzers see the real contract. Sentences are checked by `mtsent.inputs.check_sentences`, the same check as the
library and the CLI, so a bad item is reported by its index everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from mtsent.inputs import check_sentences

__all__ = [
    "EncodeResponse",
    "Entity",
    "ErrorResponse",
    "Health",
    "Limits",
    "ModelInfo",
    "PredictResponse",
    "RequestModels",
    "SentenceTaskResult",
    "SimilarityResponse",
    "TaskInfo",
    "TokenTaskResult",
    "request_models",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- requests
def _sentences_field(max_sentences: int, max_chars: int, description: str):
    item = Annotated[str, Field(min_length=1, max_length=max_chars, pattern=r"\S")]
    return (
        list[item],
        Field(min_length=1, max_length=max_sentences, description=description),
    )


def _sentences_checker(max_sentences: int, max_chars: int):
    """A before-validator giving one readable message (index and reason) instead of pydantic's error list."""

    def check(cls, value: object, info) -> list[str]:
        name = info.field_name
        if isinstance(value, list) and len(value) > max_sentences:
            raise ValueError(f"{name} has {len(value)} sentences, more than the limit of {max_sentences} per request")
        if not isinstance(value, list):
            raise ValueError(f"{name} must be a list of strings, got {_json_type(value)}")
        try:
            return check_sentences(value, name, max_chars)
        except TypeError as exc:  # pydantic turns only ValueError into a validation error
            raise ValueError(str(exc)) from None

    return check


def _json_type(value: object) -> str:
    names = {dict: "an object", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class RequestModels:
    """The request body models of one app, carrying its limits."""

    encode: type[BaseModel]
    similarity: type[BaseModel]
    predict: type[BaseModel]


def request_models(max_sentences: int, max_chars: int) -> RequestModels:
    """Request models whose schemas and validation enforce these limits."""
    check = _sentences_checker(max_sentences, max_chars)
    sentences = _sentences_field(max_sentences, max_chars, "Sentences to process, in order.")
    encode = create_model(
        "EncodeRequest",
        __base__=_Strict,
        __validators__={"_sentences": field_validator("sentences", mode="before")(check)},
        sentences=sentences,
        normalize=(bool, Field(True, description="L2-normalise the embeddings (a dot product is then the cosine).")),
    )
    similarity = create_model(
        "SimilarityRequest",
        __base__=_Strict,
        __validators__={"_sentences": field_validator("sentences_a", "sentences_b", mode="before")(check)},
        sentences_a=_sentences_field(max_sentences, max_chars, "Rows of the matrix."),
        sentences_b=_sentences_field(max_sentences, max_chars, "Columns of the matrix."),
    )
    predict = create_model(
        "PredictRequest",
        __base__=_Strict,
        __validators__={"_sentences": field_validator("sentences", mode="before")(check)},
        sentences=sentences,
        tasks=(
            list[str] | None,
            Field(None, min_length=1, description="Task names to answer (default: every task of the model)."),
        ),
    )
    return RequestModels(encode, similarity, predict)


# ---------------------------------------------------------------- responses
class ErrorResponse(_Strict):
    """Every error answer: one readable message."""

    detail: str = Field(examples=["sentences[3] is empty or whitespace only"])


class Health(_Strict):
    status: Literal["ok"] = "ok"
    model_loaded: bool
    queued_requests: int = Field(description="Requests waiting for the model right now.")


class TaskInfo(_Strict):
    name: str
    type: str = Field(description="The task type (e.g. sentence_classification, token_classification).")
    labels: list[str]


class Limits(_Strict):
    max_sentences: int
    max_chars: int
    max_body_bytes: int


class ModelInfo(_Strict):
    backbone: str
    dimension: int
    pooling: str
    normalize: bool
    max_length: int = Field(description="Sub-words per input window.")
    tasks: list[TaskInfo]
    limits: Limits


class EncodeResponse(_Strict):
    embeddings: list[list[float]]
    dimension: int
    normalized: bool


class SimilarityResponse(_Strict):
    scores: list[list[float]] = Field(description="scores[i][j] = cosine(sentences_a[i], sentences_b[j]).")


class SentenceTaskResult(_Strict):
    label: str
    score: float
    scores: dict[str, float]


class Entity(_Strict):
    text: str
    type: str
    start: int = Field(description="Character offset of the first character.")
    end: int = Field(description="Character offset after the last character (exclusive).")
    score: float


class TokenTaskResult(_Strict):
    entities: list[Entity]
    words: list[str]
    tags: list[str]


class PredictResponse(_Strict):
    predictions: list[dict[str, SentenceTaskResult | TokenTaskResult]] = Field(
        description="One object per sentence, in order, keyed by task name."
    )
