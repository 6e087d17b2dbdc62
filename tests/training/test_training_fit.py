"""End-to-end Trainer runs on the tiny backbone: learning, run directory, determinism, early stopping,
loss weighting, class weights, gradient accumulation and bf16."""

from __future__ import annotations

import csv
import hashlib
import json
import math

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file
from sklearn.utils.class_weight import compute_class_weight

from mtsent.model import MultiTaskModel
from mtsent.quantization import activation_maxima
from mtsent.training.config import TrainConfig
from mtsent.training.trainer import calibration_texts


def _records(run_dir, kind: str | None = None) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    return [r for r in records if kind is None or r["kind"] == kind]


def test_loss_decreases_and_dev_accuracy_rises(make_config, train):
    config = make_config(
        tasks=("sentiment",),
        training={"max_steps": 24, "log_every": 4},
        optim={"learning_rate": 3e-3, "head_learning_rate": 3e-2, "warmup_steps": 0, "scheduler": "constant"},
        evaluation={"every_steps": 24},
        freezing={"strategy": "none"},
    )
    trainer, summary, _ = train(config)
    train_losses = [r["loss"] for r in _records(trainer.run_dir, "train")]
    assert len(train_losses) == 6
    assert train_losses[0] > math.log(2) * 0.8  # starts near chance
    assert train_losses[-1] < 0.5 * train_losses[0], train_losses
    # and the model learned something real: the held-out dev set is separated
    assert summary["best_metrics"]["sentiment"]["accuracy"] >= 0.9


def test_run_directory_contents(make_config, train, tiny_data):
    config = make_config(output={"plots": True}, training={"max_steps": 4}, evaluation={"every_steps": 2})
    trainer, summary, log = train(config)
    run = trainer.run_dir
    names = {p.name for p in run.iterdir()}
    expected_plots = {
        "plot_train_loss.png",
        "plot_dev_metrics.png",
        "plot_confusion_sentiment.png",
        "plot_confusion_topic.png",
        "plot_entity_f1_ner.png",
    }
    assert {"config.yaml", "metrics.csv", "metrics.jsonl", "summary.json", "best", "last"} | expected_plots <= names
    assert not [n for n in names if n.startswith(".")], "temporary checkpoint directories left behind"
    for plot in expected_plots:
        assert (run / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (run / plot).stat().st_size > 1000

    # config.yaml is the full validated config, and it loads back into the same TrainConfig
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert TrainConfig.model_validate(saved) == TrainConfig.model_validate(config)

    # summary.json: config, data sizes + sha256, durations, best metrics, versions
    on_disk = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert on_disk == json.loads(json.dumps(summary))
    for key in ("config", "data", "durations_s", "best", "best_metrics", "versions", "steps", "stopped_early"):
        assert key in summary, key
    assert summary["steps"] == summary["planned_steps"] == 4
    assert summary["stopped_early"] is False
    assert summary["data"]["sentiment"]["sizes"] == {"train": 48, "dev": 16, "test": 0}
    assert summary["data"]["ner"]["sizes"] == {"train": 40, "dev": 12, "test": 0}
    assert summary["data"]["ner"]["labels"] == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]  # full BIO set
    for name in ("sentiment.train.tsv", "sentiment.dev.tsv"):
        assert (
            summary["data"]["sentiment"]["sha256"][name] == hashlib.sha256((tiny_data / name).read_bytes()).hexdigest()
        )
    assert set(summary["durations_s"]) == {"total", "data_and_model_setup", "train", "eval"}
    assert all(v >= 0 for v in summary["durations_s"].values())
    assert set(summary["versions"]) >= {"mtsent", "torch", "transformers", "accelerate", "python"}
    assert set(summary["best"]["main"]) == {"sentiment", "topic", "ner"}
    assert summary["best"]["monitor"] == pytest.approx(sum(summary["best"]["main"].values()) / 3)
    assert {"accuracy", "macro_f1", "confusion_matrix"} <= set(summary["best_metrics"]["topic"])
    assert {"precision", "recall", "f1", "per_type"} <= set(summary["best_metrics"]["ner"])

    # metrics.jsonl: train records every log_every steps, eval records per task at each evaluation
    records = _records(run)
    assert {(r["step"], r["task"]) for r in records if r["kind"] == "eval"} == {
        (s, t) for s in (2, 4) for t in ("sentiment", "topic", "ner")
    }
    train_records = [r for r in records if r["kind"] == "train"]
    assert {r["step"] for r in train_records} == {2, 4}
    assert all({"loss", "lr", "batches", "examples_per_s", "epoch"} <= set(r) for r in train_records)
    # metrics.csv holds the same scalars in long form
    with open(run / "metrics.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert set(rows[0]) == {"step", "epoch", "kind", "task", "metric", "value"}
    scalars = {(int(r["step"]), r["kind"], r["task"], r["metric"]): float(r["value"]) for r in rows}
    for r in records:
        for k, v in r.items():
            if k not in ("step", "epoch", "kind", "task") and isinstance(v, int | float):
                assert scalars[(r["step"], r["kind"], r["task"], k)] == pytest.approx(v)

    # best/ and last/ are complete, loadable models; best carries its metrics, last the trainer state
    texts = calibration_texts({n: t.splits.train for n, t in trainer.tasks.items()}, 512, seed=3)
    best_step = json.loads((run / "best" / "metrics.json").read_text(encoding="utf-8"))["step"]
    assert best_step == summary["best"]["step"]
    assert {"trainer_state.json", "trainer_state.safetensors"} <= {p.name for p in (run / "last").iterdir()}
    for name in ("best", "last"):
        model = MultiTaskModel.from_pretrained(run / name, device="cpu")
        assert set(model.tasks) == {"sentiment", "topic", "ner"}
        # int8 calibration, measured on the checkpoint's own weights
        expected, saved = activation_maxima(model.encoder, texts), model.encoder.int8_calibration
        assert saved.keys() == expected.keys()
        assert all(torch.allclose(saved[k], expected[k], rtol=1e-4, atol=1e-6) for k in saved), name
        out = model.predict(["good great film", "Anna Smith visited Paris ."])
        assert out[0]["sentiment"].label in ("positive", "negative")
        assert len(out[1]["ner"].tags) == 5
    last = MultiTaskModel.from_pretrained(run / "last", device="cpu").state_dict()
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(last[key], value.cpu()), key
    assert "trainable parameters" in log and "run directory" in log
    assert f"int8 calibration: {len(texts)} training texts, best and last" in log


def test_calibration_texts_come_evenly_from_every_task() -> None:
    from mtsent.data import PairExample, SentenceExample, TokenExample

    train = {
        "a": [SentenceExample(f"a{i}", "x") for i in range(100)],
        "b": [TokenExample(["b", str(i)], ["O", "O"]) for i in range(3)],
        "c": [PairExample(f"c{i}", f"d{i}", 1.0) for i in range(100)],
    }
    texts = calibration_texts(train, 30, seed=1)
    assert len(texts) == 30 and len(set(texts)) == 30
    assert sum(t.startswith("a") for t in texts) == 10 and sum(t.startswith("b ") for t in texts) == 3
    assert calibration_texts(train, 30, seed=1) == texts != calibration_texts(train, 30, seed=2)


def test_calibration_measured_once_when_best_is_the_last_step(make_config, train, monkeypatch):
    import mtsent.training.trainer as trainer_module

    calls = []
    measure = trainer_module.calibrate_directory

    def counted(directory, *args, **kwargs):
        calls.append(directory)
        return measure(directory, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "calibrate_directory", counted)
    config = make_config(tasks=("sentiment",), training={"max_steps": 4}, evaluation={"every_steps": 4})
    trainer, summary, _ = train(config)
    assert summary["best"]["step"] == 4 and len(calls) == 1
    best, last = (load_file(str(trainer.run_dir / d / "int8_calibration.safetensors")) for d in ("best", "last"))
    assert best.keys() == last.keys() and all(torch.equal(best[k], last[k]) for k in best)


def test_no_calibration_when_switched_off(make_config, train):
    trainer, _, log = train(make_config(tasks=("sentiment",), output={"plots": False, "int8_calibration": 0}))
    assert not any(trainer.run_dir.glob("*/int8_calibration.safetensors")) and "int8 calibration" not in log


def test_same_seed_same_run(make_config, train, tmp_path, weights_of):
    runs = []
    for name in ("one", "two"):
        config = make_config(
            run_dir=tmp_path / name, sampling={"strategy": "temperature"}, training={"max_steps": 4, "log_every": 2}
        )
        trainer, summary, _ = train(config)
        runs.append((trainer.run_dir, summary))
    (dir1, s1), (dir2, s2) = runs

    def strip(records):
        return [{k: v for k, v in r.items() if k != "examples_per_s"} for r in records]

    assert strip(_records(dir1)) == strip(_records(dir2))
    assert s1["best_metrics"] == s2["best_metrics"]
    w1, w2 = weights_of(dir1 / "last"), weights_of(dir2 / "last")
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    # a different seed gives a different run (so the check above is not vacuous)
    other = make_config(run_dir=tmp_path / "three", training={"max_steps": 4, "log_every": 2, "seed": 99})
    trainer3, _, _ = train(other)
    w3 = weights_of(trainer3.run_dir / "last")
    assert not all(torch.equal(w1[k], w3[k]) for k in w1)


def test_early_stopping(make_config, train):
    config = make_config(
        training={"max_steps": 12},
        evaluation={"every_steps": 2, "patience": 1, "min_delta": 1e9},  # nothing can count as an improvement
    )
    trainer, summary, log = train(config)
    assert summary["stopped_early"] is True
    assert summary["steps"] == 4 < summary["planned_steps"] == 12
    assert summary["best"]["step"] == 2
    assert "early stopping at step 4" in log
    assert max(r["step"] for r in _records(trainer.run_dir)) == 4
    state = json.loads((trainer.run_dir / "last" / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["trainer"]["state"]["step"] == 4  # the stopped run still saved its last state


def test_no_early_stopping_without_patience(make_config, train):
    config = make_config(training={"max_steps": 6}, evaluation={"every_steps": 2, "min_delta": 1e9})
    _, summary, _ = train(config)
    assert summary["stopped_early"] is False and summary["steps"] == 6


def test_monitor_single_metric(make_config, train):
    config = make_config(training={"max_steps": 4}, evaluation={"every_steps": 2, "monitor": "ner/recall"})
    _, summary, _ = train(config)
    assert summary["best"]["monitor"] == summary["best_metrics"]["ner"]["recall"]


def test_monitor_unknown_metric_fails_at_first_evaluation(make_config, train):
    config = make_config(training={"max_steps": 4}, evaluation={"every_steps": 2, "monitor": "ner/acuracy"})
    with pytest.raises(ValueError, match=r"unknown metric 'acuracy'; available: .*'f1'"):
        train(config)


def test_uncertainty_weighting_and_class_weights(make_config, train):
    config = make_config(training={"max_steps": 6, "loss_weighting": "uncertainty"})
    config["tasks"]["sentiment"]["class_weights"] = "inverse"
    config["tasks"]["topic"]["class_weights"] = [1.0, 3.0]
    config["tasks"]["ner"]["class_weights"] = "sqrt_inverse"
    config["tasks"]["ner"]["loss_weight"] = 2.0  # ignored by uncertainty weighting, but must be accepted
    trainer, summary, _ = train(config)
    assert summary["steps"] == 6
    tensors = load_file(str(trainer.run_dir / "last" / "trainer_state.safetensors"))
    log_vars = tensors["extra.log_vars"]
    assert log_vars.shape == (3,)
    assert torch.isfinite(log_vars).all()
    assert (log_vars != 0).all(), "every task's log-variance should have trained"
    train_losses = [r["loss"] for r in _records(trainer.run_dir, "train")]
    assert all(math.isfinite(x) for x in train_losses)

    # the class weights the loss uses: sklearn's "balanced" weights over the classes present in the training
    # labels (their square root for sqrt_inverse), scaled to mean 1; an absent class weighs 1; a given list is
    # scaled to mean 1
    used = trainer.objective.class_weights
    expected = {"topic": torch.tensor([0.5, 1.5])}
    for name, root in (("sentiment", False), ("ner", True)):
        labels = np.array([y for f in trainer.tasks[name].train_features for y in np.atleast_1d(f["labels"])])
        labels = labels[labels != -100]
        present = np.unique(labels)
        balanced = compute_class_weight("balanced", classes=present, y=labels)
        balanced = np.sqrt(balanced) if root else balanced
        weights = torch.ones(len(trainer.model.tasks[name].labels))
        weights[present] = torch.tensor(balanced / balanced.mean(), dtype=torch.float32)
        expected[name] = weights
    for name, weights in expected.items():
        torch.testing.assert_close(used[name], weights, msg=name)
    ner_labels = trainer.model.tasks["ner"].labels
    assert used["ner"][ner_labels.index("O")] < 1 < used["ner"][ner_labels.index("B-PER")]  # frequent O weighs less
    assert used["ner"][ner_labels.index("I-LOC")] == 1  # no I-LOC in the tiny data


def test_class_weight_list_of_the_wrong_length_is_an_error(make_config, train):
    config = make_config()
    config["tasks"]["topic"]["class_weights"] = [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="expected num_classes=2"):
        train(config)


def test_static_loss_weights_change_training(make_config, train, tmp_path, weights_of):
    base = make_config(run_dir=tmp_path / "w1", training={"max_steps": 2})
    heavy = make_config(run_dir=tmp_path / "w2", training={"max_steps": 2})
    heavy["tasks"]["sentiment"]["loss_weight"] = 5.0
    t1, _, _ = train(base)
    t2, _, _ = train(heavy)
    w1, w2 = weights_of(t1.run_dir / "last"), weights_of(t2.run_dir / "last")
    assert not torch.equal(w1["heads.sentiment.net.1.weight"], w2["heads.sentiment.net.1.weight"])


@pytest.mark.parametrize("accumulation", [1, 2, 3])
def test_gradient_accumulation_counts_optimizer_steps(accumulation, make_config, train, monkeypatch):
    optimizer_steps = {"n": 0}
    original = torch.optim.AdamW.step

    def counting_step(self, *args, **kwargs):
        optimizer_steps["n"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", counting_step)
    config = make_config(
        training={"max_steps": 4, "batch_size": 4, "gradient_accumulation_steps": accumulation},
        evaluation={"every_steps": 4},
    )
    trainer, summary, log = train(config)
    assert optimizer_steps["n"] == 4
    assert summary["steps"] == 4
    assert summary["examples_seen"] == 4 * accumulation * 4
    state = json.loads((trainer.run_dir / "last" / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["scheduler"]["last_epoch"] == 4
    tensors = load_file(str(trainer.run_dir / "last" / "trainer_state.safetensors"))
    # a shared encoder weight gets a gradient at every optimizer step
    steps = [v for k, v in tensors.items() if k.startswith("optimizer.") and k.endswith(".step")]
    assert max(float(s) for s in steps) == 4
    assert f"accumulation {accumulation}" in log
    # each optimizer step draws `accumulation` batches: every batch is logged
    batches = sum(r["batches"] for r in _records(trainer.run_dir, "train"))
    assert batches == 4 * accumulation


def test_epochs_define_the_number_of_steps(make_config, train):
    config = make_config(training={"max_steps": None, "epochs": 0.5, "batch_size": 16}, evaluation={"every_steps": 100})
    _, summary, _ = train(config)
    # one multi-task epoch = sum_i ceil(n_i / 16) = ceil(48/16) + ceil(40/16) + ceil(40/16) = 3 + 3 + 3 = 9
    assert summary["planned_steps"] == math.ceil(0.5 * 9) == summary["steps"]


def test_bf16_smoke_then_fp32_in_the_same_process(make_config, train, tmp_path, weights_of):
    config = make_config(
        run_dir=tmp_path / "bf16", training={"max_steps": 3, "precision": "bf16"}, evaluation={"every_steps": 3}
    )
    trainer, summary, log = train(config)
    assert summary["steps"] == 3
    assert "precision bf16" in log
    weights = weights_of(trainer.run_dir / "last")
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights.values())
    for m in summary["best_metrics"].values():
        assert 0.0 <= m["main"] <= 1.0
    # regression: bf16 used to go through accelerate's process-wide mixed-precision state, which patched
    # model.forward for good and made any later fit with another precision raise
    ids, mask = torch.tensor([[101, 2204, 102]]), torch.ones(1, 3, dtype=torch.long)
    assert trainer.model(ids, mask).logits["sentiment"].dtype == torch.float32
    fp32 = make_config(run_dir=tmp_path / "fp32", training={"max_steps": 1}, evaluation={"every_steps": 1})
    assert train(fp32)[1]["steps"] == 1


def test_refuses_to_overwrite_an_existing_run(make_config, train):
    config = make_config(training={"max_steps": 1}, evaluation={"every_steps": 1})
    train(config)
    with pytest.raises(FileExistsError, match="already holds a run"):
        train(config)


def test_init_from_keeps_the_heads_and_adds_new_ones(make_config, train, tmp_path, weights_of):
    first = make_config(run_dir=tmp_path / "first", tasks=("sentiment",), training={"max_steps": 2})
    t1, _, _ = train(first)
    second = make_config(run_dir=tmp_path / "second", tasks=("sentiment", "ner"), training={"max_steps": 1})
    second["init_from"] = str(t1.run_dir / "best")
    second["freezing"] = {"frozen_heads": ["sentiment"], "strategy": "backbone"}
    t2, _, _ = train(second)
    w1, w2 = weights_of(t1.run_dir / "best"), weights_of(t2.run_dir / "last")
    assert all(torch.equal(w1[k], w2[k]) for k in w1)  # nothing of the first model trained
    assert any(k.startswith("heads.ner.") for k in w2)


def test_evaluation_during_training_sees_the_current_weights(make_config, train):
    """The bf16 copy used by evaluation is rebuilt after every fused-AdamW step (which bumps no version counter).

    Regression: evaluations after the first one reused the copy made at the first, so every later dev score (and
    the best-checkpoint choice) repeated the first one.
    """
    from mtsent.precision import drop_inference_copies, inference_copy

    config = make_config(training={"max_steps": 4, "precision": "bf16"}, evaluation={"every_steps": 2})
    trainer, _, _ = train(config)
    model = trainer.model
    copy = inference_copy(model, "bf16")  # what the step-4 evaluation ran
    params = dict(model.named_parameters())
    copied = dict(copy.named_parameters())  # on CPU the linear weights are packed buffers of fused layers
    assert copied and set(copied) <= set(params)
    for name, q in copied.items():
        assert torch.equal(params[name].detach().to(torch.bfloat16), q), f"stale bf16 copy of {name}"
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102]])
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        ran = copy(ids, torch.ones_like(ids)).logits
        drop_inference_copies(model)
        fresh = inference_copy(model, "bf16")(ids, torch.ones_like(ids)).logits
    assert all(torch.equal(ran[t], fresh[t]) for t in fresh), "stale linear weights in the bf16 copy"


def test_fit_after_another_libraries_bf16_accelerator(make_config, train):
    """A Hugging Face Trainer (bf16) earlier in the process leaves accelerate's process-wide state set to bf16,
    which made our Accelerator(mixed_precision="no") raise; fit() now starts from a fresh state."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state()  # earlier tests' trainers left a "no" state: start as a fresh process would
    Accelerator(mixed_precision="bf16", cpu=True)
    try:
        _, summary, _ = train(make_config(training={"max_steps": 2}, evaluation={"every_steps": 2}))
        assert summary["steps"] == 2
    finally:
        AcceleratorState._reset_state()


def test_random_batching_mixes_lengths_where_bucketing_groups_them() -> None:
    """`training.batching`: bucketed batches hold similar lengths; random ones any mix, each index once a pass."""
    from mtsent.training.trainer import TaskStream

    lengths = [(i * 37) % 100 + 1 for i in range(640)]

    def spread(bucketed: bool) -> tuple[float, list[int]]:
        stream = TaskStream("t", lengths, 32, seed=13, bucketed=bucketed)
        batches = [stream.next() for _ in range(20)]
        width = float(np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches]))
        return width, sorted(i for b in batches for i in b)

    bucketed_width, bucketed_seen = spread(True)
    random_width, random_seen = spread(False)
    assert bucketed_seen == random_seen == list(range(640))
    assert bucketed_width < 10 < 60 < random_width


def test_random_batching_learns(make_config, train):
    config = make_config(
        tasks=("sentiment",),
        training={"max_steps": 24, "batching": "random"},
        optim={"learning_rate": 3e-3, "head_learning_rate": 3e-2, "warmup_steps": 0, "scheduler": "constant"},
        evaluation={"every_steps": 24},
    )
    _, summary, _ = train(config)
    assert summary["best_metrics"]["sentiment"]["accuracy"] >= 0.9
