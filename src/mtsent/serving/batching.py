"""Admission control and fair micro-batching: requests share forward passes, and none can block the others.

A forward pass over 32 short sentences costs little more than over one, so under concurrent load the service
answers far more requests per second by merging them. Each request is queued with a key saying what to compute,
for example ("encode", normalize) or ("predict", tasks), and a cost per sentence in tokens.

- Admission: the queue is bounded in tokens, not requests (one request may hold 256 long texts). A request that
  does not fit is refused at once with `QueueFull`, which carries a retry estimate; a request is always admitted
  into an empty queue, so every request within the per-request limits can run. Before a request is even read, a
  gate can refuse it by an estimate from its size (`refuses_early`); one it lets in `reserve`s that room until
  it is counted, so a burst of requests arriving together cannot all pass the gate only to be refused later,
  after each has been read, parsed and tokenised.
- Fairness: each model call holds at most `batch_tokens` tokens and `max_batch_size` sentences. Requests are
  ordered by self-clocked fair queuing: the service (tokens) each has received, plus the cost of its next
  sentence; a newcomer starts at the service mark of the last text handed to the model (the queue's virtual
  time), not at zero, so it cannot starve those before it, and the mark moves on with every call, so neither can
  a stream of newcomers with shorter texts starve an older request with a longer one. The first request
  chooses the key, then every waiting request with that key contributes one sentence in turn, in that order. A
  large request is thereby split across calls and interleaved with small ones, which ride in the very next call
  instead of waiting behind it. A call holds texts of one size class (at most `SIZE_CLASS_RATIO` times the cost of
  its first text): a short text's answer never waits for a long text's pass in the same call, and a long text
  (over a quarter of the budget) runs alone, so a short request arriving meanwhile waits for one pass at most.
- Dropping: a caller that stops waiting (deadline passed, client gone, shutdown) cancels its `submit`; its
  sentences that have not reached the model yet are removed from the queue and never computed.
- Long texts in the background (`background=True`): a pass cannot be interrupted, so a short request that arrives
  while a long text is computed would wait for that whole pass. With a background lane, long texts run on a
  second worker thread that gives way to the first: the model calls `yield_to_foreground()` between its steps
  (the service hooks it before each transformer block), and on the background thread that waits while a
  foreground call runs. A short call thus waits for one block of a long pass at most. The wait is bounded so that
  the long texts keep at least a quarter of the time under a steady stream of short calls (`BACKGROUND_FLOOR`),
  and the thread keeps its normal share of the CPU against other processes (an operating-system idle priority
  starves long texts as soon as anything else on the host is busy; measured in docs/RESULTS.md).

Model calls run on worker threads, never on the event loop, which stays free to answer /health and to parse the
next requests meanwhile: one thread for every call, or with the background lane one for short texts and one for
long ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

__all__ = ["BatchObserver", "MicroBatcher", "QueueFull", "Reservation", "RunFn", "ShuttingDown"]

RunFn = Callable[[Hashable, list[str]], Sequence[object]]
"""Computes one result per sentence for a key: run(key, sentences) -> results, in order."""

BatchObserver = Callable[[int, int, float], None]
"""Called after each model call with (sentences, tokens, seconds), e.g. to record metrics."""


class QueueFull(Exception):
    """The queue has no room for the request's tokens; retry after `retry_after` seconds."""

    def __init__(self, tokens: int | None, queued: int, limit: int, retry_after: int) -> None:
        needs = "" if tokens is None else f"; this request needs {tokens}"
        super().__init__(f"the queue is full ({queued} of {limit} tokens waiting{needs})")
        self.retry_after = retry_after


class ShuttingDown(Exception):
    """The service stopped before the request was computed."""


_arrivals = itertools.count()
SIZE_CLASS_RATIO = 4
"""A call holds texts of at most this many times the cost of its first one, so that short texts are not held
back by a long text computed beside them (a call answers when its slowest pass ends)."""
LONG_TEXT_SHARE = 4
"""A text costing more than 1/LONG_TEXT_SHARE of the call budget is computed in a call of its own (in the
background lane when there is one)."""
BACKGROUND_FLOOR = 0.25
"""The background lane's least share of the time while short calls run back to back: it waits for them at most
(1 - floor) / floor times as long as it last ran, so a steady stream of short requests cannot starve long ones."""
FORE, BACK = "fore", "back"


class Reservation:
    """Room held in the queue for a request that is being read, parsed and counted; `release` once (idempotent),
    or `settle` with its exact count, which also teaches the batcher the tokens per byte of its body."""

    def __init__(self, batcher: MicroBatcher, tokens: int, body_bytes: int | None = None) -> None:
        self._batcher: MicroBatcher | None = batcher
        self.tokens = tokens
        self.body_bytes = body_bytes
        batcher.reserved_tokens += tokens

    def settle(self, tokens: int) -> None:
        """The request is counted: its exact tokens take the place of the estimate."""
        if self._batcher is not None and self.body_bytes:
            self._batcher.observe_size(self.body_bytes, tokens)
        self.release()

    def release(self) -> None:
        if self._batcher is not None:
            self._batcher.reserved_tokens -= self.tokens
            self._batcher = None


@dataclass(eq=False)
class _Request:
    key: Hashable
    sentences: list[str]
    costs: list[int]
    future: asyncio.Future = field(repr=False)
    served: float = 0.0  # virtual service received, in tokens (fair queuing)
    next: int = 0  # sentences before this index have been handed to the model
    done: int = 0  # results received
    results: list[object] = field(default_factory=list, repr=False)
    arrival: int = field(default_factory=lambda: next(_arrivals))

    @property
    def waiting_tokens(self) -> int:
        return sum(self.costs[self.next :])


class MicroBatcher:
    """Queue requests, form fair token-bounded batches per key, run them on worker threads.

    With `enabled=False` every request is run on its own, whole, in arrival order: the baseline that the load
    benchmark compares against. `max_queue_tokens=None` leaves the queue unbounded; `batch_tokens=None` bounds
    calls by `max_batch_size` sentences only (and no text counts as long). `background=True` computes long texts
    on a second worker thread that waits in `yield_to_foreground` while a short call runs (see the module's
    notes); `run` must then be safe to call from two threads at once.
    """

    def __init__(
        self,
        run: RunFn,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        enabled: bool = True,
        thread_initializer: Callable[[], None] | None = None,
        max_queue_tokens: int | None = None,
        batch_tokens: int | None = None,
        observer: BatchObserver | None = None,
        background: bool = False,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must not be negative, got {max_wait_ms}")
        for name, value in (("max_queue_tokens", max_queue_tokens), ("batch_tokens", batch_tokens)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.enabled = enabled
        self.max_queue_tokens = max_queue_tokens
        self.batch_tokens = batch_tokens
        self.observer = observer
        self.background = background and enabled and batch_tokens is not None
        self._thread_initializer = thread_initializer
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._foreground_idle = threading.Event()  # cleared while a foreground call runs
        self._foreground_idle.set()
        self._background_thread: int | None = None
        self._background_resumed = 0.0  # when the background thread last started or stopped waiting
        self._active: list[_Request] = []
        self._virtual = 0.0  # service mark of the last text handed to the model (fair queuing's clock)
        self._wakeups: dict[str, asyncio.Event] = {}
        self._collectors: list[asyncio.Task] = []
        self._tokens_per_second = 0.0  # moving average of the model's speed, for Retry-After
        self._tokens_per_byte = 0.25  # body bytes -> tokens, learned from counted requests, for `estimate`
        self.reserved_tokens = 0  # let in by the gate and not counted yet (`reserve`)
        self.queued_tokens = 0  # tokens admitted and not yet handed to the model
        self.batches = 0  # model calls made, for tests and metrics
        self.warmed_up = 0  # warm-up calls made before serving

    @property
    def queued(self) -> int:
        """Requests with sentences still waiting for the model."""
        return sum(1 for r in self._active if r.next < len(r.sentences))

    @property
    def saturated(self) -> bool:
        return self.max_queue_tokens is not None and self.queued_tokens >= self.max_queue_tokens

    def estimate(self, body_bytes: int | None) -> int:
        """Tokens a request of `body_bytes` probably holds, before it is read (1 when its size is not declared)."""
        return 1 if body_bytes is None else max(1, math.ceil(body_bytes * self._tokens_per_byte))

    def observe_size(self, body_bytes: int, tokens: int) -> None:
        """Learn the tokens per body byte from a counted request, for `estimate`."""
        if body_bytes > 0:
            self._tokens_per_byte = 0.9 * self._tokens_per_byte + 0.1 * tokens / body_bytes

    def refuses_early(self, estimate: int) -> bool:
        """Whether a request of about `estimate` tokens is refused before its body is read: the queue and the
        requests let in but not counted yet leave no room for it (never while both are empty)."""
        limit, taken = self.max_queue_tokens, self.queued_tokens + self.reserved_tokens
        return limit is not None and taken > 0 and taken + estimate > limit

    def reserve(self, tokens: int, body_bytes: int | None = None) -> Reservation:
        """Hold room for a request let in by the gate until it is counted and queued (or leaves); a request of
        `body_bytes` teaches `estimate` when it settles."""
        return Reservation(self, tokens, body_bytes)

    @property
    def running(self) -> bool:
        return bool(self._collectors) and not any(c.done() for c in self._collectors)

    @property
    def lanes(self) -> tuple[str, ...]:
        return (FORE, BACK) if self.background else (FORE,)

    def _initializer(self, lane: str) -> Callable[[], None]:
        def init() -> None:
            if self._thread_initializer is not None:
                self._thread_initializer()
            if lane == BACK:
                self._background_thread = threading.get_ident()

        return init

    def yield_to_foreground(self) -> None:
        """Wait while a foreground call runs, when called on the background lane's thread; else return at once.

        The model calls it between its steps, so a long pass gives the CPU to short calls at its next step. The
        wait is bounded by `BACKGROUND_FLOOR`: at most three times as long as the background ran since its last
        wait (or since its call began).
        """
        if threading.get_ident() != self._background_thread or self._foreground_idle.is_set():
            return
        ran = time.perf_counter() - self._background_resumed
        self._foreground_idle.wait(ran * (1 - BACKGROUND_FLOOR) / BACKGROUND_FLOOR)
        self._background_resumed = time.perf_counter()

    def _runner(self, lane: str) -> RunFn:
        if not self.background:
            return self.run
        return self._run_foreground if lane == FORE else self._run_background

    def _run_background(self, key: Hashable, sentences: list[str]) -> Sequence[object]:
        self._background_resumed = time.perf_counter()
        return self.run(key, sentences)

    def _run_foreground(self, key: Hashable, sentences: list[str]) -> Sequence[object]:
        self._foreground_idle.clear()
        try:
            return self.run(key, sentences)
        finally:
            self._foreground_idle.set()

    async def start(self) -> None:
        """Start a worker thread and a collector per lane on the running event loop."""
        for lane in self.lanes:
            prefix = "mtsent-model" if lane == FORE else "mtsent-model-background"
            self._executors[lane] = ThreadPoolExecutor(1, prefix, initializer=self._initializer(lane))
            self._wakeups[lane] = asyncio.Event()
        self._collectors = [
            asyncio.create_task(self._collect(lane), name=f"mtsent-batcher-{lane}") for lane in self.lanes
        ]

    async def stop(self) -> None:
        """Stop collecting, fail whatever is still queued, and wait for the model calls in progress (if any)."""
        for collector in self._collectors:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
        for request in self._active:
            if not request.future.done():
                request.future.set_exception(ShuttingDown("the service is shutting down"))
        self._active.clear()
        self.queued_tokens = 0
        for executor in self._executors.values():
            executor.shutdown(wait=True)

    async def warm_up(self, calls: Sequence[tuple[Hashable, list[str]]]) -> None:
        """Run these calls on the worker thread before any request arrives (not counted as batches or observed);
        with the background lane, its thread runs the calls of one text too (long texts run alone there)."""
        loop = asyncio.get_running_loop()
        for key, sentences in calls:
            for lane in self.lanes:
                if lane == FORE or len(sentences) == 1:
                    await loop.run_in_executor(self._executors[lane], self._runner(lane), key, sentences)
                    self.warmed_up += 1

    def retry_after(self) -> int:
        """Whole seconds until the queue has probably drained (at least 1)."""
        if self._tokens_per_second <= 0:
            return 1
        return max(1, math.ceil(self.queued_tokens / self._tokens_per_second))

    def admit(self, tokens: int) -> None:
        """Raise QueueFull unless `tokens` fit in the queue now (an empty queue admits any request)."""
        limit = self.max_queue_tokens
        if limit is not None and self.queued_tokens > 0 and self.queued_tokens + tokens > limit:
            raise self.refusal(tokens)

    def refusal(self, tokens: int | None = None) -> QueueFull:
        """The QueueFull for a request of `tokens` (None: not counted yet), with the current retry estimate."""
        return QueueFull(tokens, self.queued_tokens, self.max_queue_tokens or 0, self.retry_after())

    async def submit(self, key: Hashable, sentences: list[str], costs: Sequence[int] | None = None) -> list[object]:
        """The results for `sentences` under `key`; `costs` are their tokens (default 1 each).

        Raises QueueFull at once when the queue has no room. Cancelling the call (a deadline, a client that left)
        drops the sentences that have not reached the model yet.
        """
        if not self.running:
            raise ShuttingDown("the batcher is not running")
        costs = [max(1, int(c)) for c in costs] if costs is not None else [1] * len(sentences)
        if len(costs) != len(sentences):
            raise ValueError(f"{len(sentences)} sentences but {len(costs)} costs")
        self.admit(sum(costs))
        future = asyncio.get_running_loop().create_future()
        request = _Request(key, list(sentences), costs, future, served=self._virtual)
        request.results = [None] * len(sentences)
        self._active.append(request)
        self.queued_tokens += sum(costs)
        self._wake()
        try:
            return await request.future
        finally:
            self._forget(request)

    def _forget(self, request: _Request) -> None:
        """Remove a finished or abandoned request; its sentences not yet handed out leave the queue uncomputed."""
        if request in self._active:
            self._active.remove(request)
            self.queued_tokens -= request.waiting_tokens
            request.next = len(request.sentences)

    def _wake(self) -> None:
        for event in self._wakeups.values():
            event.set()

    def _lane(self, cost: int) -> str:
        """Where a text of `cost` tokens runs: long texts in the background lane when there is one."""
        long = self.batch_tokens is not None and LONG_TEXT_SHARE * cost > self.batch_tokens
        return BACK if long and self.background else FORE

    async def _collect(self, lane: str) -> None:
        loop = asyncio.get_running_loop()
        wakeup = self._wakeups[lane]
        while True:
            if not self._waiting(lane):
                wakeup.clear()
                await wakeup.wait()
                continue
            # let concurrent requests join this call (a long text in the background runs alone: nothing to wait for)
            waiting = self._waiting_sentences(lane)
            if lane == FORE and self.enabled and self.max_wait > 0 and waiting < self.max_batch_size:
                await asyncio.sleep(self.max_wait)
            picked = self._pick(lane)
            if picked:
                await self._run_batch(loop, lane, picked)

    def _waiting(self, lane: str) -> list[_Request]:
        """Requests whose next text waits for a model call in `lane`."""
        return [
            r
            for r in self._active
            if r.next < len(r.sentences) and not r.future.done() and self._lane(r.costs[r.next]) == lane
        ]

    def _waiting_sentences(self, lane: str) -> int:
        return sum(len(r.sentences) - r.next for r in self._waiting(lane))

    def _pick(self, lane: str) -> list[tuple[_Request, int]]:
        """The next call's (request, sentence index) pairs in `lane`, taken out of the queue."""
        waiting = self._waiting(lane)
        if not waiting:
            return []
        if not self.enabled:
            first = min(waiting, key=lambda r: r.arrival)
            return self._take([(first, i) for i in range(first.next, len(first.sentences))])
        # self-clocked fair queuing: the request whose next text would finish first (least service plus that text's
        # cost) goes first, so short requests pass long ones at equal service and ride in every call
        by_finish = sorted(waiting, key=lambda r: (r.served + r.costs[r.next], r.arrival))
        turn = [r for r in by_finish if r.key == by_finish[0].key]
        first = turn[0].costs[turn[0].next]
        largest = SIZE_CLASS_RATIO * first  # texts much larger than the first wait for a call of their own
        budget = self.batch_tokens
        if budget is not None and LONG_TEXT_SHARE * first > budget:
            budget = first  # a long text runs alone: its pass is what a newly arrived short request waits for
        cursor = {r: r.next for r in turn}
        picked: list[tuple[_Request, int]] = []
        tokens = 0
        while turn:
            for r in list(turn):
                i = cursor[r]
                if picked and (r.costs[i] > largest or self._lane(r.costs[i]) != lane):
                    turn.remove(r)
                    continue
                if picked and budget is not None and tokens + r.costs[i] > budget:
                    return self._take(picked)
                picked.append((r, i))
                tokens += r.costs[i]
                r.served += r.costs[i]
                self._virtual = max(self._virtual, r.served)
                cursor[r] = i + 1
                if cursor[r] == len(r.sentences):
                    turn.remove(r)
                if len(picked) == self.max_batch_size:
                    return self._take(picked)
        return self._take(picked)

    def _take(self, picked: list[tuple[_Request, int]]) -> list[tuple[_Request, int]]:
        for r, i in picked:
            r.next = max(r.next, i + 1)
            self.queued_tokens -= r.costs[i]
        if self.background:
            self._wake()  # a request's next text may now belong to the other lane
        return picked

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, lane: str, picked: list[tuple[_Request, int]]) -> None:
        key = picked[0][0].key
        sentences = [r.sentences[i] for r, i in picked]
        tokens = sum(r.costs[i] for r, i in picked)
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executors[lane], self._runner(lane), key, sentences)
        except Exception as exc:
            for r, _ in picked:
                if not r.future.done():
                    r.future.set_exception(exc)
            return
        seconds = time.perf_counter() - started
        self.batches += 1
        speed = tokens / max(seconds, 1e-6)
        self._tokens_per_second = speed if self._tokens_per_second == 0 else 0.8 * self._tokens_per_second + 0.2 * speed
        if self.observer is not None:
            self.observer(len(sentences), tokens, seconds)
        for (r, i), result in zip(picked, results):
            r.results[i] = result
            r.done += 1
            if r.done == len(r.sentences) and not r.future.done():
                r.future.set_result(r.results)
