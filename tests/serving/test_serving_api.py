"""Every endpoint and every kind of bad input against the real server: 4xx with a readable message, never 5xx."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import numpy as np
import pytest


def test_health(client: httpx.Client) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["model_loaded"] is True


def test_model_info(client: httpx.Client) -> None:
    info = client.get("/v1/model").json()
    assert info["dimension"] == 384 and info["pooling"] == "mean"
    tasks = {t["name"]: t for t in info["tasks"]}
    assert set(tasks) == {"sentiment", "topic", "ner"}
    assert tasks["ner"]["type"] == "token_classification" and tasks["ner"]["labels"][:2] == ["O", "B-PER"]
    assert info["limits"]["max_sentences"] == 256


def test_encode(client: httpx.Client, served_model) -> None:
    sentences = ["A cat sits on the mat.", "Stocks fell sharply today."]
    r = client.post("/v1/encode", json={"sentences": sentences})
    assert r.status_code == 200
    body = r.json()
    emb = np.array(body["embeddings"])
    assert emb.shape == (2, 384) and body["normalized"] is True
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb, served_model.encoder.encode(sentences, precision="fp32"), atol=1e-5)
    raw = np.array(client.post("/v1/encode", json={"sentences": sentences, "normalize": False}).json()["embeddings"])
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)


def test_similarity(client: httpx.Client) -> None:
    r = client.post("/v1/similarity", json={"sentences_a": ["I love it", "Rain today"], "sentences_b": ["I love it"]})
    assert r.status_code == 200
    scores = np.array(r.json()["scores"])
    assert scores.shape == (2, 1)
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-4) and scores[1, 0] < scores[0, 0]


def test_predict_all_tasks(client: httpx.Client) -> None:
    text = "Angela Merkel visited Paris on Monday."
    r = client.post("/v1/predict", json={"sentences": [text, "Great match!"]})
    assert r.status_code == 200
    predictions = r.json()["predictions"]
    assert len(predictions) == 2 and set(predictions[0]) == {"sentiment", "topic", "ner"}
    sentiment = predictions[0]["sentiment"]
    assert sentiment["label"] in ("negative", "positive")
    assert sum(sentiment["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    ner = predictions[0]["ner"]
    assert ner["words"][0] == "Angela" and len(ner["tags"]) == len(ner["words"])
    for e in ner["entities"]:
        assert text[e["start"] : e["end"]] == e["text"]


def test_predict_chosen_tasks(client: httpx.Client) -> None:
    r = client.post("/v1/predict", json={"sentences": ["hello"], "tasks": ["topic"]})
    assert r.status_code == 200 and list(r.json()["predictions"][0]) == ["topic"]


def test_openapi_documents_models_and_errors(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/v1/encode", "/v1/similarity", "/v1/predict"):
        responses = spec["paths"][path]["post"]["responses"]
        assert {"200", "400", "413", "422"} <= set(responses)
        assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert spec["components"]["schemas"]["EncodeRequest"]["properties"]["sentences"]["maxItems"] == 256


def post_error(client: httpx.Client, path: str, status: int, **kwargs) -> str:
    r = client.post(path, **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"sentences": []}, "sentences is empty"),
        ({"sentences": ["fine", "ok", "good", "  \t"]}, "sentences[3] is empty or whitespace only"),
        ({"sentences": ["fine", ""]}, "sentences[1] is empty or whitespace only"),
        ({"sentences": ["fine", 7]}, "sentences[1] must be a string, got int"),
        ({"sentences": "just one string"}, "sentences must be a list of strings, got a string"),
        ({"sentences": ["x"] * 257}, "sentences has 257 sentences, more than the limit of 256"),
        ({"sentences": ["a" * 301]}, "sentences[0] has 301 characters, more than the limit of 300"),
        ({}, "sentences is required"),
        ({"sentences": ["ok"], "sentence": 1}, "unknown field 'sentence'"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/encode", "/v1/predict"])
def test_bad_sentences(client: httpx.Client, path: str, body: dict, message: str) -> None:
    assert message in post_error(client, path, 422, json=body)


def test_bad_similarity_names_the_list(client: httpx.Client) -> None:
    detail = post_error(client, "/v1/similarity", 422, json={"sentences_a": ["ok"], "sentences_b": ["ok", " "]})
    assert detail == "sentences_b[1] is empty or whitespace only"


def test_unknown_task_lists_valid_ones(client: httpx.Client) -> None:
    detail = post_error(client, "/v1/predict", 422, json={"sentences": ["hi"], "tasks": ["sentiment", "emotion"]})
    assert detail == "unknown task 'emotion'; valid tasks: sentiment, topic, ner"


def test_empty_task_list(client: httpx.Client) -> None:
    assert "tasks" in post_error(client, "/v1/predict", 422, json={"sentences": ["hi"], "tasks": []})


@pytest.mark.parametrize("content", [b'{"sentences": ["a"', b"not json", b"\xff\xfe"])
def test_malformed_json(client: httpx.Client, content: bytes) -> None:
    headers = {"content-type": "application/json"}
    assert "malformed JSON" in post_error(client, "/v1/encode", 400, content=content, headers=headers)


def test_body_not_json_object(client: httpx.Client) -> None:
    detail = post_error(client, "/v1/encode", 422, content=b"sentences=a", headers={"content-type": "text/plain"})
    assert "JSON object" in detail


def test_body_over_limit(client: httpx.Client) -> None:
    big = {"sentences": ["word " * 50] * 1000}
    assert "larger than the limit of 200000 bytes" in post_error(client, "/v1/encode", 413, json=big)


def test_streamed_body_over_limit(client: httpx.Client) -> None:
    def chunks():
        for _ in range(300):
            yield b" " * 1000

    detail = post_error(client, "/v1/encode", 413, content=chunks(), headers={"content-type": "application/json"})
    assert "larger than the limit" in detail


def test_unknown_route_is_json(client: httpx.Client) -> None:
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_still_serving_after_errors(client: httpx.Client) -> None:
    for body in ({"sentences": []}, {"sentences": [None]}, {"sentences": ["x"], "tasks": ["nope"]}):
        client.post("/v1/predict", json=body)
    assert client.get("/health").status_code == 200
    assert client.post("/v1/predict", json={"sentences": ["still here"]}).status_code == 200


def test_health_answers_while_model_works(client: httpx.Client, base_url: str) -> None:
    heavy = {"sentences": [f"sentence number {i} " + "word " * 50 for i in range(256)]}
    with concurrent.futures.ThreadPoolExecutor(1) as pool, httpx.Client(base_url=base_url, timeout=60) as other:
        job = pool.submit(other.post, "/v1/predict", json=heavy)
        time.sleep(0.3)
        started = time.monotonic()
        r = client.get("/health", timeout=5)
        assert r.status_code == 200 and time.monotonic() - started < 1.0
        assert not job.done(), "health should answer while the heavy request is still running"
        assert job.result().status_code == 200


def test_concurrent_requests_are_merged(base_url: str, served_app, served_model) -> None:
    import asyncio

    sentences = [f"request number {i}" for i in range(16)]
    batcher = served_app.state.batcher
    before = batcher.batches

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as ac:
            return await asyncio.gather(*(ac.post("/v1/encode", json={"sentences": [s]}) for s in sentences))

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    assert batcher.batches - before < len(sentences)  # some requests shared a forward pass
    rows = np.array([r.json()["embeddings"][0] for r in responses])
    reference = served_model.encoder.encode(sentences, precision="fp32")
    # each request got its own row (the service runs fp32, each text alone: equal to a batch up to float rounding),
    # and every row is nearest to its own sentence's reference
    np.testing.assert_allclose(rows, reference, atol=1e-5)
    assert (np.asarray(rows) @ reference.T).argmax(axis=1).tolist() == list(range(len(sentences)))


def test_model_without_heads_refuses_predict(encoder) -> None:
    from fastapi.testclient import TestClient

    from mtsent import MultiTaskModel
    from mtsent.serving import ServeSettings, create_app

    with TestClient(create_app(MultiTaskModel(encoder, []), ServeSettings(warmup=False))) as c:
        assert c.get("/v1/model").json()["tasks"] == []
        r = c.post("/v1/predict", json={"sentences": ["hi"]})
        assert r.status_code == 422 and "no task heads" in r.json()["detail"]
        assert c.post("/v1/encode", json={"sentences": ["hi"]}).status_code == 200
