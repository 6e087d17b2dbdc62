"""Freezing strategies, proven with real training steps: frozen tensors stay bit-identical, the rest change."""

from __future__ import annotations

import re

import pytest
import torch

from mtsent.config import EncoderConfig, HeadConfig, ModelConfig
from mtsent.model import MultiTaskModel
from mtsent.training.config import FreezingConfig
from mtsent.training.freezing import backbone_layer_groups, count_parameters, set_trainable


def _split(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> tuple[set[str], set[str]]:
    assert before.keys() == after.keys()
    same = {k for k in before if torch.equal(before[k], after[k])}
    return same, set(before) - same


def _trainable_line(text: str) -> tuple[int, int]:
    match = re.search(r"trainable parameters: ([\d,]+) of ([\d,]+)", text)
    assert match, text
    return int(match.group(1).replace(",", "")), int(match.group(2).replace(",", ""))


def _numel(weights: dict[str, torch.Tensor], keys) -> int:
    return sum(weights[k].numel() for k in keys)


@pytest.fixture(scope="module")
def tiny_model_factory(tiny_backbone):
    def make() -> MultiTaskModel:
        torch.manual_seed(0)
        heads = [
            HeadConfig(name="sentiment", type="sentence_classification", labels=["negative", "positive"]),
            HeadConfig(name="ner", type="token_classification", labels=["O", "B-PER", "I-PER"]),
        ]
        return MultiTaskModel.from_config(
            ModelConfig(encoder=EncoderConfig(backbone=str(tiny_backbone)), tasks=heads), device="cpu"
        )

    return make


# (freezing section, predicate: which state_dict keys must stay bit-identical)
STRATEGIES = {
    "none": ({"strategy": "none"}, lambda k: False),
    "backbone": ({"strategy": "backbone"}, lambda k: k.startswith("encoder.")),
    "frozen_heads": ({"frozen_heads": ["topic"]}, lambda k: k.startswith("heads.topic.")),
    "freeze_embeddings": ({"freeze_embeddings": True}, lambda k: k.startswith("encoder.backbone.embeddings.")),
    "backbone+frozen_heads": (
        {"strategy": "backbone", "frozen_heads": ["ner"]},
        lambda k: k.startswith(("encoder.", "heads.ner.")),
    ),
}


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_frozen_tensors_are_bit_identical_and_the_rest_train(name, make_config, train, initial_weights, weights_of):
    freezing, frozen = STRATEGIES[name]
    config = make_config(freezing=freezing, training={"max_steps": 3}, evaluation={"every_steps": 3})
    trainer, summary, log = train(config)
    before = initial_weights[0]
    for after in (weights_of(trainer.run_dir / "last"), trainer.model.state_dict()):
        same, changed = _split(before, after)
        expected_same = {k for k in before if frozen(k)}
        assert same == expected_same, f"unexpectedly unchanged: {same - expected_same}; changed: {expected_same - same}"
        assert changed, "nothing trained"
    trainable, total = _trainable_line(log)
    assert total == _numel(before, before)
    assert trainable == total - _numel(before, expected_same)
    assert summary["parameters"] == {"trainable_at_end": trainable, "total": total}
    assert summary["steps"] == 3


def test_strategy_all_only_evaluates(make_config, train, initial_weights, weights_of):
    config = make_config(freezing={"strategy": "all"}, training={"max_steps": 5})
    trainer, summary, log = train(config)
    assert "nothing trains; evaluating only" in log
    assert _trainable_line(log)[0] == 0
    assert summary["steps"] == 0 and summary["examples_seen"] == 0
    assert summary["best"]["step"] == 0 and set(summary["best_metrics"]) == {"sentiment", "topic", "ner"}
    before = initial_weights[0]
    for after in (weights_of(trainer.run_dir / "best"), trainer.model.state_dict()):
        _, changed = _split(before, after)
        assert not changed
    assert not (trainer.run_dir / "last").exists()  # nothing trained, so there is no state to resume


def test_progressive_requires_grad_pattern(tiny_model_factory):
    model = tiny_model_factory()
    groups = backbone_layer_groups(model)
    assert len(groups) == 3  # [layer 1 (top), layer 0, embeddings]
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(".layer.1." in names[id(p)] for p in groups[0])
    assert all(".layer.0." in names[id(p)] for p in groups[1])
    assert all(".embeddings." in names[id(p)] for p in groups[2])
    cfg = FreezingConfig(strategy="progressive", unfreeze_every=3)

    def trainable_names() -> set[str]:
        return {n for n, p in model.named_parameters() if p.requires_grad}

    heads = {n for n, _ in model.named_parameters() if n.startswith("heads.")}
    layer = {i: {n for n, _ in model.named_parameters() if f".layer.{i}." in n} for i in (0, 1)}
    emb = {n for n, _ in model.named_parameters() if ".embeddings." in n}
    for step, expected in [
        (0, heads | layer[1]),
        (2, heads | layer[1]),
        (3, heads | layer[1] | layer[0]),
        (5, heads | layer[1] | layer[0]),
        (6, heads | layer[1] | layer[0] | emb),
        (100, heads | layer[1] | layer[0] | emb),
    ]:
        set_trainable(model, cfg, step)
        assert trainable_names() == expected, step
    # idempotent and reversible: going back to step 0 re-freezes
    set_trainable(model, cfg, 0)
    assert trainable_names() == heads | layer[1]
    # composes with frozen heads and frozen embeddings
    set_trainable(model, FreezingConfig(strategy="progressive", frozen_heads=["ner"], freeze_embeddings=True), 10**6)
    assert trainable_names() == (heads - {n for n in heads if n.startswith("heads.ner.")}) | layer[0] | layer[1]
    set_trainable(model, FreezingConfig(strategy="none"), 0)
    assert count_parameters(model)[0] == count_parameters(model)[1]


def test_progressive_unfreezing_in_training(make_config, train, initial_weights, weights_of, monkeypatch):
    """unfreeze_every=2, 4 steps: layer 1 trains from step 0, layer 0 from step 2, embeddings never (step 4)."""
    snapshots: list[dict[str, torch.Tensor]] = []
    original = MultiTaskModel.save_pretrained

    def save_and_record(self, path, write_extra=None):
        if path.name == "last":
            snapshots.append({k: v.detach().clone() for k, v in self.state_dict().items()})
        return original(self, path, write_extra)

    monkeypatch.setattr(MultiTaskModel, "save_pretrained", save_and_record)
    config = make_config(
        tasks=("sentiment", "ner"),  # round robin: both heads train in steps 0-1
        freezing={"strategy": "progressive", "unfreeze_every": 2},
        training={"max_steps": 4},
        evaluation={"every_steps": 2},
    )
    trainer, summary, log = train(config)
    assert len(snapshots) == 2  # `last` saved at steps 2 and 4
    before = initial_weights[0]
    layer0 = {k for k in before if ".layer.0." in k}
    layer1 = {k for k in before if ".layer.1." in k}
    emb = {k for k in before if ".embeddings." in k}
    same_at_2, changed_at_2 = _split(before, snapshots[0])
    assert same_at_2 == layer0 | emb
    same_at_4, changed_at_4 = _split(before, snapshots[1])
    assert same_at_4 == emb
    assert layer1 <= changed_at_2 and layer0 <= changed_at_4
    assert _split(snapshots[1], weights_of(trainer.run_dir / "last"))[1] == set()
    # the log shows the unfreezing step and the new count
    assert "step 2: unfroze another layer group" in log
    first, total = _trainable_line(log)
    assert first == total - _numel(before, layer0 | emb)
    assert summary["parameters"]["trainable_at_end"] == total - _numel(before, emb)


def test_task_with_frozen_head_on_frozen_encoder_is_evaluated_not_sampled(make_config, train):
    """Adding a head to a frozen model: every step goes to the new head, the old tasks are still evaluated."""
    import json

    config = make_config(
        freezing={"strategy": "backbone", "frozen_heads": ["sentiment", "ner"]},
        training={"max_steps": 4, "log_every": 1},
        evaluation={"every_steps": 4},
    )
    trainer, summary, log = train(config)
    assert "['sentiment', 'ner']: frozen head on a frozen encoder, evaluated but not trained" in log
    rows = [json.loads(line) for line in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {r["task"] for r in rows if r["kind"] == "train"} == {"topic"}
    assert sum(r["batches"] for r in rows if r["kind"] == "train") == 4
    assert set(summary["best_metrics"]) == {"sentiment", "topic", "ner"}


def test_an_adapter_trains_alone_in_the_backbone_and_saves_only_itself(make_config, train, tiny_backbone, weights_of):
    from mtsent.encoder import load_backbone

    config = make_config(model={"adapter": {"r": 2, "train_biases": False}}, training={"max_steps": 3})
    trainer, _, log = train(config)
    base = load_backbone(str(tiny_backbone))[0].state_dict()
    state = trainer.model.state_dict()
    for key, value in base.items():  # every pre-trained weight is bit-identical after training
        wrapped = f"encoder.backbone.base_model.model.{key}"
        wrapped = (
            wrapped if wrapped in state else wrapped.rsplit(".", 1)[0] + ".base_layer." + wrapped.rsplit(".", 1)[1]
        )
        assert torch.equal(state[wrapped], value), key
    trained = [k for k in state if "lora_B" in k]
    assert trained and all(state[k].abs().sum() > 0 for k in trained)
    saved = weights_of(trainer.run_dir / "best")
    assert not any(k.startswith("encoder.backbone.") and "lora_" not in k for k in saved)
    trainable, total = _trainable_line(log)
    assert trainable == sum(p.numel() for p in trainer.model.parameters() if p.requires_grad) < total / 4
