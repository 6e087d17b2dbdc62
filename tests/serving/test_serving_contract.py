"""The contract: strict types, one visible-text rule in schema and server, task enum, precise parse errors, probes,
request ids, metrics, offline docs, deterministic fp32 answers, and OpenAI-compatible embeddings."""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import numpy as np
import pytest

from mtsent.inputs import VISIBLE_CHARACTER


@pytest.mark.parametrize("text", ["\u200b", "\ufeff", "\x00\x01", " \u2060\u200d ", "\u3000\u00ad"])
@pytest.mark.parametrize("path", ["/v1/encode", "/v1/predict"])
def test_invisible_text_is_refused(client: httpx.Client, path: str, text: str) -> None:
    r = client.post(path, json={"sentences": ["visible", text]})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("sentences[1] ")


def test_schema_pattern_is_the_server_rule(client: httpx.Client) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["EncodeRequest"]["properties"]["sentences"]["items"]["pattern"] == VISIBLE_CHARACTER
    # the same pattern read by Python's re agrees with the server on edge cases
    for text, ok in [("a\u200b", True), ("\u200b", False), ("\ufeff ", False), ("é", True)]:
        assert bool(re.search(VISIBLE_CHARACTER, text)) is ok
        assert (client.post("/v1/encode", json={"sentences": [text]}).status_code == 200) is ok


@pytest.mark.parametrize("value", ["yes", 1, 0, "true", None])
def test_booleans_are_strict(client: httpx.Client, value: object) -> None:
    r = client.post("/v1/encode", json={"sentences": ["hi"], "normalize": value})
    assert r.status_code == 422 and "normalize" in r.json()["detail"]


def test_tasks_are_an_enum_of_the_model(client: httpx.Client) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    tasks = schemas["PredictRequest"]["properties"]["tasks"]["anyOf"][0]
    assert tasks["items"]["enum"] == ["sentiment", "topic", "ner"]


def test_parse_error_names_the_position(client: httpx.Client) -> None:
    r = client.post("/v1/encode", content=b'{"sentences":\n ["a" "b"]}', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["detail"] == "malformed JSON body at line 2, column 7: Expecting ',' delimiter"


def test_health_head_and_ready(client: httpx.Client) -> None:
    assert client.head("/health").status_code == 200
    r = client.get("/ready")
    assert r.status_code == 200 and r.json()["ready"] is True and r.json()["max_queue_tokens"] > 0
    assert client.head("/ready").status_code == 200


def test_request_id_is_echoed_or_generated(client: httpx.Client) -> None:
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/health").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert client.get("/health", headers={"X-Request-ID": "has space"}).headers["x-request-id"] != "has space"
    r = client.post("/v1/encode", json={"sentences": []}, headers={"X-Request-ID": "bad-input-1"})
    assert r.status_code == 422 and r.headers["x-request-id"] == "bad-input-1"


def test_access_log_carries_the_request_id(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="mtsent.access"):
        client.get("/health", headers={"X-Request-ID": "log-me-42"})
        deadline = time.monotonic() + 5  # the line is written once the answer has been sent
        while not any(r.getMessage().startswith("log-me-42 GET /health 200 ") for r in caplog.records):
            assert time.monotonic() < deadline, "no access log line with the request id"
            time.sleep(0.02)


def test_metrics(client: httpx.Client) -> None:
    client.post("/v1/encode", json={"sentences": ["count me"]})
    client.post("/v1/encode", json={"sentences": ["x"]}, headers={"X-Timeout-Ms": "soon"})
    text = client.get("/metrics").text
    assert 'mtsent_requests_total{endpoint="/v1/encode",method="POST",status="200"}' in text
    assert 'mtsent_requests_total{endpoint="/v1/encode",method="POST",status="400"}' in text
    for name in (
        "mtsent_request_duration_seconds_bucket",
        "mtsent_queue_tokens",
        "mtsent_batch_sentences_bucket",
        "mtsent_batch_tokens_bucket",
        "mtsent_rejected_requests_total",
        "mtsent_timed_out_requests_total",
    ):
        assert name in text


def test_bad_timeout_header(client: httpx.Client) -> None:
    r = client.post("/v1/encode", json={"sentences": ["x"]}, headers={"X-Timeout-Ms": "-5"})
    assert r.status_code == 400 and "X-Timeout-Ms must be a positive whole number" in r.json()["detail"]


def test_docs_work_offline(client: httpx.Client) -> None:
    html = client.get("/docs").text
    assert "/docs/assets/swagger-ui-bundle.js" in html and "cdn" not in html.lower()
    asset = client.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
    assert client.get("/redoc").status_code == 404


def test_model_says_what_runs(client: httpx.Client) -> None:
    info = client.get("/v1/model").json()
    assert info["precision"] == {"requested": "fp32", "running": "fp32", "batch_invariant": True}
    assert info["limits"]["timeout_ms"] == 30_000 and info["limits"]["batch_tokens"] > 0


def test_fp32_answers_do_not_depend_on_batch_mates(base_url: str, served_app) -> None:
    """Each text alone, then the same texts in one request with others and among concurrent requests."""
    texts = ["Angela Merkel visited Paris on Monday.", "Great match!", "Shares fell sharply in Tokyo."]
    others = ["word " * 55, "The central bank kept rates unchanged.", "a b c d e f g h i j k l m n o p"]

    async def run() -> tuple[list, list, list, int]:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as ac:
            alone, embed_alone = [], []
            for t in texts:
                alone.append((await ac.post("/v1/predict", json={"sentences": [t]})).json()["predictions"][0])
                embed_alone.append((await ac.post("/v1/encode", json={"sentences": [t]})).json()["embeddings"][0])
            before = served_app.state.batcher.batches
            mixed = others[:1] + texts[:1] + others[1:] + texts[1:]
            bursts = [ac.post("/v1/predict", json={"sentences": mixed})]
            bursts += [ac.post("/v1/predict", json={"sentences": [t]}) for t in texts + others]
            bursts += [ac.post("/v1/encode", json={"sentences": others + texts})]
            answers = await asyncio.gather(*bursts)
            merged_calls = served_app.state.batcher.batches - before
            return alone, embed_alone, [a.json() for a in answers], merged_calls

    alone, embed_alone, answers, calls = asyncio.run(run())
    assert calls < len(answers)  # requests did share model calls
    in_batch = answers[0]["predictions"]
    assert json.dumps([in_batch[1], in_batch[4], in_batch[5]]) == json.dumps(alone)
    assert json.dumps([a["predictions"][0] for a in answers[1:4]]) == json.dumps(alone)
    assert answers[-1]["embeddings"][3:] == embed_alone


def test_openai_client(base_url: str, client: httpx.Client) -> None:
    openai = pytest.importorskip("openai")
    oa = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused-without-keys", max_retries=0)
    texts = ["A cat sits on the mat.", "Stocks fell sharply."]
    reference = np.array(client.post("/v1/encode", json={"sentences": texts}).json()["embeddings"])
    result = oa.embeddings.create(input=texts, model="mtsent")  # the client asks for base64 and decodes it
    assert [d.index for d in result.data] == [0, 1] and result.model == "mtsent"
    np.testing.assert_allclose(np.array([d.embedding for d in result.data]), reference, rtol=0, atol=1e-7)
    assert result.usage.prompt_tokens == result.usage.total_tokens > len(texts)
    floats = oa.embeddings.create(input=texts[0], model="mtsent", encoding_format="float")
    np.testing.assert_allclose(floats.data[0].embedding, reference[0], atol=1e-7)
    with pytest.raises(openai.UnprocessableEntityError):
        oa.embeddings.create(input=[[101, 2023]], model="mtsent")
    with pytest.raises(openai.UnprocessableEntityError):
        oa.embeddings.create(input="hi", model="mtsent", dimensions=12)
