"""Prometheus metrics of one app, in a registry of its own (several apps in one process never collide)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mtsent.serving.batching import MicroBatcher

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServiceMetrics:
    """Requests, latencies, queue depth in tokens, batch sizes, and requests refused, timed out or abandoned."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "mtsent_requests", "HTTP requests answered.", ["endpoint", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "mtsent_request_duration_seconds",
            "Time from the request's arrival to the end of its answer.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_tokens = Gauge("mtsent_queue_tokens", "Tokens admitted and waiting for the model.", registry=r)
        self.queue_requests = Gauge("mtsent_queue_requests", "Requests with sentences waiting.", registry=r)
        self.batch_sentences = Histogram(
            "mtsent_batch_sentences",
            "Sentences per model call.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.batch_tokens = Histogram(
            "mtsent_batch_tokens",
            "Tokens per model call.",
            buckets=(16, 64, 256, 512, 1024, 2048, 4096, 8192),
            registry=r,
        )
        self.batch_seconds = Histogram(
            "mtsent_batch_duration_seconds", "Time of one model call.", buckets=LATENCY_BUCKETS, registry=r
        )
        self.rejected = Counter(
            "mtsent_rejected_requests", "Requests refused before reaching the model.", ["reason"], registry=r
        )
        self.timed_out = Counter("mtsent_timed_out_requests", "Requests past their deadline (504).", registry=r)
        self.abandoned = Counter(
            "mtsent_abandoned_requests", "Requests whose client left before the answer; their work was dropped.",
            registry=r,
        )

    def watch(self, batcher: MicroBatcher) -> None:
        """Read the queue gauges from `batcher` at each scrape."""
        self.queue_tokens.set_function(lambda: batcher.queued_tokens)
        self.queue_requests.set_function(lambda: batcher.queued)

    def observe_batch(self, sentences: int, tokens: int, seconds: float) -> None:
        self.batch_sentences.observe(sentences)
        self.batch_tokens.observe(tokens)
        self.batch_seconds.observe(seconds)

    def observe_request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def render(self) -> bytes:
        """The text exposition format, for GET /metrics."""
        return generate_latest(self.registry)
