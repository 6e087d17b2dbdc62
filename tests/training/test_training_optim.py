"""AdamW with per-task moments: each task's moments are those of a plain AdamW that saw only its gradients."""

from __future__ import annotations

import copy

import pytest
import torch

from mtsent.training.config import load_config
from mtsent.training.optim import TaskMomentsAdamW

OPTIONS = {"lr": 1e-2, "weight_decay": 0.01, "betas": (0.9, 0.999), "eps": 1e-8}


def _params(seed: int = 0) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(4, 3, generator=g)), torch.nn.Parameter(torch.randn(3, generator=g))]


def _grads(step: int, scale: float) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(100 + step)
    return [scale * torch.randn(4, 3, generator=g), scale * torch.randn(3, generator=g)]


def _step(optimizer, params, grads, task: str | None = None) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    if task is not None:
        optimizer.use(task)
    optimizer.step()
    optimizer.zero_grad()


SCHEDULE = ["big", "big", "small", "big", "small", "big"]
SCALE = {"big": 10.0, "small": 0.1}


def test_each_task_keeps_the_moments_of_its_own_gradients():
    params = _params()
    mixed = TaskMomentsAdamW(params, ["big", "small"], **OPTIONS)
    alone = {t: (_params(), None) for t in SCALE}
    alone = {t: (ps, torch.optim.AdamW(ps, **OPTIONS)) for t, (ps, _) in alone.items()}
    for i, task in enumerate(SCHEDULE):
        _step(mixed, params, _grads(i, SCALE[task]), task)
        ps, opt = alone[task]
        _step(opt, ps, _grads(i, SCALE[task]))
    for task, (ps, opt) in alone.items():
        for mine, theirs in zip(params, ps, strict=True):
            got, want = mixed.task_states[task][mine], opt.state[theirs]
            assert float(got["step"]) == float(want["step"]) == SCHEDULE.count(task)
            torch.testing.assert_close(got["exp_avg"], want["exp_avg"], rtol=0, atol=0)
            torch.testing.assert_close(got["exp_avg_sq"], want["exp_avg_sq"], rtol=0, atol=0)


def test_with_shared_moments_a_small_task_barely_steers_its_own_step():
    """Why per-task moments exist: after big-gradient steps of another task, a shared AdamW step of a small-gradient
    task is the other task's momentum; flipping the small task's gradient hardly changes it."""
    influence = {}
    for kind in ("shared", "per_task"):
        updates = []
        for sign in (1.0, -1.0):
            params = _params()
            per_task = kind == "per_task"
            opt = (
                TaskMomentsAdamW(params, ["big", "small"], **OPTIONS)
                if per_task
                else torch.optim.AdamW(params, **OPTIONS)
            )
            for i in range(5):
                _step(opt, params, _grads(i, SCALE["big"]), "big" if per_task else None)
            before = params[0].detach().clone()
            _step(opt, params, _grads(9, sign * SCALE["small"]), "small" if per_task else None)
            updates.append(params[0].detach() - before)
        influence[kind] = (updates[0] - updates[1]).abs().mean().item()
    assert influence["per_task"] > 100 * influence["shared"]


def test_one_task_is_plain_adamw():
    a, b = _params(), _params()
    mine, plain = TaskMomentsAdamW(a, ["only"], **OPTIONS), torch.optim.AdamW(b, **OPTIONS)
    for i in range(4):
        _step(mine, a, _grads(i, 1.0), "only")
        _step(plain, b, _grads(i, 1.0))
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_state_dict_round_trip_continues_exactly():
    a = _params()
    opt_a = TaskMomentsAdamW(a, ["big", "small"], **OPTIONS)
    for i, task in enumerate(SCHEDULE[:3]):
        _step(opt_a, a, _grads(i, SCALE[task]), task)
    saved = copy.deepcopy(opt_a.state_dict())  # as written to disk: no tensor shared with opt_a
    assert len(saved["state"]) == 4  # 2 parameters x 2 tasks, in torch's layout
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    opt_b = TaskMomentsAdamW(b, ["big", "small"], **OPTIONS)
    opt_b.load_state_dict(saved)
    for i, task in enumerate(SCHEDULE[3:], start=3):
        _step(opt_a, a, _grads(i, SCALE[task]), task)
        _step(opt_b, b, _grads(i, SCALE[task]), task)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_loading_moments_of_more_tasks_is_refused():
    a = _params()
    three = TaskMomentsAdamW(a, ["x", "y", "z"], **OPTIONS)
    for i, task in enumerate(["x", "y", "z"]):
        _step(three, a, _grads(i, 1.0), task)
    two = TaskMomentsAdamW(_params(), ["x", "y"], **OPTIONS)
    with pytest.raises(ValueError, match="3 tasks' moments, this optimizer keeps 2"):
        two.load_state_dict(three.state_dict())


def test_unknown_task_is_named():
    opt = TaskMomentsAdamW(_params(), ["ner", "topic"], **OPTIONS)
    with pytest.raises(KeyError, match=r"'sentiment'.*ner"):
        opt.use("sentiment")


def test_per_task_moments_need_one_task_per_step(make_config):
    raw = make_config(optim={"moments": "per_task"}, training={"gradient_accumulation_steps": 2})
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        load_config(None, [], **raw)


def test_a_run_with_per_task_moments_keeps_moments_for_each_task(make_config, train):
    trainer, summary, _ = train(
        make_config(training={"max_steps": 8}, optim={"moments": "per_task"}, sampling={"strategy": "round_robin"})
    )
    assert summary["steps"] == 8
    moments = trainer.task_moments
    assert isinstance(moments, TaskMomentsAdamW)
    shared = next(iter(trainer.model.encoder.backbone.parameters()))
    steps = {t: float(moments.task_states[t][shared]["step"]) for t in ("sentiment", "topic", "ner")}
    assert sum(steps.values()) == 8 and min(steps.values()) >= 2
