from __future__ import annotations

from collections import Counter

import pytest

from mtsent.data import MultiTaskSampler, steps_per_epoch

SIZES = {"ner": 14041, "sentiment": 60614, "topic": 7001}
DRAWS = 20000


def frequencies(sampler: MultiTaskSampler, steps: range) -> dict[str, float]:
    counts = Counter(sampler.sample(s) for s in steps)
    return {t: counts[t] / len(steps) for t in SIZES}


@pytest.mark.parametrize(
    ("strategy", "temperature"), [("proportional", 1.0), ("temperature", 2.0), ("temperature", 5.0)]
)
def test_frequencies_match_probabilities(strategy: str, temperature: float) -> None:
    sampler = MultiTaskSampler(SIZES, strategy, temperature=temperature, seed=1)
    probs = sampler.probabilities(0)
    assert sum(probs.values()) == pytest.approx(1.0)
    freq = frequencies(sampler, range(DRAWS))
    for task in SIZES:
        assert freq[task] == pytest.approx(probs[task], abs=0.015), task


def test_proportional_and_temperature_values() -> None:
    total = sum(SIZES.values())
    prop = MultiTaskSampler(SIZES, "proportional").probabilities()
    assert prop["ner"] == pytest.approx(14041 / total)
    temp = MultiTaskSampler(SIZES, "temperature", temperature=2.0).probabilities()
    roots = {t: n**0.5 for t, n in SIZES.items()}
    assert temp["topic"] == pytest.approx(roots["topic"] / sum(roots.values()))
    assert temp["topic"] > prop["topic"]


def test_round_robin_cycles_in_declared_order() -> None:
    sampler = MultiTaskSampler(SIZES, "round_robin")
    assert [sampler.sample(s) for s in range(6)] == ["ner", "sentiment", "topic"] * 2
    assert frequencies(sampler, range(3000)) == {t: pytest.approx(1 / 3) for t in SIZES}


def test_annealed_goes_from_proportional_to_uniform() -> None:
    sampler = MultiTaskSampler(SIZES, "annealed", seed=2, total_steps=10000)
    assert sampler.probabilities(0) == pytest.approx(MultiTaskSampler(SIZES).probabilities())
    assert sampler.probabilities(10000) == pytest.approx({t: 1 / 3 for t in SIZES})
    assert sampler.probabilities(20000) == pytest.approx({t: 1 / 3 for t in SIZES})
    mid = sampler.probabilities(5000)
    assert mid["sentiment"] < sampler.probabilities(0)["sentiment"]
    early, late = frequencies(sampler, range(0, 1000)), frequencies(sampler, range(9000, 10000))
    assert early["sentiment"] == pytest.approx(sampler.probabilities(500)["sentiment"], abs=0.05)
    assert late["sentiment"] == pytest.approx(sampler.probabilities(9500)["sentiment"], abs=0.05)


def test_deterministic_and_resumable() -> None:
    a = MultiTaskSampler(SIZES, "temperature", seed=7)
    first = [a.sample(s) for s in range(500)]
    b = MultiTaskSampler({"x": 1})
    b.load_state_dict(a.state_dict())
    assert [b.sample(s) for s in range(250, 500)] == first[250:]
    assert first != [MultiTaskSampler(SIZES, "temperature", seed=8).sample(s) for s in range(500)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task_sizes": {}}, "at least one task"),
        ({"task_sizes": {"a": 0}}, "at least one training example"),
        ({"task_sizes": {"a": 1}, "strategy": "nope"}, "unknown sampling strategy"),
        ({"task_sizes": {"a": 1}, "strategy": "annealed"}, "total_steps"),
        ({"task_sizes": {"a": 1}, "strategy": "temperature", "temperature": 0}, "temperature"),
    ],
)
def test_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MultiTaskSampler(**kwargs)


def test_steps_per_epoch() -> None:
    assert steps_per_epoch({"a": 64, "b": 65}, 32) == 2 + 3
