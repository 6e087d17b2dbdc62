"""Optional API keys: bearer tokens compared in constant time, one answer for every kind of failure."""

from __future__ import annotations

import hmac
import os
from collections.abc import Sequence
from pathlib import Path

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["API_KEYS_ENV", "ApiKeyAuth", "load_api_keys"]

API_KEYS_ENV = "MTSENT_API_KEYS"
"""Comma-separated API keys, used when no key file is given."""

UNAUTHORIZED = "a valid API key is required: send 'Authorization: Bearer <key>'"


def load_api_keys(path: Path | None = None, environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """Keys from a file (one per line, '#' comments and blank lines skipped), else from $MTSENT_API_KEYS."""
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"API key file not found: {path}")
        lines = path.read_text(encoding="utf-8").splitlines()
        keys = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
        if not keys:
            raise ValueError(f"{path} holds no API keys (one key per line)")
        source = str(path)
    else:
        raw = (environ if environ is not None else os.environ).get(API_KEYS_ENV, "")
        keys = [k.strip() for k in raw.split(",") if k.strip()]
        source = f"${API_KEYS_ENV}"
    for i, key in enumerate(keys, start=1):
        if len(key) < 16 or not key.isascii() or not key.isprintable() or " " in key:
            raise ValueError(f"API key {i} of {source} must be at least 16 printable ASCII characters without spaces")
    return tuple(keys)


class ApiKeyAuth:
    """ASGI middleware requiring `Authorization: Bearer <key>` on every path under `prefix`.

    Every key is compared (no early exit) with `hmac.compare_digest`, and a missing header, another scheme and a
    wrong key all get the same 401, so neither timing nor the message tells which part failed. Probes, metrics
    and the API docs stay open.
    """

    def __init__(self, app: ASGIApp, keys: Sequence[str], prefix: str = "/v1/") -> None:
        self.app = app
        self.keys = [k.encode("ascii") for k in keys]
        self.prefix = prefix

    def allowed(self, header: bytes | None) -> bool:
        scheme, _, token = (header or b"").partition(b" ")
        token = token.strip()
        match = False
        for key in self.keys:
            match |= hmac.compare_digest(token, key)
        return match and scheme.lower() == b"bearer"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        protected = scope["type"] == "http" and scope["path"].startswith(self.prefix)
        if protected and not self.allowed(authorization(scope)):
            response = JSONResponse({"detail": UNAUTHORIZED}, 401, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def authorization(scope: Scope) -> bytes | None:
    """The raw Authorization header (bytes: the keys are compared as bytes, in constant time)."""
    return next((value for name, value in scope["headers"] if name == b"authorization"), None)
