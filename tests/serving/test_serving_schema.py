"""Schemathesis fuzzes every operation of the service's own OpenAPI schema: no input may cause a 5xx.

Valid (positive) and invalid (negative) requests, a bounded number per operation so the suite stays quick on two
cores. The cases are drawn with `APIOperation.as_strategy` inside an ordinary test because the schema lives on
a server that a session fixture starts (schemathesis' lazy pytest loader does not support pytest 9).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

OPERATIONS = [
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/v1/model"),
    ("POST", "/v1/encode"),
    ("POST", "/v1/similarity"),
    ("POST", "/v1/predict"),
    ("POST", "/v1/embeddings"),
]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="session")
def api_schema(base_url: str):
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


def test_schema_lists_every_operation(api_schema) -> None:
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


# A GET here takes no parameters, so it has no invalid input to generate.
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if method == "POST" or mode is GenerationMode.POSITIVE
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_no_server_errors(api_schema, base_url: str, method: str, path: str, mode: GenerationMode) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def check(case) -> None:
        response = case.call(base_url=base_url, timeout=60)
        case.validate_response(response, checks=CHECKS)

    check()
