"""Resuming: a run interrupted after a checkpoint and resumed ends exactly where an uninterrupted run ends.

Both legs of the interrupted run use the same config (same max_steps, so the same LR schedule, sampler and
evaluation steps); the interruption is simulated by an exception raised right after `last` is written at
step k, i.e. the process dies between two steps, the worst moment for lost state (RNG, optimizer moments,
batch streams, early-stopping counters, metrics files).
"""

from __future__ import annotations

import json

import pytest
import torch

from mtsent.model import MultiTaskModel
from mtsent.training import Trainer
from mtsent.training import trainer as trainer_module

N, K = 6, 3


class Killed(Exception):
    """Stands in for SIGKILL / Ctrl-C between two training steps."""


def _records(run_dir) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    # throughput depends on the machine's load, everything else must be identical
    return [{k: v for k, v in json.loads(line).items() if k != "examples_per_s"} for line in lines]


def _kill_after_last_saved(monkeypatch, at_call: int = 1) -> list[str]:
    calls: list[str] = []
    original = MultiTaskModel.save_pretrained

    def save(self, path, write_extra=None):
        result = original(self, path, write_extra)
        calls.append(path.name)
        if path.name == "last" and calls.count("last") == at_call:
            raise Killed
        return result

    monkeypatch.setattr(MultiTaskModel, "save_pretrained", save)
    return calls


@pytest.fixture
def resume_config(make_config):
    def make(
        output,
        loss_weighting: str = "static",
        adapter: dict | None = None,
        moments: str = "shared",
        projection="none",
        ema: float | None = None,
    ):
        return make_config(
            run_dir=output,
            model={"adapter": adapter},
            training={"max_steps": N, "log_every": K, "loss_weighting": loss_weighting},
            evaluation={"every_steps": K},
            # dropout is on (heads and backbone): resuming must restore the torch RNG or the masks diverge
            optim={
                "warmup_steps": 1,
                "scheduler": "linear",
                "moments": moments,
                "gradient_projection": projection,
                "ema_decay": ema,
            },
            sampling={"strategy": "proportional"},  # random task choice: the sampler must replay its choices
        )

    return make


@pytest.mark.parametrize(
    ("weighting", "adapter", "moments", "projection", "ema"),
    [
        ("static", None, "shared", "none", None),
        ("uncertainty", None, "shared", "none", None),
        ("static", {"r": 2, "dropout": 0.1}, "shared", "none", None),
        ("static", None, "per_task", "none", None),  # every task's moments come back, not only the last task's
        ("static", None, "shared", "conflicting", None),  # the tasks' gradient averages and projection order
        ("static", None, "shared", "none", 0.8),  # `last` holds the average: the training weights come back too
    ],
)
def test_resume_is_equivalent_to_an_uninterrupted_run(
    weighting, adapter, moments, projection, ema, resume_config, train, tmp_path, monkeypatch, weights_of
):
    a_cfg = resume_config(tmp_path / "a", weighting, adapter, moments, projection, ema)
    b_cfg = resume_config(tmp_path / "b", weighting, adapter, moments, projection, ema)
    _, summary_a, _ = train(a_cfg)
    assert summary_a["steps"] == N

    with monkeypatch.context() as m:
        _kill_after_last_saved(m)
        with pytest.raises(Killed):
            train(b_cfg)
    b_dir = tmp_path / "b"
    state = json.loads((b_dir / "last" / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["trainer"]["state"]["step"] == K
    assert not (b_dir / "summary.json").exists()

    # a fresh start on a directory that holds a run is refused; resuming continues it
    with pytest.raises(FileExistsError, match="--resume"):
        train(b_cfg)
    _, summary_b, log_b = train(b_cfg, resume=True)
    assert f"resumed {b_dir} at step {K}" in log_b
    assert summary_b["steps"] == N

    # same weights (checkpoints and the in-memory model), same optimizer state, same metrics history
    for name in ("last", "best"):
        wa, wb = weights_of(tmp_path / "a" / name), weights_of(b_dir / name)
        assert wa.keys() == wb.keys()
        for key in wa:
            torch.testing.assert_close(wb[key], wa[key], rtol=0, atol=1e-6, msg=f"{name}/{key}")
    from safetensors.torch import load_file

    sa = load_file(str(tmp_path / "a" / "last" / "trainer_state.safetensors"))
    sb = load_file(str(b_dir / "last" / "trainer_state.safetensors"))
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sb[key], sa[key], rtol=0, atol=1e-6, msg=key)
    if weighting == "uncertainty":
        assert not torch.equal(sa["extra.log_vars"], torch.zeros_like(sa["extra.log_vars"]))
    if projection != "none":
        assert {k for k in sa if k.startswith("extra.projection.")} == {
            f"extra.projection.{t}" for t in summary_a["gradient_projection"]
        }
        assert summary_b["gradient_projection"] == summary_a["gradient_projection"]
    assert _records(b_dir) == _records(tmp_path / "a")
    assert summary_b["best"] == summary_a["best"]
    assert summary_b["best_metrics"] == summary_a["best_metrics"]
    assert summary_b["examples_seen"] == summary_a["examples_seen"]
    csv_a = (tmp_path / "a" / "metrics.csv").read_text(encoding="utf-8").splitlines()
    csv_b = (b_dir / "metrics.csv").read_text(encoding="utf-8").splitlines()
    assert [r for r in csv_a if "examples_per_s" not in r] == [r for r in csv_b if "examples_per_s" not in r]


def test_crash_while_writing_last_keeps_the_previous_checkpoint_resumable(resume_config, train, tmp_path, monkeypatch):
    """A failure in the middle of writing `last` (after the weights, inside the trainer state) at step 2k
    leaves step k's `last` intact and no temporary directories; resuming from it reaches the same end."""
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    _, summary_a, _ = train(resume_config(a_dir))
    calls = {"n": 0}
    original = trainer_module.save_training_state

    def failing_save(directory, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            (directory / "trainer_state.json").write_text("{half-written", encoding="utf-8")
            raise OSError("disk full")
        return original(directory, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(trainer_module, "save_training_state", failing_save)
        with pytest.raises(OSError, match="disk full"):
            train(resume_config(b_dir))
    assert sorted(p.name for p in b_dir.iterdir() if p.name.startswith(".")) == []
    state = json.loads((b_dir / "last" / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["trainer"]["state"]["step"] == K
    MultiTaskModel.from_pretrained(b_dir / "last", device="cpu")
    _, summary_b, _ = train(resume_config(b_dir), resume=True)
    assert summary_b["best_metrics"] == summary_a["best_metrics"]
    assert _records(b_dir) == _records(a_dir)


def test_resume_without_a_checkpoint_is_a_clear_error(make_config, tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume: no checkpoint"):
        Trainer(make_config(run_dir=tmp_path / "nothing"), resume=True, show_progress=False).fit()


def test_resume_without_trainer_state_is_a_clear_error(make_config, train, tmp_path):
    config = make_config(run_dir=tmp_path / "r", training={"max_steps": 2}, evaluation={"every_steps": 2})
    trainer, _, _ = train(config)
    (trainer.run_dir / "last" / "trainer_state.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"trainer_state\.json is missing"):
        train(config, resume=True)
