"""Dynamic micro-batching: requests that arrive together share one forward pass.

A forward pass over 32 short sentences costs little more than over one, so under concurrent load the service
answers far more requests per second by merging them. Requests are queued with a key saying what to compute,
for example ("encode", normalize) or ("predict", tasks); the collector takes the first waiting request, keeps
gathering for at most `max_wait_ms` or until `max_batch_size` sentences, then runs each key's group as one call.

All model calls go through one worker thread: torch is never called concurrently (its intra-op threads already
use the cores), and the event loop stays free to answer /health and to parse the next requests meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

__all__ = ["MicroBatcher", "RunFn"]

RunFn = Callable[[Hashable, list[str]], Sequence[object]]
"""Computes one result per sentence for a key: run(key, sentences) -> results, in order."""


@dataclass
class _Pending:
    key: Hashable
    sentences: list[str]
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Queue requests, merge those with the same key, run them on a single worker thread.

    With `enabled=False` every request is run on its own (still on the worker thread, in arrival order): the
    baseline that the load benchmark compares against.
    """

    def __init__(
        self,
        run: RunFn,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        enabled: bool = True,
        thread_initializer: Callable[[], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must not be negative, got {max_wait_ms}")
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.enabled = enabled
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mtsent-model", initializer=thread_initializer)
        self._queue: asyncio.Queue[_Pending] | None = None
        self._collector: asyncio.Task | None = None
        self.batches = 0  # forward calls made, for tests and metrics

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def start(self) -> None:
        """Start the collector on the running event loop."""
        self._queue = asyncio.Queue()
        self._collector = asyncio.create_task(self._collect(), name="mtsent-batcher")

    async def stop(self) -> None:
        """Stop collecting, fail whatever is still queued, and release the worker thread."""
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        while self._queue is not None and not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(RuntimeError("the service is shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(self, key: Hashable, sentences: list[str]) -> list[object]:
        """The results for `sentences` under `key`, computed alone or merged with other requests."""
        if self._queue is None:
            raise RuntimeError("the batcher is not started")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(key, list(sentences), future))
        return await future

    async def _collect(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            batch = [first]
            if self.enabled:
                size = len(first.sentences)
                deadline = loop.time() + self.max_wait
                while size < self.max_batch_size:
                    if self._queue.empty():
                        remaining = deadline - loop.time()
                        if remaining <= 0:
                            break
                        try:
                            item = await asyncio.wait_for(self._queue.get(), remaining)
                        except TimeoutError:
                            break
                    else:
                        item = self._queue.get_nowait()
                    batch.append(item)
                    size += len(item.sentences)
            for group in self._groups(batch):
                await self._run_group(loop, group)

    def _groups(self, batch: list[_Pending]) -> list[list[_Pending]]:
        """Split a batch by key (arrival order kept) and into chunks of at most max_batch_size sentences."""
        by_key: dict[Hashable, list[list[_Pending]]] = {}
        for item in batch:
            chunks = by_key.setdefault(item.key, [[]])
            if chunks[-1] and sum(len(p.sentences) for p in chunks[-1]) + len(item.sentences) > self.max_batch_size:
                chunks.append([])
            chunks[-1].append(item)
        return [chunk for chunks in by_key.values() for chunk in chunks]

    async def _run_group(self, loop: asyncio.AbstractEventLoop, group: list[_Pending]) -> None:
        live = [p for p in group if not p.future.done()]  # a client that hung up cancels its future
        if not live:
            return
        sentences = [s for p in live for s in p.sentences]
        try:
            results = await loop.run_in_executor(self._executor, self.run, live[0].key, sentences)
        except Exception as exc:
            for p in live:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        self.batches += 1
        start = 0
        for p in live:
            end = start + len(p.sentences)
            if not p.future.done():
                p.future.set_result(list(results[start:end]))
            start = end
