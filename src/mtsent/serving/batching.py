"""Admission control and fair micro-batching: requests share forward passes, and none can block the others.

A forward pass over 32 short sentences costs little more than over one, so under concurrent load the service
answers far more requests per second by merging them. Each request is queued with a key saying what to compute,
for example ("encode", normalize) or ("predict", tasks), and a cost per sentence in tokens.

- Admission: the queue is bounded in tokens, not requests (one request may hold 256 long texts). A request that
  does not fit is refused at once with `QueueFull`, which carries a retry estimate; a request is always admitted
  into an empty queue, so every request within the per-request limits can run.
- Fairness: each model call holds at most `batch_tokens` tokens and `max_batch_size` sentences. Requests are
  ordered by weighted fair queuing: the service (tokens) each has received, plus the cost of its next sentence; a
  newcomer starts at the current least service, not at zero, so it cannot starve the others. The first request
  chooses the key, then every waiting request with that key contributes one sentence in turn, in that order. A
  large request is thereby split across calls and interleaved with small ones, which ride in the very next call
  instead of waiting behind it. A call holds texts of one size class (at most `SIZE_CLASS_RATIO` times the cost of
  its first text): a short text's answer never waits for a long text's pass in the same call, and a long text
  (over a quarter of the budget) runs alone, so a short request arriving meanwhile waits for one pass at most.
- Dropping: a caller that stops waiting (deadline passed, client gone, shutdown) cancels its `submit`; its
  sentences that have not reached the model yet are removed from the queue and never computed.

All model calls go through one worker thread: torch is never called concurrently (its intra-op threads already
use the cores), and the event loop stays free to answer /health and to parse the next requests meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

__all__ = ["BatchObserver", "MicroBatcher", "QueueFull", "RunFn", "ShuttingDown"]

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
"""A text costing more than 1/LONG_TEXT_SHARE of the call budget is computed in a call of its own."""


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
    """Queue requests, form fair token-bounded batches per key, run them on a single worker thread.

    With `enabled=False` every request is run on its own, whole, in arrival order: the baseline that the load
    benchmark compares against. `max_queue_tokens=None` leaves the queue unbounded; `batch_tokens=None` bounds
    calls by `max_batch_size` sentences only.
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
        self._thread_initializer = thread_initializer
        self._executor: ThreadPoolExecutor | None = None
        self._active: list[_Request] = []
        self._wakeup: asyncio.Event | None = None
        self._collector: asyncio.Task | None = None
        self._tokens_per_second = 0.0  # moving average of the model's speed, for Retry-After
        self._recent_requests: deque[int] = deque(maxlen=64)  # tokens of the last admitted requests, for `full`
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

    @property
    def full(self) -> bool:
        """No room even for the smallest of the recent requests: refuse the next one before reading it."""
        limit, queued = self.max_queue_tokens, self.queued_tokens
        return limit is not None and queued > 0 and queued + min(self._recent_requests, default=1) > limit

    @property
    def running(self) -> bool:
        return self._collector is not None and not self._collector.done()

    async def start(self) -> None:
        """Start the collector on the running event loop."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mtsent-model", initializer=self._thread_initializer)
        self._wakeup = asyncio.Event()
        self._collector = asyncio.create_task(self._collect(), name="mtsent-batcher")

    async def stop(self) -> None:
        """Stop collecting, fail whatever is still queued, and wait for the model call in progress (if any)."""
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        for request in self._active:
            if not request.future.done():
                request.future.set_exception(ShuttingDown("the service is shutting down"))
        self._active.clear()
        self.queued_tokens = 0
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def warm_up(self, calls: Sequence[tuple[Hashable, list[str]]]) -> None:
        """Run these calls on the worker thread before any request arrives (not counted as batches or observed)."""
        loop = asyncio.get_running_loop()
        for key, sentences in calls:
            await loop.run_in_executor(self._executor, self.run, key, sentences)
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
        if self._wakeup is None or not self.running:
            raise ShuttingDown("the batcher is not running")
        costs = [max(1, int(c)) for c in costs] if costs is not None else [1] * len(sentences)
        if len(costs) != len(sentences):
            raise ValueError(f"{len(sentences)} sentences but {len(costs)} costs")
        self.admit(sum(costs))
        self._recent_requests.append(sum(costs))
        floor = min((r.served for r in self._active), default=0.0)
        request = _Request(key, list(sentences), costs, asyncio.get_running_loop().create_future(), served=floor)
        request.results = [None] * len(sentences)
        self._active.append(request)
        self.queued_tokens += sum(costs)
        self._wakeup.set()
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

    async def _collect(self) -> None:
        assert self._wakeup is not None and self._executor is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting():
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.enabled and self.max_wait > 0 and self._waiting_sentences() < self.max_batch_size:
                await asyncio.sleep(self.max_wait)  # let concurrent requests join this call
            picked = self._pick()
            if picked:
                await self._run_batch(loop, picked)

    def _waiting(self) -> list[_Request]:
        return [r for r in self._active if r.next < len(r.sentences) and not r.future.done()]

    def _waiting_sentences(self) -> int:
        return sum(len(r.sentences) - r.next for r in self._waiting())

    def _pick(self) -> list[tuple[_Request, int]]:
        """The next call's (request, sentence index) pairs, taken out of the queue."""
        waiting = self._waiting()
        if not waiting:
            return []
        if not self.enabled:
            first = min(waiting, key=lambda r: r.arrival)
            return self._take([(first, i) for i in range(first.next, len(first.sentences))])
        # weighted fair queuing: the request whose next text would finish first (least service plus that text's
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
                if picked and r.costs[i] > largest:
                    turn.remove(r)
                    continue
                if picked and budget is not None and tokens + r.costs[i] > budget:
                    return self._take(picked)
                picked.append((r, i))
                tokens += r.costs[i]
                r.served += r.costs[i]
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
        return picked

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, picked: list[tuple[_Request, int]]) -> None:
        key = picked[0][0].key
        sentences = [r.sentences[i] for r, i in picked]
        tokens = sum(r.costs[i] for r, i in picked)
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.run, key, sentences)
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
