"""Conflicting-gradient projection (PCGrad with per-task moving averages): the arithmetic, its checkpoint state,
its config rules and a training run with it."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtsent.training.config import load_config
from mtsent.training.projection import GradientProjection


def _param(*values: float) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.zeros(len(values)))


def _set_grad(param: torch.nn.Parameter, *values: float) -> None:
    param.grad = torch.tensor(values, dtype=torch.float32)


def test_a_conflicting_gradient_loses_its_component_along_the_other_tasks_average() -> None:
    p = _param(0, 0)
    projection = GradientProjection([p], ["a", "b"], momentum=0.9, seed=0)
    _set_grad(p, 1.0, 0.0)
    projection.project("a")  # no other task has an average yet: unchanged
    torch.testing.assert_close(p.grad, torch.tensor([1.0, 0.0]))
    _set_grad(p, -1.0, 1.0)  # conflicts with a's [1, 0]: the [1, 0] component goes
    projection.project("b")
    torch.testing.assert_close(p.grad, torch.tensor([0.0, 1.0]))
    _set_grad(p, 1.0, -2.0)  # conflicts with b's unprojected [-1, 1]: minus (-3 / 2) x [-1, 1]
    projection.project("a")
    torch.testing.assert_close(p.grad, torch.tensor([-0.5, -0.5]))
    torch.testing.assert_close(projection.averages["a"][0], torch.tensor([1.0, -0.2]))  # 0.9 [1, 0] + 0.1 [1, -2]
    _set_grad(p, 1.0, 3.0)  # agrees with a's average [1, -0.2]: unchanged
    projection.project("b")
    torch.testing.assert_close(p.grad, torch.tensor([1.0, 3.0]))
    assert projection.counts == {
        "a": {"steps": 2, "projected_against_b": 1},
        "b": {"steps": 2, "projected_against_a": 1},
    }


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-10, 10), min_size=3, max_size=3),
    st.lists(st.floats(-10, 10), min_size=3, max_size=3),
)
def test_a_projected_gradient_never_conflicts_with_the_one_other_task(first: list[float], second: list[float]) -> None:
    p = _param(0, 0, 0)
    projection = GradientProjection([p], ["a", "b"], momentum=0.5, seed=0)
    _set_grad(p, *first)
    projection.project("a")
    _set_grad(p, *second)
    projection.project("b")
    a, b = torch.tensor(first), torch.tensor(second)
    assert float(torch.dot(p.grad, a)) >= -1e-4 * (1 + float(a.norm() * b.norm()))


def test_parameters_without_a_gradient_stay_without_one() -> None:
    used, unused = _param(0, 0), _param(0)
    projection = GradientProjection([used, unused], ["a", "b"], momentum=0.9, seed=0)
    _set_grad(used, 1.0, 0.0)
    projection.project("a")
    _set_grad(used, -1.0, 1.0)
    projection.project("b")
    assert unused.grad is None
    torch.testing.assert_close(used.grad, torch.tensor([0.0, 1.0]))


def test_checkpointed_state_continues_exactly() -> None:
    """Three tasks (two conflicts in one step: the random order matters) interrupted and restored from the
    checkpoint's tensors and JSON: the restored projection continues as the uninterrupted one."""
    tasks = ["a", "b", "c"]
    generator = torch.Generator().manual_seed(0)
    grads = [torch.randn(5, generator=generator) for _ in range(12)]
    p, q = _param(*[0] * 5), _param(*[0] * 5)
    first = GradientProjection([p], tasks, momentum=0.8, seed=3)
    for i, g in enumerate(grads[:6]):
        p.grad = g.clone()
        first.project(tasks[i % 3])
    second = GradientProjection([q], tasks, momentum=0.8, seed=3)
    second.load_state_tensors({k: v.clone() for k, v in first.state_tensors().items()})
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))
    for i, g in enumerate(grads[6:], start=6):
        p.grad, q.grad = g.clone(), g.clone()
        first.project(tasks[i % 3])
        second.project(tasks[i % 3])
        torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=0)
    assert second.counts == first.counts


def test_averages_of_another_model_are_refused() -> None:
    projection = GradientProjection([_param(0, 0)], ["a", "b"], momentum=0.9, seed=0)
    with pytest.raises(ValueError, match="'a' has 3 values, the shared parameters 2"):
        projection.load_state_tensors({"projection.a": torch.zeros(3)})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"training": {"gradient_accumulation_steps": 2}}, "gradient_accumulation_steps: 1"),
        ({"freezing": {"strategy": "progressive"}}, "freezing.strategy: none, not 'progressive'"),
    ],
)
def test_projection_needs_one_task_per_step_and_a_fixed_set_of_trained_parameters(make_config, override, message):
    raw = make_config(optim={"gradient_projection": "conflicting"}, **override)
    with pytest.raises(ValueError, match=message):
        load_config(None, [], **raw)


def test_a_run_with_projection_reports_its_projections(make_config, train):
    trainer, summary, _ = train(
        make_config(
            training={"max_steps": 9},
            optim={"gradient_projection": "conflicting"},
            sampling={"strategy": "round_robin"},
        )
    )
    counts = summary["gradient_projection"]
    assert sum(c["steps"] for c in counts.values()) == 9
    assert set(counts) == {"sentiment", "topic", "ner"}
    projection = trainer.projection
    assert set(projection.averages) == {"sentiment", "topic", "ner"}
    shared = sum(p.numel() for p in trainer.model.encoder.parameters() if p.requires_grad)
    assert all(sum(x.numel() for x in a) == shared for a in projection.averages.values())
