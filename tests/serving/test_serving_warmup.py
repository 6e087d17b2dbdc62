"""The start-up warm-up: every padded width the model serves, alone and in a full call (every row count where
sentences land), before the service listens."""

from __future__ import annotations

import dataclasses
import gc

from fastapi.testclient import TestClient

from mtsent.batching import INVARIANT_WIDTHS, invariant_width
from mtsent.serving import ServeSettings, create_app
from mtsent.serving.app import WARM_EVERY_ROW_COUNT_UP_TO, warmup_calls


def test_warmup_calls_cover_each_width_alone_and_full(served_model) -> None:
    settings = ServeSettings(max_batch_size=8, batch_tokens=200)
    calls = warmup_calls(served_model, settings)
    widths = [w for w in INVARIANT_WIDTHS if w <= served_model.encoder.max_length]
    tokenizer = served_model.encoder.tokenizer
    seen: dict[int, set[int]] = {}
    for key, texts in calls:
        assert key == ("predict", tuple(served_model.check_tasks(None)))
        assert len(set(texts)) == 1 and len(texts) <= settings.max_batch_size
        width = invariant_width(len(tokenizer(texts[0])["input_ids"]))
        seen.setdefault(width, set()).add(len(texts))
    assert sorted(seen) == widths
    previous = [0, *widths[:-1]]
    for width, before in zip(widths, previous):
        full = min(8, max(1, 200 // (before + 1)))
        every = set(range(1, full + 1))  # every row count where sentences land, else one text and a full call
        assert seen[width] == (every if width <= WARM_EVERY_ROW_COUNT_UP_TO else {1, full})


def test_warmup_runs_before_the_first_request(served_model) -> None:
    settings = ServeSettings(precision="fp32", warmup=True)
    app = create_app(served_model, settings)
    with TestClient(app) as client:
        calls = warmup_calls(served_model, settings)
        # every call on the short texts' thread, and the one-text calls on the background lane's thread too
        assert app.state.batcher.warmed_up == len(calls) + sum(len(texts) == 1 for _, texts in calls) > 0
        assert app.state.batcher.batches == 0
        assert client.post("/v1/predict", json={"sentences": ["Hello Berlin"]}).status_code == 200
    cold = create_app(served_model, dataclasses.replace(settings, warmup=False))
    with TestClient(cold):
        assert cold.state.batcher.warmed_up == 0


def test_objects_alive_after_start_up_are_frozen_while_serving(served_model) -> None:
    """Full garbage collections walked every object of the model and libraries (300 ms pauses under load); the
    service freezes what start-up made, and gives it back to the collector when it stops. A freeze that another
    part of the process made (another service) is left to its owner."""
    gc.unfreeze()  # a service of an earlier test may still run in this process; its objects go back to the collector
    with TestClient(create_app(served_model, ServeSettings(warmup=False))) as client:
        assert gc.get_freeze_count() > 10_000
        assert client.get("/health").status_code == 200
    assert gc.get_freeze_count() == 0
    gc.freeze()
    owned = gc.get_freeze_count()
    try:
        with TestClient(create_app(served_model, ServeSettings(warmup=False))):
            pass
        assert gc.get_freeze_count() > owned // 2  # still frozen (objects that died since have left it)
    finally:
        gc.unfreeze()
