"""Request and response models of the HTTP service.

Request models are built per app by `request_models` because the limits (sentences per request, characters per
sentence) are settings: baking them into the models puts them in the OpenAPI schema, so clients and schema-based
fuzzers see the real contract. Sentences are checked by `mtsent.inputs.check_sentences`, the same check as the
library and the CLI, so a bad item is reported by its index everywhere: the schema's `pattern` is that check's
rule (`VISIBLE_CHARACTER`), and request models are strict (no "yes" or 1 for a boolean, no number for a string).
`tasks` is an enum of the loaded model's task names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from mtsent.inputs import VISIBLE_CHARACTER, check_sentences

__all__ = [
    "EmbeddingData",
    "EmbeddingsResponse",
    "EmbeddingsUsage",
    "EncodeResponse",
    "Entity",
    "ErrorResponse",
    "Health",
    "Limits",
    "ModelInfo",
    "PrecisionInfo",
    "PredictResponse",
    "Readiness",
    "RequestModels",
    "SentenceTaskResult",
    "SimilarityResponse",
    "TaskInfo",
    "TokenTaskResult",
    "request_models",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _StrictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# ---------------------------------------------------------------- requests
def _text(max_chars: int):
    return Annotated[str, Field(min_length=1, max_length=max_chars, pattern=VISIBLE_CHARACTER)]


def _sentences_field(max_sentences: int, max_chars: int, description: str):
    return (
        list[_text(max_chars)],  # type: ignore[misc]
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
    """The request body models of one app, carrying its limits and its model's task names."""

    encode: type[BaseModel]
    similarity: type[BaseModel]
    predict: type[BaseModel]
    embeddings: type[BaseModel]


def _tasks_checker(task_names: Sequence[str]):
    """A before-validator naming the unknown task and the valid ones (the schema's enum says the same)."""
    valid = ", ".join(task_names) or "(this model has no task heads)"

    def check(cls, value: object) -> object:
        if isinstance(value, list):
            for name in value:
                if isinstance(name, str) and name not in task_names:
                    raise ValueError(f"unknown task {name!r}; valid tasks: {valid}")
        return value

    return check


def _embeddings_input_checker(max_sentences: int, max_chars: int):
    """OpenAI's `input`: one string or a list of strings; token-id arrays are refused by name."""
    check_list = _sentences_checker(max_sentences, max_chars)

    def check(cls, value: object, info) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and value and all(isinstance(v, int | list) for v in value):
            raise ValueError("input must be a string or a list of strings; token-id arrays are not accepted")
        return check_list(cls, value, info)

    return check


def request_models(max_sentences: int, max_chars: int, task_names: Sequence[str] = ()) -> RequestModels:
    """Request models whose schemas and validation enforce these limits and this model's task names."""
    check = _sentences_checker(max_sentences, max_chars)
    sentences = _sentences_field(max_sentences, max_chars, "Sentences to process, in order.")
    encode = create_model(
        "EncodeRequest",
        __base__=_StrictRequest,
        __validators__={"_sentences": field_validator("sentences", mode="before")(check)},
        sentences=sentences,
        normalize=(bool, Field(True, description="L2-normalise the embeddings (a dot product is then the cosine).")),
    )
    similarity = create_model(
        "SimilarityRequest",
        __base__=_StrictRequest,
        __validators__={"_sentences": field_validator("sentences_a", "sentences_b", mode="before")(check)},
        sentences_a=_sentences_field(max_sentences, max_chars, "Rows of the matrix."),
        sentences_b=_sentences_field(max_sentences, max_chars, "Columns of the matrix."),
    )
    task = Literal[tuple(task_names)] if task_names else str  # type: ignore[valid-type]
    predict = create_model(
        "PredictRequest",
        __base__=_StrictRequest,
        __validators__={
            "_sentences": field_validator("sentences", mode="before")(check),
            "_tasks": field_validator("tasks", mode="before")(_tasks_checker(task_names)),
        },
        sentences=sentences,
        tasks=(
            list[task] | None,  # type: ignore[valid-type]
            Field(None, min_length=1, description="Task names to answer (default: every task of the model)."),
        ),
    )
    embeddings = create_model(
        "EmbeddingsRequest",
        __base__=_StrictRequest,
        __validators__={
            "_input": field_validator("input", mode="before")(_embeddings_input_checker(max_sentences, max_chars))
        },
        input=(
            _text(max_chars) | Annotated[list[_text(max_chars)], Field(min_length=1, max_length=max_sentences)],
            Field(description="A text or a list of texts to embed (OpenAI's embeddings API)."),
        ),
        model=(str, Field(min_length=1, max_length=200, description="Echoed back; the served model answers.")),
        encoding_format=(
            Literal["float", "base64"],
            Field("float", description="base64: little-endian float32 bytes, as OpenAI's clients expect."),
        ),
        dimensions=(int | None, Field(None, ge=1, description="Must equal the model's dimension if given.")),
        user=(str | None, Field(None, max_length=256, description="Accepted and ignored.")),
    )
    return RequestModels(encode, similarity, predict, embeddings)


# ---------------------------------------------------------------- responses
class ErrorResponse(_Strict):
    """Every error answer: one readable message."""

    detail: str = Field(examples=["sentences[3] is empty or whitespace only"])


class Health(_Strict):
    status: Literal["ok"] = "ok"
    model_loaded: bool
    queued_requests: int = Field(description="Requests with sentences waiting for the model right now.")
    queued_tokens: int = Field(description="Tokens admitted and waiting for the model right now.")


class Readiness(_Strict):
    ready: bool
    reason: str | None = Field(None, description="Why the service is not ready (queue full, shutting down).")
    queued_tokens: int
    max_queue_tokens: int


class TaskInfo(_Strict):
    name: str
    type: str = Field(description="The task type (e.g. sentence_classification, token_classification).")
    labels: list[str]


class Limits(_Strict):
    max_sentences: int
    max_chars: int
    max_body_bytes: int
    max_queue_tokens: int = Field(description="Tokens the queue admits; beyond, requests get 503 at once.")
    batch_tokens: int = Field(description="Most tokens per model call; larger requests are split.")
    timeout_ms: int = Field(description="Default deadline; a client may lower it with the X-Timeout-Ms header.")


class PrecisionInfo(_Strict):
    requested: Literal["fp32", "bf16", "auto"]
    running: Literal["fp32", "bf16"] = Field(description="What `auto` resolved to on this hardware.")
    batch_invariant: bool = Field(
        description="Each text is padded to a width of its own, so its answer never depends on other requests."
    )


class ModelInfo(_Strict):
    id: str = Field(description="The served model's name (its directory name, or 'default').")
    backbone: str
    dimension: int
    pooling: str
    normalize: bool
    max_length: int = Field(description="Sub-words per input window.")
    tasks: list[TaskInfo]
    precision: PrecisionInfo
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


class EmbeddingData(_Strict):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of little-endian float32 bytes.")


class EmbeddingsUsage(_Strict):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(_Strict):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingsUsage
