"""Running the service with uvicorn: `serve` for the CLI, `running_server` for tests and embedding in a process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from mtsent.serving.app import ServeSettings, create_app

__all__ = ["free_port", "load_for_serving", "running_server", "serve"]


def load_for_serving(model: str | None):
    """Load the model before listening, so a bad directory is a clear error and never a half-started server."""
    from mtsent.model import MultiTaskModel

    if model is None:
        return MultiTaskModel()
    try:
        return MultiTaskModel.from_pretrained(model, device="cpu")
    except (ValueError, OSError) as exc:
        raise ValueError(f"could not load the model from {model}: {exc}") from None


def serve(
    model: str | None,
    settings: ServeSettings,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
) -> None:
    """Load the model, then serve it until interrupted."""
    app = create_app(load_for_serving(model), settings)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@contextmanager
def running_server(app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve `app` with a real uvicorn server in a background thread; yields its base URL."""
    port = port or free_port(host)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
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
