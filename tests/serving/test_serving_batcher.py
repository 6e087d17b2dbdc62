"""The micro-batcher alone: merging by key, size cap, the no-batching baseline, errors reach their callers."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from fastapi.testclient import TestClient

from mtsent.precision import drop_inference_copies
from mtsent.serving import ServeSettings, create_app
from mtsent.serving.app import pause_between_blocks
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


def test_large_request_is_split_and_small_ones_join_early() -> None:
    """A 40-sentence request is cut into token-bounded calls; a request arriving later rides the next call."""
    model = Recorder(delay=0.05)

    async def main() -> list:
        batcher = MicroBatcher(model, max_batch_size=64, max_wait_ms=0, batch_tokens=40)
        await batcher.start()
        big = asyncio.create_task(batcher.submit("k", [f"big{i}" for i in range(40)], costs=[10] * 40))
        await asyncio.sleep(0.01)
        small = await batcher.submit("k", ["small"], costs=[3])
        assert not big.done(), "the small request must not wait for the whole large one"
        await big
        await batcher.stop()
        return small

    assert asyncio.run(main()) == [("k", "small")]
    sizes = [len(s) for _, s in model.calls]
    assert max(sizes) <= 4 and sum(sizes) == 41
    first_with_small = next(i for i, (_, s) in enumerate(model.calls) if "small" in s)
    assert first_with_small <= 1


def test_fair_share_between_large_requests() -> None:
    model = Recorder(delay=0.01)
    requests = [("k", [f"a{i}" for i in range(12)]), ("k", [f"b{i}" for i in range(12)])]
    run_requests(MicroBatcher(model, max_wait_ms=0, batch_tokens=4), requests)
    # every call mixes both requests instead of finishing one before starting the other
    assert all({s[0] for s in sentences} == {"a", "b"} for _, sentences in model.calls)


def test_a_stream_of_shorter_newcomers_cannot_starve_an_older_request() -> None:
    """Under overload new requests keep arriving with shorter texts than one that waits; fair queuing's clock
    moves on with every call, so the older request is served within a few calls, not when the stream stops."""
    model = Recorder(delay=0.005)

    async def main() -> int:
        batcher = MicroBatcher(model, max_batch_size=2, max_wait_ms=0)
        await batcher.start()
        shorts: list[asyncio.Task] = []

        def top_up() -> None:  # keep four short requests waiting at all times
            while sum(not t.done() for t in shorts) < 4:
                shorts.append(asyncio.create_task(batcher.submit("k", [f"short{len(shorts)}"], costs=[3])))

        top_up()
        await asyncio.sleep(0)
        older = asyncio.create_task(batcher.submit("k", ["older"], costs=[10]))
        while not older.done() and batcher.batches < 60:
            top_up()
            await asyncio.sleep(0.001)
        answered_after = next(i for i, (_, s) in enumerate(model.calls) if "older" in s) if older.done() else -1
        for t in shorts:
            t.cancel()
        await asyncio.gather(*shorts, return_exceptions=True)
        await batcher.stop()
        return answered_after

    answered_after = asyncio.run(main())
    assert 0 <= answered_after <= 8, f"the older request waited {answered_after} calls (-1: never answered)"


def test_full_queue_refuses_at_once() -> None:
    from mtsent.serving.batching import QueueFull

    async def main() -> None:
        batcher = MicroBatcher(Recorder(delay=0.2), max_wait_ms=0, max_queue_tokens=10, batch_tokens=2)
        await batcher.start()
        first = asyncio.create_task(batcher.submit("k", ["x"] * 8, costs=[1] * 8))
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull) as info:
            await batcher.submit("k", ["y"] * 5, costs=[1] * 5)
        assert info.value.retry_after >= 1
        assert len(await first) == 8
        await batcher.stop()

    asyncio.run(main())


def test_oversized_request_is_admitted_into_an_empty_queue() -> None:
    results = run_requests(MicroBatcher(Recorder(), max_queue_tokens=5), [("k", ["x"] * 9)])
    assert len(results[0]) == 9


def test_cancelled_request_leaves_the_queue_uncomputed() -> None:
    model = Recorder(delay=0.05)

    async def main() -> None:
        batcher = MicroBatcher(model, max_wait_ms=0, batch_tokens=1)
        await batcher.start()
        job = asyncio.create_task(batcher.submit("k", [f"s{i}" for i in range(50)]))
        await asyncio.sleep(0.08)
        job.cancel()
        await asyncio.sleep(0.2)
        assert batcher.queued_tokens == 0 and batcher.queued == 0
        await batcher.stop()

    asyncio.run(main())
    assert len(model.calls) < 10


def test_calls_hold_one_size_class_and_long_texts_run_alone() -> None:
    """Short texts are not computed beside long ones (their answer would wait for the long pass), and a text over
    a quarter of the budget gets a call of its own."""
    model = Recorder()

    async def main() -> None:
        batcher = MicroBatcher(model, max_wait_ms=50, batch_tokens=1024)
        await batcher.start()
        jobs = [
            batcher.submit("k", ["long1", "long2", "mid"], costs=[400, 400, 60]),
            batcher.submit("k", ["short1"], costs=[12]),
            batcher.submit("k", ["short2", "short3"], costs=[15, 40]),
        ]
        await asyncio.gather(*jobs)
        await batcher.stop()

    asyncio.run(main())
    calls = [sentences for _, sentences in model.calls]
    assert calls[0] == ["short1", "short2", "short3"]  # 40 <= 4 x 12 rides along, 400 does not
    assert ["long1"] in calls and ["long2"] in calls
    assert sorted(s for c in calls for s in c) == ["long1", "long2", "mid", "short1", "short2", "short3"]


def test_warm_up_runs_on_the_worker_thread_and_is_not_counted() -> None:
    model, observed = Recorder(), []
    batcher = MicroBatcher(model, observer=lambda *a: observed.append(a))

    async def main():
        await batcher.start()
        try:
            await batcher.warm_up([("k", ["a"]), ("k", ["b", "c"])])
            return await batcher.submit("k", ["d"])
        finally:
            await batcher.stop()

    assert asyncio.run(main()) == [("k", "d")]
    assert model.calls == [("k", ["a"]), ("k", ["b", "c"]), ("k", ["d"])]
    assert model.threads == {t for t in model.threads if t.startswith("mtsent-model")}
    assert batcher.batches == 1 and len(observed) == 1


class ThreadRecorder(Recorder):
    """A fake model that records which worker thread ran each call, and how long each call takes by its texts."""

    def __init__(self, delays: dict[str, float]) -> None:
        super().__init__()
        self.delays = delays
        self.ran: list[tuple[str, list[str], float, float]] = []  # thread, texts, start, end

    def __call__(self, key, sentences):
        start = time.monotonic()
        time.sleep(max(self.delays.get(s, 0.0) for s in sentences))
        self.ran.append((threading.current_thread().name, list(sentences), start, time.monotonic()))
        return [(key, s) for s in sentences]


def test_background_lane_runs_long_texts_beside_short_ones() -> None:
    """With the background lane a long text runs on its own thread: a short request that arrives during the long
    pass is answered before that pass ends, and a request's short texts do not wait for its long one."""
    model = ThreadRecorder({"long": 0.4})

    async def main() -> float:
        batcher = MicroBatcher(model, max_wait_ms=0, batch_tokens=1024, background=True)
        await batcher.start()
        long = asyncio.create_task(batcher.submit("k", ["long", "after"], costs=[400, 10]))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        assert await batcher.submit("k", ["short"], costs=[12]) == [("k", "short")]
        short_took = time.monotonic() - started
        assert not long.done()
        assert await long == [("k", "long"), ("k", "after")]
        await batcher.stop()
        return short_took

    assert asyncio.run(main()) < 0.2
    lanes = {tuple(texts): thread for thread, texts, _, _ in model.ran}
    assert lanes[("long",)].startswith("mtsent-model-background")
    assert lanes[("short",)].startswith("mtsent-model_") and lanes[("after",)].startswith("mtsent-model_")


def test_without_background_lane_a_short_request_waits_for_the_long_pass() -> None:
    """The same traffic on one thread: the short request waits for the long pass (what the lane is for)."""
    model = ThreadRecorder({"long": 0.4})

    async def main() -> float:
        batcher = MicroBatcher(model, max_wait_ms=0, batch_tokens=1024)
        await batcher.start()
        long = asyncio.create_task(batcher.submit("k", ["long"], costs=[400]))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await batcher.submit("k", ["short"], costs=[12])
        took = time.monotonic() - started
        await long
        await batcher.stop()
        return took

    assert asyncio.run(main()) > 0.3
    assert {thread for thread, *_ in model.ran} == {"mtsent-model_0"}


def test_background_lane_never_mixes_long_and_short_texts() -> None:
    model = ThreadRecorder({})
    requests = [("k", ["long1", "mid", "long2"]), ("k", ["s1", "s2"]), ("k", ["long3"])]
    costs = {"long1": 300, "long2": 500, "long3": 260, "mid": 90, "s1": 80, "s2": 70}

    async def main() -> list:
        batcher = MicroBatcher(model, max_wait_ms=20, batch_tokens=1024, background=True)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(k, s, costs=[costs[x] for x in s]) for k, s in requests))
        finally:
            await batcher.stop()

    results = asyncio.run(main())
    assert results == [[("k", s) for s in texts] for _, texts in requests]
    for thread, texts, _, _ in model.ran:
        long = [t for t in texts if t.startswith("long")]
        if thread.startswith("mtsent-model-background"):
            assert len(texts) == 1 and long
        else:
            assert not long


def test_warm_up_covers_the_background_lane() -> None:
    model = ThreadRecorder({})

    async def main() -> None:
        batcher = MicroBatcher(model, batch_tokens=1024, background=True)
        await batcher.start()
        await batcher.warm_up([("k", ["a"]), ("k", ["b", "c"])])
        await batcher.stop()

    asyncio.run(main())
    ran = sorted((thread.rsplit("_", 1)[0], tuple(texts)) for thread, texts, _, _ in model.ran)
    assert ran == [("mtsent-model", ("a",)), ("mtsent-model", ("b", "c")), ("mtsent-model-background", ("a",))]


def long_and_short(short_seconds: float) -> tuple[list[float], list[float]]:
    """A long pass of 5 ms steps that calls `yield_to_foreground` before each (as the service's block hooks do),
    and a short call of `short_seconds` submitted 50 ms after it; returns the steps' times and the short call's
    start and end."""
    steps: list[float] = []
    short_call: list[float] = []

    def run(key, sentences):
        if sentences == ["long"]:
            while len(steps) < 100:
                batcher.yield_to_foreground()
                steps.append(time.monotonic())
                time.sleep(0.005)
        else:
            short_call.append(time.monotonic())
            other = threading.Thread(target=batcher.yield_to_foreground)  # not the background thread: no wait
            other.start()
            other.join(1.0)
            assert not other.is_alive()
            time.sleep(short_seconds)
            short_call.append(time.monotonic())
        return list(sentences)

    batcher = MicroBatcher(run, max_wait_ms=0, batch_tokens=100, background=True)

    async def main() -> None:
        await batcher.start()
        long = asyncio.create_task(batcher.submit("k", ["long"], costs=[90]))
        await asyncio.sleep(0.05)
        assert await batcher.submit("k", ["short"], costs=[5]) == ["short"]
        assert await long == ["long"]
        await batcher.stop()

    asyncio.run(main())
    return steps, short_call


def test_background_pass_gives_way_at_its_steps_while_a_short_call_runs() -> None:
    """A long pass makes no step while a short call runs (it ran 50 ms before, so it may wait up to 150 ms)."""
    steps, (start, end) = long_and_short(0.1)
    # at most the step already under way when the short call began ends inside it (a step is 5 ms)
    assert [t for t in steps if start + 0.02 < t < end] == []
    assert any(t < start for t in steps) and any(t > end for t in steps)


def test_background_pass_keeps_its_floor_beside_a_long_foreground_call() -> None:
    """Short calls that never stop cannot starve the long lane: it waits at most 3x what it last ran."""
    steps, (start, end) = long_and_short(0.6)
    during = [t for t in steps if start + 0.02 < t < end]
    assert 3 <= len(during) <= 60  # some steps (about a quarter of the time), far fewer than the 110 it could run
    assert min(during) - start < 0.2 + 0.05  # the first wait is 3x the 50 ms it ran, with some slack


def test_gate_counts_the_room_reserved_by_requests_let_in() -> None:
    batcher = MicroBatcher(Recorder(), max_queue_tokens=100)
    assert not batcher.refuses_early(10_000)  # an empty queue takes any request
    first = batcher.reserve(80)
    assert batcher.refuses_early(30) and not batcher.refuses_early(20)
    first.release()
    first.release()  # idempotent
    assert batcher.reserved_tokens == 0 and not batcher.refuses_early(10_000)
    assert not MicroBatcher(Recorder()).refuses_early(10**9)  # an unbounded queue never refuses


def test_estimate_learns_tokens_per_body_byte() -> None:
    batcher = MicroBatcher(Recorder())
    assert batcher.estimate(None) == 1 and batcher.estimate(400) == 100  # 4 bytes a token before any request
    for _ in range(100):
        batcher.observe_size(1000, 100)
    assert batcher.estimate(400) == pytest.approx(40, abs=1)


def test_settled_reservation_gives_its_room_back_and_teaches_the_estimate() -> None:
    batcher = MicroBatcher(Recorder(), max_queue_tokens=1000)
    held = batcher.reserve(batcher.estimate(400), body_bytes=400)
    assert batcher.reserved_tokens == 100
    held.settle(400)  # one token per byte, four times the first guess
    assert batcher.reserved_tokens == 0 and batcher.estimate(400) > 100


def test_service_hooks_the_pause_before_every_block_in_every_precision(served_model) -> None:
    """The long lane's pause points are the backbone's transformer blocks, in the converted bf16 copy too; the
    service adds them at start-up and takes them away at shutdown."""
    blocks = len(served_model.encoder.backbone.encoder.layer)
    paused: list[int] = []
    handles = pause_between_blocks(served_model, lambda: paused.append(1))
    try:
        for precision in ("fp32", "bf16"):
            paused.clear()
            served_model.predict(["Tim Cook visited Berlin."], precision=precision)
            assert len(paused) == blocks
    finally:
        for handle in handles:
            handle.remove()
        drop_inference_copies(served_model)

    def hooked() -> int:
        return sum(len(b._forward_pre_hooks) for b in served_model.encoder.backbone.encoder.layer)

    before = hooked()  # other tests' services running on the same model keep theirs
    with TestClient(create_app(served_model, ServeSettings(precision="fp32", warmup=False))):
        assert hooked() == before + blocks
    assert hooked() == before
    with TestClient(create_app(served_model, ServeSettings(warmup=False, background_long_texts=False))):
        assert hooked() == before
