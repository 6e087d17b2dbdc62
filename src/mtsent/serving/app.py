"""The FastAPI application: probes, metrics, model description, encode, similarity, predict and OpenAI embeddings.

Every error is a JSON object `{"detail": "..."}` with one readable sentence (which field, which index, why) and a
4xx status (503/504 when the service, not the client, is the limit); pydantic's raw error list is rewritten by
`_readable`. Model calls go through the admission-controlled, fair micro-batcher (`batching.py`): each request has
a deadline, and its work is dropped when the deadline passes or its client hangs up.
"""

import asyncio
import base64
import copy
import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tokenizers import Tokenizer
from torch import nn
from torch.utils.hooks import RemovableHandle

from mtsent.batching import INVARIANT_WIDTHS
from mtsent.model import MultiTaskModel
from mtsent.precision import drop_inference_copies, resolve_precision
from mtsent.serving.batching import MicroBatcher, QueueFull, ShuttingDown
from mtsent.serving.metrics import CONTENT_TYPE_LATEST, ServiceMetrics
from mtsent.serving.schemas import (
    EmbeddingData,
    EmbeddingsResponse,
    EmbeddingsUsage,
    EncodeResponse,
    ErrorResponse,
    Health,
    Limits,
    ModelInfo,
    PrecisionInfo,
    PredictResponse,
    Readiness,
    SimilarityResponse,
    TaskInfo,
    request_models,
)
from mtsent.serving.security import ApiKeyAuth
from mtsent.serving.system import available_cpus

__all__ = ["SERVE_PRECISIONS", "TIMEOUT_HEADER", "ServeSettings", "create_app", "warmup_calls"]

log = logging.getLogger("mtsent.serving")
access_log = logging.getLogger("mtsent.access")

SERVE_PRECISIONS = ("fp32", "bf16", "auto")
TIMEOUT_HEADER = "X-Timeout-Ms"
"""A client lowers its request's deadline with this header (milliseconds); it cannot raise it."""
MAX_WAIT_LIMIT_MS = 1000.0
INLINE_TOKENIZE_CHARS = 4000
"""Requests with fewer characters are tokenised on the event loop (well under a millisecond)."""


@dataclass(frozen=True)
class ServeSettings:
    """Limits, batching and connection knobs of the service (the `mtsent serve` options)."""

    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    batching: bool = True
    max_sentences: int = 256
    max_chars: int = 2000
    max_body_bytes: int = 1_000_000
    threads: int | None = None  # torch intra-op threads; None = one core less than the container may use
    precision: str = "auto"
    max_queue_tokens: int = 262_144
    batch_tokens: int = 1024
    timeout_ms: int = 30_000
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    # connection handling, applied by `server.py` to uvicorn
    read_timeout_s: float = 10.0
    keep_alive_s: float = 5.0
    max_connections: int = 1024
    max_header_bytes: int = 16_384
    shutdown_timeout_s: float = 30.0
    warmup: bool = True  # run `warmup_calls` before listening
    background_long_texts: bool = True  # long texts on a second model thread that gives way to short calls

    def __post_init__(self) -> None:
        positive = (
            "max_batch_size", "max_sentences", "max_chars", "max_body_bytes", "max_queue_tokens", "batch_tokens",
            "timeout_ms", "max_connections", "max_header_bytes",
        )  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("read_timeout_s", "keep_alive_s", "shutdown_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.max_wait_ms <= MAX_WAIT_LIMIT_MS:
            raise ValueError(
                f"max_wait_ms must be between 0 and {MAX_WAIT_LIMIT_MS:.0f} (a batching wait, not a timeout; "
                f"deadlines are timeout_ms), got {self.max_wait_ms}"
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if self.precision not in SERVE_PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(SERVE_PRECISIONS)}, got {self.precision!r}")


ERRORS = {
    400: {"model": ErrorResponse, "description": "Malformed JSON, or a bad X-Timeout-Ms header."},
    401: {"model": ErrorResponse, "description": "API keys are configured and none valid was sent."},
    413: {"model": ErrorResponse, "description": "Body larger than max_body_bytes."},
    422: {"model": ErrorResponse, "description": "Invalid request: the message names the field and index."},
    503: {"model": ErrorResponse, "description": "Queue full (see Retry-After) or shutting down."},
    504: {"model": ErrorResponse, "description": "The deadline passed; the request's work was dropped."},
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
        declared = Headers(scope=scope).get("content-length")
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


def refused(metrics: ServiceMetrics, exc: QueueFull) -> tuple[str, dict[str, str]]:
    """Count a queue-full refusal; its 503's detail and headers (whether it is refused early or by its count)."""
    metrics.rejected.labels("queue_full").inc()
    return str(exc), {"Retry-After": str(exc.retry_after)}


class QueueGate:
    """ASGI middleware answering 503 at once, before the body is read, when the queue has no room for a request of
    this size (estimated from its Content-Length), counting the room held by requests let in and not counted yet.

    Under overload a refusal must cost next to nothing: reading, parsing, validating and tokenising a request only
    to find no room for it made 503s wait behind everyone else's parsing (up to 0.3 s with 256 clients). A request
    let in reserves its estimated room until it is counted (`MicroBatcher.reserve`) and then yields once to the
    event loop, so that the requests that arrived with it meet the gate before anyone's body is parsed: in a burst,
    those beyond the queue's room are refused first, not after everyone else's parsing. A request let in is then
    admitted or refused by its exact token count.
    """

    def __init__(self, app: ASGIApp, batcher: MicroBatcher, metrics: ServiceMetrics, paths: frozenset[str]) -> None:
        self.app = app
        self.batcher = batcher
        self.metrics = metrics
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.paths):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        body_bytes = int(declared) if declared.isdigit() else None
        estimate = self.batcher.estimate(body_bytes)
        if self.batcher.refuses_early(estimate):
            detail, headers = refused(self.metrics, self.batcher.refusal())
            await JSONResponse({"detail": detail}, status_code=503, headers=headers)(scope, receive, send)
            return
        reservation = self.batcher.reserve(estimate, body_bytes)
        scope.setdefault("state", {})["reservation"] = reservation
        try:
            await asyncio.sleep(0)  # the requests that arrived with this one meet the gate before it is parsed
            await self.app(scope, receive, send)
        finally:
            reservation.release()


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


class RequestContext:
    """ASGI middleware: X-Request-ID (accepted when sane, else generated) echoed on the answer, access log, metrics.

    The access log (logger `mtsent.access`) gives one line per request: id, method, path, status, milliseconds.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, endpoints: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.endpoints = endpoints

    @staticmethod
    def request_id(headers: Headers) -> str:
        given = headers.get("x-request-id", "")
        if 0 < len(given) <= 128 and given.isascii() and given.isprintable() and " " not in given:
            return given
        return uuid.uuid4().hex

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = self.request_id(Headers(scope=scope))
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            path = scope["path"]
            self.metrics.observe_request(path if path in self.endpoints else "other", scope["method"], status, seconds)
            access_log.info("%s %s %s %d %.1fms", rid, scope["method"], path, status, seconds * 1000)


T = TypeVar("T")


class ClientGone(Exception):
    """The client closed the connection before its answer was ready."""


async def _disconnected(receive: Receive) -> None:
    """Return when the client hangs up (the body has been read, so the next message is the disconnect)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work`, cancelling it (and so dropping its queued sentences) as soon as the client leaves."""
    job = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request.receive))
    try:
        await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
        if job.done():
            return job.result()
        raise ClientGone
    finally:
        job.cancel()
        gone.cancel()
        # wait for the cancellation to take effect, so the work has left the queue before anyone is answered
        await asyncio.gather(job, gone, return_exceptions=True)


def _model_runner(model: MultiTaskModel, precision: str):
    """The worker-thread function: key ("encode", normalize) or ("predict", tasks) -> one result per sentence.

    Every call is batch-invariant: padding and batch size change float rounding (by ~1e-7 in fp32, ~1e-3 in
    bf16), so each text is padded to a width of its own and an answer does not depend on its batch mates.
    """

    def run(key: Hashable, sentences: list[str]) -> Sequence[object]:
        # the service answers as the library does by default (a long text's first window for embeddings and
        # sentence tasks, as docs/serving.md says), chosen explicitly so the library does not warn on every call
        kind, arg = key  # type: ignore[misc]
        if kind == "encode":
            vectors = model.encoder.encode(
                sentences, normalize=arg, precision=precision, batch_invariant=True, long_texts="truncate"
            )
            return list(vectors)
        return model.predict(  # type: ignore[call-overload]
            sentences, tasks=list(arg), precision=precision, batch_invariant=True, long_texts="truncate"
        )

    return run


def pause_between_blocks(model: MultiTaskModel, pause: Callable[[], None]) -> list[RemovableHandle]:
    """Call `pause` before each transformer block of the model's backbone (every module held in a ModuleList),
    in every precision: the converted inference copies are rebuilt with the hooks. Remove the handles (and drop
    the copies again) to undo it.

    This is where a long pass in the background lane gives way to a short call: between blocks, not at the end
    of the whole pass.
    """
    blocks = [m for holder in model.encoder.backbone.modules() if isinstance(holder, nn.ModuleList) for m in holder]
    handles = [block.register_forward_pre_hook(lambda module, args: pause()) for block in blocks]
    drop_inference_copies(model)
    return handles


WARM_EVERY_ROW_COUNT_UP_TO = 48
"""Padded widths up to this (where single sentences land) are warmed at every row count, not only 1 and full."""


def warmup_calls(model: MultiTaskModel, settings: ServeSettings) -> list[tuple[Hashable, list[str]]]:
    """Model calls run once before the service listens: at each padded width, one text alone and a full call,
    and every row count in between at the widths where sentences land (up to `WARM_EVERY_ROW_COUNT_UP_TO`).

    The first call at a precision builds its converted weights (bf16: a second copy of the model) and each new
    batch shape (rows × padded width) its kernels and buffers, for good (in docs/results/shape_memory_ends_only.json
    30 new row counts of short sentences added 54 MiB the first time and 0.7 MiB the second). Without these calls the
    first requests pay for both, slowly, and the service's memory climbs while it serves instead of before it is
    ready. Sentence traffic meets every row count at its widths within minutes; longer texts are rarer, and
    warming every row count at every width would take several times as long.
    """
    names = tuple(model.check_tasks(None))
    key: tuple = ("predict", names) if names else ("encode", True)
    calls: list[tuple[Hashable, list[str]]] = []
    previous = 0
    for width in INVARIANT_WIDTHS:
        if width > model.encoder.max_length:
            break
        text = " ".join(["word"] * max(1, width - 2))  # about `width` tokens with [CLS] and [SEP]
        full = min(settings.max_batch_size, max(1, settings.batch_tokens // (previous + 1)))
        counts = range(1, full + 1) if width <= WARM_EVERY_ROW_COUNT_UP_TO else sorted({1, full})
        calls += [(key, [text] * rows) for rows in counts]
        previous = width
    return calls


class TokenCounter:
    """Tokens per sentence as the model will see them: truncated to its window for encode, every window for predict.

    Counting runs on the event loop or the tokenising thread while the model thread tokenises too, so it uses a
    tokenizer of its own: a fast tokenizer keeps truncation and padding as mutable state that each call sets, and
    a shared one could have its settings changed by the other thread halfway through a call. Lengths come from
    the Rust tokenizer directly, without building Python lists of ids.
    """

    def __init__(self, model: MultiTaskModel) -> None:
        tokenizer = model.encoder.tokenizer
        backend = getattr(tokenizer, "backend_tokenizer", None)
        self._backend = None if backend is None else Tokenizer.from_str(backend.to_str())
        if self._backend is not None:
            self._backend.no_truncation()
            self._backend.no_padding()
        # a tokenizer without a Rust backend: a copy of its own
        self._tokenizer = copy.deepcopy(tokenizer) if self._backend is None else None
        self.max_length = model.encoder.max_length

    def count(self, kind: str, sentences: list[str]) -> list[int]:
        if self._backend is not None:
            lengths = [len(e) for e in self._backend.encode_batch_fast(sentences, add_special_tokens=True)]
        else:
            lengths = [len(x) for x in self._tokenizer(sentences, add_special_tokens=True, verbose=False)["input_ids"]]
        return self._cap(kind, lengths)

    def lower_bound(self, kind: str, sentences: list[str]) -> int:
        """At most the true total, and cheap: every word is at least one token."""
        return sum(self._cap(kind, [len(s.split()) for s in sentences]))

    def _cap(self, kind: str, lengths: list[int]) -> list[int]:
        return [min(n, self.max_length) for n in lengths] if kind == "encode" else lengths


def _json_error_position(body: bytes, position: object) -> str:
    """'line 2, column 7' for a character offset into the body (empty when unknown)."""
    if not isinstance(position, int):
        return ""
    before = body.decode("utf-8", "replace")[:position]
    return f" at line {before.count(chr(10)) + 1}, column {position - before.rfind(chr(10))}"


def _offline_docs(app: FastAPI) -> bool:
    """Serve Swagger UI from the `swagger-ui-bundle` package's files (no CDN); False when it is not installed."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return False
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="mtsent API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )

    return True


def _freeze_startup_objects() -> bool:
    """Move every object alive after loading and warm-up out of the garbage collector's sight (`gc.freeze`).

    The model, tokenizer and libraries make hundreds of thousands of tracked objects that live as long as the
    service; every full collection walked all of them, a 300 ms pause every few seconds under load, and every
    request waiting on the event loop waited for it (the overload benchmark's slow 503s came in such pauses).
    Returns False, freezing nothing, when another part of the process froze objects already (it owns them).
    """
    if gc.get_freeze_count():
        return False
    gc.collect()
    gc.freeze()
    return True


def create_app(model: MultiTaskModel, settings: ServeSettings | None = None, model_id: str = "default") -> FastAPI:
    """A FastAPI app serving `model` (already loaded, so the app is ready as soon as it listens)."""
    settings = settings or ServeSettings()
    # The event loop (HTTP parsing, JSON, pydantic) needs a core of its own: torch threads competing with it for
    # every core made the service several times slower on a 2-core machine. Cores are counted from the
    # container's CPU quota, not the host's.
    threads = settings.threads or max(1, available_cpus() - 1)
    running = resolve_precision(settings.precision, model.device)
    model.eval()
    metrics = ServiceMetrics()
    batcher = MicroBatcher(
        _model_runner(model, running),
        max_batch_size=settings.max_batch_size,
        max_wait_ms=settings.max_wait_ms,
        enabled=settings.batching,
        thread_initializer=lambda: torch.set_num_threads(threads),
        max_queue_tokens=settings.max_queue_tokens,
        batch_tokens=settings.batch_tokens,
        observer=metrics.observe_batch,
        background=settings.background_long_texts,
    )
    metrics.watch(batcher)
    token_counter = TokenCounter(model)
    tokenizing = ThreadPoolExecutor(1, thread_name_prefix="mtsent-tokenize")  # replaced at each start
    models = request_models(settings.max_sentences, settings.max_chars, list(model.tasks))
    EncodeRequest, SimilarityRequest = models.encode, models.similarity
    PredictRequest, EmbeddingsRequest = models.predict, models.embeddings
    stopping = asyncio.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal tokenizing
        tokenizing = ThreadPoolExecutor(1, thread_name_prefix="mtsent-tokenize")
        torch.set_num_threads(threads)
        hooks = pause_between_blocks(model, batcher.yield_to_foreground) if batcher.background else []
        await batcher.start()
        if settings.warmup:
            started = time.perf_counter()
            await batcher.warm_up(warmup_calls(model, settings))
            log.info("mtsent: warmed up in %.1f s", time.perf_counter() - started)
        frozen = _freeze_startup_objects()
        lanes = "on" if batcher.background else "off"
        log.info(
            "mtsent: serving, precision=%s, batching=%s, torch threads=%d, long texts in the background: %s",
            *(running, settings.batching, threads, lanes),
        )
        yield
        stopping.set()
        await batcher.stop()
        if frozen:
            gc.unfreeze()
        tokenizing.shutdown(wait=False, cancel_futures=True)
        if hooks:
            for hook in hooks:
                hook.remove()
            drop_inference_copies(model)

    app = FastAPI(
        title="mtsent",
        summary="Multi-task sentence transformer: embeddings, similarity and every task head in one forward pass.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI from a CDN would be blank offline: `_offline_docs` serves local files
        redoc_url=None,
    )
    app.state.batcher = batcher
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.precision = running
    has_docs = _offline_docs(app)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if broken is not None:
            reason = broken.get("ctx", {}).get("error", "invalid JSON")
            loc = broken.get("loc", ())
            where = _json_error_position(await request.body(), loc[1] if len(loc) > 1 else None)
            return JSONResponse({"detail": f"malformed JSON body{where}: {reason}"}, status_code=400)
        return JSONResponse({"detail": _readable(errors)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("mtsent: unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the service keeps running"}, status_code=500)

    def deadline_s(request: Request) -> float:
        raw = request.headers.get(TIMEOUT_HEADER)
        if raw is None:
            return settings.timeout_ms / 1000
        if not raw.strip().isdigit() or int(raw) < 1:
            raise HTTPException(400, f"{TIMEOUT_HEADER} must be a positive whole number of milliseconds, got {raw!r}")
        return min(int(raw), settings.timeout_ms) / 1000

    async def admitted(request: Request, key: tuple, sentences: list[str]) -> tuple[list[object], list[int]]:
        """Count the tokens, queue the sentences, wait for their results (cancelled: nothing more is computed)."""
        if sum(map(len, sentences)) <= INLINE_TOKENIZE_CHARS:  # a thread hop costs more than this
            costs = token_counter.count(key[0], sentences)
        else:
            # 256 long texts take a while: off the event loop, one request at a time (the model keeps its share of
            # the CPU), and a request cancelled while it waits here is never tokenised
            loop = asyncio.get_running_loop()
            costs = await loop.run_in_executor(tokenizing, token_counter.count, key[0], sentences)
        reservation = request.scope.get("state", {}).get("reservation")
        if reservation is not None:
            reservation.settle(sum(costs))
        return await batcher.submit(key, sentences, costs), costs

    async def compute(request: Request, key: tuple, sentences: list[str]) -> tuple[list[object], int]:
        """Results for `sentences` within the request's deadline, and the tokens they cost."""
        timeout = deadline_s(request)
        try:
            # refuse a clearly oversized request before paying for its tokenisation: it has at least a token per word
            batcher.admit(token_counter.lower_bound(key[0], sentences))
            async with asyncio.timeout(timeout):
                results, costs = await _unless_disconnected(request, admitted(request, key, sentences))
        except QueueFull as exc:
            detail, headers = refused(metrics, exc)
            raise HTTPException(503, detail, headers=headers) from None
        except ShuttingDown:
            metrics.rejected.labels("shutting_down").inc()
            raise HTTPException(503, "the service is shutting down", headers={"Retry-After": "1"}) from None
        except TimeoutError:
            metrics.timed_out.inc()
            raise HTTPException(504, f"the deadline of {timeout * 1000:.0f} ms passed; the work was dropped") from None
        except ClientGone:
            metrics.abandoned.inc()
            raise HTTPException(499, "the client closed the connection") from None
        return results, sum(costs)

    @app.head("/health", include_in_schema=False)
    @app.get("/health", response_model=Health, tags=["service"])
    async def health() -> Health:
        """Liveness: the process answers (from the event loop, even while the model is busy)."""
        return Health(model_loaded=True, queued_requests=batcher.queued, queued_tokens=batcher.queued_tokens)

    @app.head("/ready", include_in_schema=False)
    @app.get(
        "/ready",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready: the queue is full or the service stops."}},
        tags=["service"],
    )
    async def ready() -> JSONResponse:
        """Readiness: the model is loaded, the batcher runs and the queue has room (else 503 with Retry-After)."""
        reason = None
        if stopping.is_set() or not batcher.running:
            reason = "shutting down"
        elif batcher.saturated:
            reason = "the queue is full"
        body = Readiness(
            ready=reason is None,
            reason=reason,
            queued_tokens=batcher.queued_tokens,
            max_queue_tokens=settings.max_queue_tokens,
        )
        headers = {"Retry-After": str(batcher.retry_after())} if reason else None
        return JSONResponse(body.model_dump(), status_code=503 if reason else 200, headers=headers)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/model", response_model=ModelInfo, responses={401: ERRORS[401]}, tags=["service"])
    async def model_info() -> ModelInfo:
        """The model, its tasks with their labels, the precision that runs, and the request limits."""
        c = model.encoder.config
        return ModelInfo(
            id=model_id,
            backbone=c.backbone,
            dimension=model.encoder.dim,
            pooling=c.pooling,
            normalize=c.normalize,
            max_length=model.encoder.max_length,
            tasks=[TaskInfo(name=t.name, type=t.type, labels=t.labels) for t in model.tasks.values()],
            precision=PrecisionInfo(requested=settings.precision, running=running, batch_invariant=True),
            limits=Limits(
                max_sentences=settings.max_sentences,
                max_chars=settings.max_chars,
                max_body_bytes=settings.max_body_bytes,
                max_queue_tokens=settings.max_queue_tokens,
                batch_tokens=settings.batch_tokens,
                timeout_ms=settings.timeout_ms,
            ),
        )

    @app.post("/v1/encode", response_model=EncodeResponse, responses=ERRORS, tags=["model"])
    async def encode(body: EncodeRequest, request: Request) -> EncodeResponse:  # type: ignore[valid-type]
        """Sentence embeddings, one per sentence, in order."""
        rows, _ = await compute(request, ("encode", body.normalize), body.sentences)
        return EncodeResponse(
            embeddings=np.stack(rows).tolist(), dimension=model.encoder.dim, normalized=body.normalize
        )

    @app.post("/v1/similarity", response_model=SimilarityResponse, responses=ERRORS, tags=["model"])
    async def similarity(body: SimilarityRequest, request: Request) -> SimilarityResponse:  # type: ignore[valid-type]
        """Cosine similarity of every sentence of `sentences_a` with every sentence of `sentences_b`."""
        rows, _ = await compute(request, ("encode", True), body.sentences_a + body.sentences_b)
        a, b = np.stack(rows[: len(body.sentences_a)]), np.stack(rows[len(body.sentences_a) :])
        return SimilarityResponse(scores=np.clip(a @ b.T, -1.0, 1.0).tolist())

    @app.post("/v1/predict", response_model=PredictResponse, responses=ERRORS, tags=["model"])
    async def predict(body: PredictRequest, request: Request) -> PredictResponse:  # type: ignore[valid-type]
        """For each sentence and task: the label with every label's probability, or entity spans with offsets."""
        names = model.check_tasks(body.tasks)
        if not names:
            raise HTTPException(422, "this model has no task heads; use /v1/encode for embeddings")
        pairs = [n for n in names if model.task_types[n].texts_per_example != 1]
        if pairs:
            raise HTTPException(422, f"tasks {pairs} answer pairs of texts, not single texts: use /v1/similarity")
        answers, _ = await compute(request, ("predict", tuple(names)), body.sentences)
        return PredictResponse(
            predictions=[{n: p.to_dict() for n, p in answer.items()} for answer in answers]  # type: ignore[attr-defined]
        )

    @app.post("/v1/embeddings", response_model=EmbeddingsResponse, responses=ERRORS, tags=["openai"])
    async def embeddings(body: EmbeddingsRequest, request: Request) -> EmbeddingsResponse:  # type: ignore[valid-type]
        """OpenAI-compatible embeddings (normalised), so OpenAI clients and vector-database integrations work."""
        if body.dimensions is not None and body.dimensions != model.encoder.dim:
            detail = f"dimensions must be {model.encoder.dim} (this model's size), got {body.dimensions}"
            raise HTTPException(422, detail)
        rows, tokens = await compute(request, ("encode", True), body.input)
        if body.encoding_format == "base64":
            vectors = [base64.b64encode(np.asarray(r, dtype="<f4").tobytes()).decode("ascii") for r in rows]
        else:
            vectors = [np.asarray(r, dtype=np.float32).tolist() for r in rows]
        return EmbeddingsResponse(
            data=[EmbeddingData(index=i, embedding=v) for i, v in enumerate(vectors)],
            model=body.model,
            usage=EmbeddingsUsage(prompt_tokens=tokens, total_tokens=tokens),
        )

    # Middleware: the last added runs first. Requests are identified and logged, then authenticated, then refused
    # at once if the queue is full, then their body is read (so an unauthenticated client never gets to upload one).
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    compute_paths = frozenset(r.path for r in app.routes if "POST" in getattr(r, "methods", ()))
    app.add_middleware(QueueGate, batcher=batcher, metrics=metrics, paths=compute_paths)
    if settings.api_keys:
        app.add_middleware(ApiKeyAuth, keys=settings.api_keys)
    endpoints = frozenset(r.path for r in app.routes if hasattr(r, "methods")) | ({"/docs"} if has_docs else set())
    app.add_middleware(RequestContext, metrics=metrics, endpoints=endpoints)
    return app
