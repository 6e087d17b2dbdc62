"""A real uvicorn server on a free loopback port, shared by the serving tests (the model loads once)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from mtsent.serving import ServeSettings

# Small enough that fuzzed requests stay fast on two cores; the sentence limit keeps its default (256).
# fp32: the tests compare the service's answers with the library's reference precision
# warm-up off: it has tests of its own, and every app started here would pay for it
TEST_SETTINGS = ServeSettings(max_chars=300, max_body_bytes=200_000, max_wait_ms=5.0, precision="fp32", warmup=False)


@pytest.fixture(scope="session")
def served_model(tiny_model_dir):
    from mtsent.serving.server import load_for_serving

    return load_for_serving(str(tiny_model_dir))


@pytest.fixture(scope="session")
def served_app(served_model) -> FastAPI:
    from mtsent.serving import create_app

    return create_app(served_model, TEST_SETTINGS)


@pytest.fixture(scope="session")
def base_url(served_app) -> Iterator[str]:
    from mtsent.serving.server import running_server

    with running_server(served_app) as url:
        yield url


@pytest.fixture(scope="session")
def client(base_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60) as c:
        yield c
