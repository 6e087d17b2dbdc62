"""The weight average (`optim.ema_decay`): what it averages, what a run scores and saves, and resuming it."""

from __future__ import annotations

import pytest
import torch

from mtsent.model import MultiTaskModel
from mtsent.training import Trainer
from mtsent.training.averaging import WeightAverage, warmed_decay
from mtsent.training.config import load_config

STEPS, DECAY = 6, 0.9


def _config(make_config, run_dir, ema: float | None = DECAY, **optim):
    return make_config(
        run_dir=run_dir,
        training={"max_steps": STEPS},
        evaluation={"every_steps": 3},
        optim={"warmup_steps": 1, "ema_decay": ema, **optim},
        sampling={"strategy": "proportional"},
    )


def test_warmed_decay_starts_low_and_reaches_the_decay():
    assert warmed_decay(0.999, 0) == pytest.approx(0.1)
    assert warmed_decay(0.999, 10) == pytest.approx(11 / 20)
    assert warmed_decay(0.9, 1000) == 0.9
    assert [warmed_decay(0.99, n) for n in range(200)] == sorted(warmed_decay(0.99, n) for n in range(200))


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1])
def test_decay_outside_zero_one_is_refused(make_config, tmp_path, bad):
    with pytest.raises(ValueError, match=r"optim\.ema_decay: Input should be"):
        load_config(None, None, **_config(make_config, tmp_path / "r", ema=bad))


def test_the_run_scores_and_saves_the_average_of_its_training_weights(
    make_config, train, tmp_path, weights_of, monkeypatch
):
    """A run with the average trains exactly as one without it (same weights after every step); `best`, `last` and
    the trainer's model hold the moving average of those weights, and `last` carries the training weights too."""
    steps: list[dict[str, torch.Tensor]] = []
    original = Trainer.train_step

    def record(self, state):
        losses = original(self, state)
        steps.append({n: p.detach().clone() for n, p in self.model.named_parameters()})
        return losses

    monkeypatch.setattr(Trainer, "train_step", record)
    train(_config(make_config, tmp_path / "plain", ema=None))
    plain_steps, steps[:] = list(steps), []
    averaged, summary, _ = train(_config(make_config, tmp_path / "avg"))
    assert len(steps) == len(plain_steps) == STEPS
    for a, b in zip(plain_steps, steps):  # the average never feeds back into training
        for name in a:
            torch.testing.assert_close(b[name], a[name], rtol=0, atol=0, msg=name)

    expected = dict(steps[0])  # the first update copies; then lerp with the warmed decay
    for n, weights in enumerate(steps[1:]):
        d = warmed_decay(DECAY, n)
        expected = {k: d * expected[k] + (1 - d) * weights[k] for k in expected}
    last = weights_of(tmp_path / "avg" / "last")
    state = dict(averaged.model.named_parameters())
    for name, value in expected.items():
        torch.testing.assert_close(last[name], value, rtol=1e-5, atol=1e-6, msg=name)
        torch.testing.assert_close(state[name].detach(), value, rtol=1e-5, atol=1e-6, msg=name)
    assert not all(torch.equal(last[name], value) for name, value in steps[-1].items())  # an average, not the end

    from safetensors.torch import load_file

    raw = load_file(str(tmp_path / "avg" / "last" / "trainer_state.safetensors"))
    for name, value in steps[-1].items():
        torch.testing.assert_close(raw[f"extra.raw.{name}"], value, rtol=0, atol=0, msg=name)

    # the metrics of the last evaluation are the saved average's
    model = MultiTaskModel.from_pretrained(tmp_path / "avg" / "last", device="cpu")
    sentences = ["the film was really good", "the service was awful"]
    assert model.predict(sentences) == averaged.model.predict(sentences)
    assert summary["best"]["step"] in (3, STEPS)


def test_resuming_without_the_average_it_was_saved_with_is_refused(make_config, train, tmp_path):
    config = _config(make_config, tmp_path / "r")
    train(config)
    config["training"]["max_steps"] = STEPS + 3
    with pytest.raises(ValueError, match=r"optim\.ema_decay it was trained with"):
        train(_config(make_config, tmp_path / "r", ema=None) | {"training": config["training"]}, resume=True)


def test_training_weights_missing_from_the_checkpoint_are_named():
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match=r"2 parameters \(first: bias\)"):
        WeightAverage.load_raw(model, {})
