"""The FastAPI application: health, model description, encode, similarity and predict over one loaded model.

Every error is a JSON object `{"detail": "..."}` with one readable sentence (which field, which index, why) and a
4xx status; pydantic's raw error list is rewritten by `_readable`. Model calls go through the micro-batcher.
"""

import logging
import os
from collections.abc import AsyncIterator, Hashable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mtsent.model import MultiTaskModel
from mtsent.serving.batching import MicroBatcher
from mtsent.serving.schemas import (
    EncodeResponse,
    ErrorResponse,
    Health,
    Limits,
    ModelInfo,
    PredictResponse,
    SimilarityResponse,
    TaskInfo,
    request_models,
)

__all__ = ["ServeSettings", "create_app"]

log = logging.getLogger("mtsent.serving")


@dataclass(frozen=True)
class ServeSettings:
    """Limits and batching knobs of the service (the `mtsent serve` options)."""

    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    batching: bool = True
    max_sentences: int = 256
    max_chars: int = 2000
    max_body_bytes: int = 1_000_000
    threads: int | None = None  # torch intra-op threads; None = one core less than the machine has

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_sentences", "max_chars", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must not be negative, got {self.max_wait_ms}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")


ERRORS = {
    400: {"model": ErrorResponse, "description": "Malformed JSON."},
    413: {"model": ErrorResponse, "description": "Body larger than max_body_bytes."},
    422: {"model": ErrorResponse, "description": "Invalid request: the message names the field and index."},
}


class BodyLimit:
    """ASGI middleware answering 413 when a request body (declared or streamed) exceeds `max_bytes`.

    The body is read here, before routing, so an oversized upload is refused without being parsed as JSON.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"request body is larger than the limit of {self.max_bytes} bytes"
        await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)


def _where(loc: Sequence[int | str]) -> str:
    """('body', 'sentences', 3) -> 'sentences[3]'."""
    out = ""
    for part in loc[1:] if loc and loc[0] == "body" else loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _readable(errors: Sequence[dict]) -> str:
    """One sentence per pydantic error, our own validators' messages unchanged."""
    parts = []
    for e in errors[:5]:
        where = _where(e.get("loc", ()))
        kind = e.get("type", "")
        if kind == "value_error" and "error" in e.get("ctx", {}):
            parts.append(str(e["ctx"]["error"]))
        elif kind == "missing":
            parts.append(f"{where} is required" if where else "a JSON request body is required")
        elif not where and kind in ("model_attributes_type", "dict_type"):
            parts.append("the request body must be a JSON object (send Content-Type: application/json)")
        elif kind == "extra_forbidden":
            parts.append(f"unknown field {where!r}")
        else:
            parts.append(f"{where or 'request body'}: {e.get('msg', 'invalid')}")
    if len(errors) > 5:
        parts.append(f"and {len(errors) - 5} more errors")
    return "; ".join(parts)


def _model_runner(model: MultiTaskModel, batch_size: int):
    """The worker-thread function: key ("encode", normalize) or ("predict", tasks) -> one result per sentence."""

    def run(key: Hashable, sentences: list[str]) -> Sequence[object]:
        kind, arg = key  # type: ignore[misc]
        if kind == "encode":
            return model.encoder.encode(sentences, batch_size=batch_size, normalize=arg)
        return model.predict(sentences, tasks=list(arg), batch_size=batch_size)

    return run


def create_app(model: MultiTaskModel, settings: ServeSettings | None = None) -> FastAPI:
    """A FastAPI app serving `model` (already loaded, so the app is ready as soon as it listens)."""
    settings = settings or ServeSettings()
    # The event loop (HTTP parsing, JSON, pydantic) needs a core of its own: torch threads competing with it for
    # every core made the service several times slower on a 2-core machine.
    threads = settings.threads or max(1, (os.cpu_count() or 1) - 1)
    model.eval()
    batcher = MicroBatcher(
        _model_runner(model, settings.max_batch_size),
        max_batch_size=settings.max_batch_size,
        max_wait_ms=settings.max_wait_ms,
        enabled=settings.batching,
        thread_initializer=lambda: torch.set_num_threads(threads),
    )
    models = request_models(settings.max_sentences, settings.max_chars)
    EncodeRequest, SimilarityRequest, PredictRequest = models.encode, models.similarity, models.predict

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        torch.set_num_threads(threads)
        await batcher.start()
        log.info("mtsent: serving, batching=%s, torch threads=%d", settings.batching, threads)
        yield
        await batcher.stop()

    app = FastAPI(
        title="mtsent",
        summary="Multi-task sentence transformer: embeddings, similarity and every task head in one forward pass.",
        version="1",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.settings = settings
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            e = next(e for e in errors if e.get("type") == "json_invalid")
            reason = e.get("ctx", {}).get("error", "invalid JSON")
            return JSONResponse({"detail": f"malformed JSON body: {reason}"}, status_code=400)
        return JSONResponse({"detail": _readable(errors)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("mtsent: unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the service keeps running"}, status_code=500)

    @app.get("/health", response_model=Health, tags=["service"])
    async def health() -> Health:
        """Liveness and readiness: the model is loaded and the batcher is accepting work."""
        return Health(model_loaded=True, queued_requests=batcher.queued)

    @app.get("/v1/model", response_model=ModelInfo, tags=["service"])
    async def model_info() -> ModelInfo:
        """The backbone, embedding size, pooling, the tasks with their labels, and the request limits."""
        c = model.encoder.config
        return ModelInfo(
            backbone=c.backbone,
            dimension=model.encoder.dim,
            pooling=c.pooling,
            normalize=c.normalize,
            max_length=model.encoder.max_length,
            tasks=[TaskInfo(name=t.name, type=t.type, labels=t.labels) for t in model.tasks.values()],
            limits=Limits(
                max_sentences=settings.max_sentences,
                max_chars=settings.max_chars,
                max_body_bytes=settings.max_body_bytes,
            ),
        )

    @app.post("/v1/encode", response_model=EncodeResponse, responses=ERRORS, tags=["model"])
    async def encode(body: EncodeRequest) -> EncodeResponse:  # type: ignore[valid-type]
        """Sentence embeddings, one per sentence, in order."""
        rows = await batcher.submit(("encode", body.normalize), body.sentences)
        return EncodeResponse(
            embeddings=np.stack(rows).tolist(), dimension=model.encoder.dim, normalized=body.normalize
        )

    @app.post("/v1/similarity", response_model=SimilarityResponse, responses=ERRORS, tags=["model"])
    async def similarity(body: SimilarityRequest) -> SimilarityResponse:  # type: ignore[valid-type]
        """Cosine similarity of every sentence of `sentences_a` with every sentence of `sentences_b`."""
        rows = await batcher.submit(("encode", True), body.sentences_a + body.sentences_b)
        a, b = np.stack(rows[: len(body.sentences_a)]), np.stack(rows[len(body.sentences_a) :])
        return SimilarityResponse(scores=np.clip(a @ b.T, -1.0, 1.0).tolist())

    @app.post("/v1/predict", response_model=PredictResponse, responses=ERRORS, tags=["model"])
    async def predict(body: PredictRequest) -> PredictResponse:  # type: ignore[valid-type]
        """For each sentence and task: the label with every label's probability, or entity spans with offsets."""
        try:
            names = model.check_tasks(body.tasks)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        if not names:
            raise HTTPException(422, "this model has no task heads; use /v1/encode for embeddings")
        pairs = [n for n in names if model.task_types[n].texts_per_example != 1]
        if pairs:
            raise HTTPException(422, f"tasks {pairs} answer pairs of texts, not single texts: use /v1/similarity")
        answers = await batcher.submit(("predict", tuple(names)), body.sentences)
        return PredictResponse(
            predictions=[{n: p.to_dict() for n, p in answer.items()} for answer in answers]  # type: ignore[attr-defined]
        )

    return app
