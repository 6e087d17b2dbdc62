"""The micro-batcher alone: merging by key, size cap, the no-batching baseline, errors reach their callers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mtsent.serving.batching import MicroBatcher


class Recorder:
    """A fake model: returns (key, sentence) per sentence and records each call and its thread."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[object, list[str]]] = []
        self.threads: set[str] = set()
        self.delay = delay

    def __call__(self, key, sentences):
        self.threads.add(threading.current_thread().name)
        self.calls.append((key, list(sentences)))
        time.sleep(self.delay)
        if "boom" in sentences:
            raise RuntimeError("boom")
        return [(key, s) for s in sentences]


def run_requests(batcher: MicroBatcher, requests: list[tuple[object, list[str]]]) -> list:
    async def main():
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(k, s) for k, s in requests), return_exceptions=True)
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_merges_same_key_and_keeps_order() -> None:
    model = Recorder()
    requests = [(("encode", True), [f"s{i}", f"t{i}"]) for i in range(5)]
    results = run_requests(MicroBatcher(model, max_batch_size=64, max_wait_ms=50), requests)
    assert results == [[(k, s) for s in sents] for k, sents in requests]
    assert len(model.calls) == 1 and len(model.calls[0][1]) == 10
    assert model.threads == {"mtsent-model_0"}


def test_groups_by_key() -> None:
    model = Recorder()
    requests = [(("encode", True), ["a"]), (("predict", ("ner",)), ["b"]), (("encode", True), ["c"])]
    results = run_requests(MicroBatcher(model, max_wait_ms=50), requests)
    assert results[1] == [(("predict", ("ner",)), "b")]
    assert sorted((k, tuple(s)) for k, s in model.calls) == [
        (("encode", True), ("a", "c")),
        (("predict", ("ner",)), ("b",)),
    ]


def test_respects_max_batch_size() -> None:
    model = Recorder()
    run_requests(MicroBatcher(model, max_batch_size=4, max_wait_ms=50), [("k", ["x", "y", "z"])] * 4)
    assert all(len(sentences) <= 4 for _, sentences in model.calls)
    assert sum(len(s) for _, s in model.calls) == 12


def test_disabled_runs_each_request_alone() -> None:
    model = Recorder()
    run_requests(MicroBatcher(model, enabled=False), [("k", ["x"])] * 6)
    assert len(model.calls) == 6


def test_error_reaches_only_its_batch() -> None:
    model = Recorder()
    results = run_requests(MicroBatcher(model, enabled=False), [("k", ["boom"]), ("k", ["fine"])])
    assert isinstance(results[0], RuntimeError) and results[1] == [("k", "fine")]


def test_event_loop_stays_free_while_model_runs() -> None:
    model = Recorder(delay=0.3)

    async def main() -> float:
        batcher = MicroBatcher(model)
        await batcher.start()
        job = asyncio.create_task(batcher.submit("k", ["slow"]))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await asyncio.sleep(0.01)  # would be stuck behind the model call if it ran on the loop
        waited = time.monotonic() - started
        await job
        await batcher.stop()
        return waited

    assert asyncio.run(main()) < 0.1


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"max_batch_size": 0}, "max_batch_size"), ({"max_wait_ms": -1}, "max_wait")]
)
def test_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MicroBatcher(Recorder(), **kwargs)
