"""Running the service with uvicorn: `serve` for the CLI, `running_server` for tests and embedding in a process.

uvicorn bounds idle keep-alive connections (`timeout_keep_alive`), concurrent connections (`limit_concurrency`,
answered 503 beyond) and graceful shutdown (`timeout_graceful_shutdown`), but it has no timeout for reading a
request: a client that connects and sends its headers or body slowly holds the connection forever. The
`ReadTimeoutProtocol` below adds one (a request must arrive whole within `read_timeout_s` of its first byte, or of
the connection when none came yet; else 408 and close), and a cap on headers that never end for the httptools
parser, which has none of its own (`h11_max_incomplete_event_size` only applies to the h11 parser): 431 once
`max_header_bytes` have arrived without the blank line that ends them.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mtsent.serving.app import ServeSettings, create_app
from mtsent.serving.system import is_loopback

__all__ = ["ReadTimeoutProtocol", "free_port", "load_for_serving", "running_server", "serve", "uvicorn_config"]

log = logging.getLogger("mtsent.serving")

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
_HEADERS_TOO_LARGE = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"


class ReadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a request read timeout and a header size cap (see the module doc)."""

    read_timeout_s: float = 10.0
    max_header_bytes: int = 16_384

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._read_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._in_headers = True
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # still no end of headers after this many bytes (a chunk that completes them may also carry body bytes)
        if self._in_headers and self._header_bytes > self.max_header_bytes:
            self._refuse(_HEADERS_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_headers = True  # the next request on this connection starts with its headers
        self._header_bytes = 0
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._read_timer is None:
            self._read_timer = self.loop.call_later(self.read_timeout_s, self._refuse, _REQUEST_TIMEOUT)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _refuse(self, answer: bytes) -> None:
        """Answer (when no response has started) and close the connection."""
        self._disarm()
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(answer)
        self.transport.close()


def protocol_class(settings: ServeSettings) -> type[ReadTimeoutProtocol]:
    """The protocol class carrying these settings (uvicorn instantiates it per connection)."""
    attrs = {"read_timeout_s": settings.read_timeout_s, "max_header_bytes": settings.max_header_bytes}
    return type("MtsentHttpProtocol", (ReadTimeoutProtocol,), attrs)


def load_for_serving(model: str):
    """Load the model ('default': the shipped one) before listening, so a bad directory is a clear error and
    never a half-started server."""
    from mtsent.model import MultiTaskModel

    try:
        return MultiTaskModel.from_pretrained(model, device="cpu")
    except (ValueError, OSError) as exc:
        raise ValueError(f"could not load the model from {model}: {exc}") from None


def _log_config(log_level: str) -> dict:
    """uvicorn's logging setup plus mtsent's own loggers (the access log with request ids among them)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["mtsent"] = {"handlers": ["default"], "level": log_level.upper(), "propagate": False}
    return config


def uvicorn_config(
    app: FastAPI, settings: ServeSettings, host: str, port: int, log_level: str = "info", own_logging: bool = True
) -> uvicorn.Config:
    """The uvicorn configuration carrying the connection limits of `settings`; `own_logging=False` leaves the
    process's logging setup alone (for a server embedded in tests or another program)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=_log_config(log_level) if own_logging else None,
        access_log=False,  # mtsent.access logs every request with its id instead
        http=protocol_class(settings),
        timeout_keep_alive=max(1, round(settings.keep_alive_s)),
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout_s)),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        lifespan="on",
    )


def exposure_warning(host: str, settings: ServeSettings) -> str | None:
    """The warning to print when the service listens beyond this machine without API keys."""
    if is_loopback(host) or settings.api_keys:
        return None
    return (
        f"listening on {host}: the API is reachable from other machines and no API key is set; "
        "anyone who can connect may use it (set --api-key-file or MTSENT_API_KEYS)"
    )


def serve(
    model: str,
    settings: ServeSettings,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
) -> None:
    """Load the model, then serve it until interrupted (SIGINT/SIGTERM: graceful, bounded shutdown)."""
    app = create_app(load_for_serving(model), settings, model_id=Path(model).name)
    uvicorn.Server(uvicorn_config(app, settings, host, port, log_level)).run()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextmanager
def running_server(app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve `app` with a real uvicorn server in a background thread; yields its base URL."""
    port = port or free_port(host)
    settings = getattr(app.state, "settings", ServeSettings())
    server = uvicorn.Server(uvicorn_config(app, settings, host, port, log_level="warning", own_logging=False))
    thread = threading.Thread(target=server.run, name="mtsent-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
