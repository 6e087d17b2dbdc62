"""Under pressure: a full queue answers 503 at once, deadlines give 504 and drop the work, a client that hangs up
has its work dropped, API keys, slow-sending connections are closed, and SIGTERM ends within its bound."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from mtsent.serving import ServeSettings, create_app
from mtsent.serving.server import free_port, running_server

TEST_SETTINGS = ServeSettings(max_chars=300, max_body_bytes=200_000, precision="fp32", warmup=False)  # tested apart
# Many short model calls: a large request stays in the queue for a while, so the tests can act meanwhile.
SLOW = replace(TEST_SETTINGS, batch_tokens=16, max_batch_size=2)
BIG = {"sentences": [f"sentence number {i} with a few more words in it" for i in range(200)]}


@pytest.fixture(scope="module")
def slow_server(served_model):
    app = create_app(served_model, replace(SLOW, max_queue_tokens=600))
    with running_server(app) as url:
        yield url, app


def wait_until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def metric(url: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise KeyError(name)


def send_big_in_background(url: str, timeout_s: float) -> socket.socket:
    """Send BIG over a raw socket (the answer is not read) and return the socket."""
    body = httpx.Request("POST", f"{url}/v1/predict", json=BIG)
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout_s)
    head = f"POST /v1/predict HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
    sock.sendall(f"{head}content-length: {len(body.read())}\r\n\r\n".encode() + body.read())
    return sock


def test_full_queue_answers_503_at_once(slow_server) -> None:
    url, app = slow_server
    batcher = app.state.batcher
    sock = send_big_in_background(url, 60)
    try:
        wait_until(lambda: batcher.queued_tokens > 100)
        started = time.monotonic()
        r = httpx.post(f"{url}/v1/predict", json=BIG, timeout=10)
        assert r.status_code == 503 and time.monotonic() - started < 1.0
        assert int(r.headers["retry-after"]) >= 1 and "queue is full" in r.json()["detail"]
        # refused before its body is read: a malformed one gets the 503, not a 400
        broken = httpx.post(f"{url}/v1/predict", content=b"{not json", headers={"content-type": "application/json"})
        assert broken.status_code == 503 and "queue is full" in broken.json()["detail"]
        assert httpx.post(f"{url}/v1/nothing-here", json=BIG).status_code != 503  # only the model's endpoints
        assert httpx.get(f"{url}/ready").status_code in (200, 503)
        assert 'mtsent_rejected_requests_total{reason="queue_full"}' in httpx.get(f"{url}/metrics").text
    finally:
        sock.close()
    wait_until(lambda: batcher.queued_tokens == 0)


def test_gate_refuses_when_requests_let_in_hold_the_room(slow_server) -> None:
    """Room reserved by requests that passed the gate and are not counted yet fills the queue for the next one:
    it is refused before its body is read (a malformed body gets the 503, not a 400)."""
    url, app = slow_server
    batcher = app.state.batcher
    wait_until(lambda: batcher.queued_tokens == 0)
    broken = {"content": b"{not json", "headers": {"content-type": "application/json"}}
    held = batcher.reserve(600)
    try:
        r = httpx.post(f"{url}/v1/predict", **broken)
        assert r.status_code == 503 and "queue is full" in r.json()["detail"]
    finally:
        held.release()
    assert httpx.post(f"{url}/v1/predict", **broken).status_code == 400
    assert batcher.reserved_tokens == 0  # the requests let in gave their room back


def test_deadline_gives_504_and_drops_the_work(slow_server) -> None:
    url, app = slow_server
    batcher = app.state.batcher
    wait_until(lambda: batcher.queued_tokens == 0)
    before = batcher.batches
    r = httpx.post(f"{url}/v1/predict", json=BIG, headers={"X-Timeout-Ms": "300"}, timeout=30)
    assert r.status_code == 504 and "deadline of 300 ms" in r.json()["detail"]
    assert batcher.queued_tokens == 0
    time.sleep(0.3)
    assert batcher.batches - before < len(BIG["sentences"]) // 2  # far fewer calls than the whole request needs


def test_client_that_hangs_up_has_its_work_dropped(slow_server) -> None:
    url, app = slow_server
    batcher = app.state.batcher
    wait_until(lambda: batcher.queued_tokens == 0)
    before, abandoned = batcher.batches, metric(url, "mtsent_abandoned_requests_total")
    sock = send_big_in_background(url, 60)
    wait_until(lambda: batcher.queued_tokens > 0)
    sock.close()
    wait_until(lambda: batcher.queued_tokens == 0, seconds=5)
    time.sleep(0.3)
    assert batcher.batches - before < len(BIG["sentences"]) // 2
    assert metric(url, "mtsent_abandoned_requests_total") == abandoned + 1


def test_small_request_is_not_stuck_behind_a_large_one(served_model) -> None:
    app = create_app(served_model, SLOW)
    with running_server(app) as url:
        sock = send_big_in_background(url, 60)
        try:
            wait_until(lambda: app.state.batcher.queued_tokens > 0)
            started = time.monotonic()
            r = httpx.post(f"{url}/v1/predict", json={"sentences": ["Quick one."]}, timeout=30)
            small = time.monotonic() - started
            assert r.status_code == 200
            assert app.state.batcher.queued_tokens > 0, "the large request should still be waiting"
            assert small < 5.0
        finally:
            sock.close()


def test_api_keys(served_model, tmp_path: Path) -> None:
    key = "k" * 24
    app = create_app(served_model, replace(TEST_SETTINGS, api_keys=(key, "another-key-0123456789")))
    with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        answers = [
            c.get("/v1/model"),
            c.get("/v1/model", headers={"Authorization": "Bearer wrong"}),
            c.get("/v1/model", headers={"Authorization": f"Basic {key}"}),
            c.post("/v1/encode", json={"sentences": ["hi"]}, headers={"Authorization": f"Bearer {key}x"}),
        ]
        assert {r.status_code for r in answers} == {401}
        assert len({r.text for r in answers}) == 1  # the same answer whatever part failed
        assert answers[0].headers["www-authenticate"] == "Bearer"
        ok = c.post("/v1/encode", json={"sentences": ["hi"]}, headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        assert c.get("/health").status_code == 200 and c.get("/metrics").status_code == 200


def test_load_api_keys(tmp_path: Path) -> None:
    from mtsent.serving.security import load_api_keys

    keys = tmp_path / "keys"
    keys.write_text("# service keys\nfirst-key-0123456789\n\n second-key-0123456789 \n", encoding="utf-8")
    assert load_api_keys(keys) == ("first-key-0123456789", "second-key-0123456789")
    assert load_api_keys(None, {"MTSENT_API_KEYS": "a-key-from-the-env-1, b-key-from-the-env-2"}) == (
        "a-key-from-the-env-1",
        "b-key-from-the-env-2",
    )
    assert load_api_keys(None, {}) == ()
    with pytest.raises(ValueError, match="at least 16"):
        load_api_keys(None, {"MTSENT_API_KEYS": "short"})
    with pytest.raises(FileNotFoundError, match="API key file not found"):
        load_api_keys(tmp_path / "absent")


def test_slow_senders_are_closed_and_health_stays_fast(served_model) -> None:
    app = create_app(served_model, replace(TEST_SETTINGS, read_timeout_s=0.5))
    with running_server(app) as url:
        host, port = url.removeprefix("http://").split(":")
        socks = []
        half_headers = b"GET /health HTTP/1.1\r\nhost: x\r\n"
        half_body = b"POST /v1/encode HTTP/1.1\r\ncontent-length: 50\r\n\r\n{"
        for partial in (half_headers, half_body):
            for _ in range(10):
                s = socket.create_connection((host, int(port)), timeout=5)
                s.sendall(partial)
                socks.append(s)
        idle = socket.create_connection((host, int(port)), timeout=5)  # connected, sends nothing
        socks.append(idle)
        started = time.monotonic()
        assert httpx.get(f"{url}/health", timeout=2).status_code == 200
        assert time.monotonic() - started < 0.5
        for s in socks:
            answer = s.recv(1024)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408")
            assert s.recv(1024) == b""  # closed
            s.close()
        assert time.monotonic() - started < 3.0


def test_oversized_headers_get_431(served_model) -> None:
    app = create_app(served_model, replace(TEST_SETTINGS, max_header_bytes=4096))
    with running_server(app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nhost: x\r\nx-padding: " + b"p" * 3000)
            time.sleep(0.1)
            s.sendall(b"p" * 3000)  # headers that go on and on
            assert s.recv(1024).startswith(b"HTTP/1.1 431")
        big_but_whole = httpx.post(f"{url}/v1/encode", json={"sentences": ["x" * 250] * 40}, timeout=30)
        assert big_but_whole.status_code == 200  # a large body is not mistaken for large headers


def test_sigterm_ends_within_the_bound(tiny_model_dir: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "mtsent", "serve", "--model", str(tiny_model_dir), "--port", str(port)]
    cmd += ["--shutdown-timeout", "2", "--max-wait-ms", "1000", "--batch-tokens", "16", "--max-batch-size", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        sock = send_big_in_background(f"http://127.0.0.1:{port}", 60)  # minutes of work at one sentence per call
        time.sleep(1.0)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert time.monotonic() - started < 2 + 5  # the bound, plus one model call and the exit
        sock.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
