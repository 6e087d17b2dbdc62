"""Distillation from single-task teachers with teacher annealing: the target moves from teacher to gold."""

from __future__ import annotations

import pytest
import torch

from mtsent.batching import IGNORE_INDEX
from mtsent.model import MultiTaskModel
from mtsent.tasks.classification import ClassificationType
from mtsent.training.teachers import gold_weight


@pytest.fixture
def teachers(make_config, train, tmp_path):
    """Single-task teachers (a few steps each, saved as ordinary model directories): sentiment and ner."""
    dirs = {}
    for task in ("sentiment", "ner"):
        train(make_config(run_dir=tmp_path / "teachers" / task, tasks=(task,), training={"max_steps": 4}))
        dirs[task] = tmp_path / "teachers" / task / "best"
    return dirs


def test_gold_weight_rises_linearly_from_zero_to_one():
    assert [gold_weight(s, 5) for s in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert gold_weight(0, 1) == 0.0 and gold_weight(3, 1) == 1.0
    assert [gold_weight(s, 5, end=0.5) for s in range(5)] == [0.0, 0.125, 0.25, 0.375, 0.5]


def test_targets_start_at_the_teacher_and_end_at_gold(make_config, train, teachers, monkeypatch):
    """Every batch's target, recorded: at step 0 it is the teacher's softmax of that very batch (recomputed here
    from the saved teacher), at the last step the one-hot gold labels."""
    calls: list[dict] = []
    real = ClassificationType.distillation_target

    def spy(self, labels, teacher_probs, weight):
        target = real(self, labels, teacher_probs, weight)
        calls.append({"task": self.config.name, "labels": labels.cpu(), "weight": weight, "target": target.cpu()})
        return target

    monkeypatch.setattr(ClassificationType, "distillation_target", spy)
    seen_batches: list[dict] = []
    from mtsent.training import losses

    real_forward = losses.TrainingObjective.forward

    def forward(self, batch, task, weight=1.0):
        seen_batches.append({"task": task, **{k: v.cpu() for k, v in batch.items()}})
        return real_forward(self, batch, task, weight)

    monkeypatch.setattr(losses.TrainingObjective, "forward", forward)
    config = make_config(
        tasks=("sentiment", "ner"),
        training={"max_steps": 6},
        distillation={"teachers": {name: str(path) for name, path in teachers.items()}},
    )
    _, summary, text = train(config)
    assert summary["steps"] == 6 and "teacher" in text
    assert len(calls) == len(seen_batches) == 6  # round robin: sentiment, ner, sentiment, ...
    assert [c["weight"] for c in calls] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]

    # steps 0 (sentiment) and 1 (ner): the teachers' own distributions of those very batches (recomputed from
    # the saved teachers; same tokenizer, so the same labelled positions), mixed with gold at weights 0 and 0.2
    for step in (0, 1):
        call, batch = calls[step], seen_batches[step]
        teacher = MultiTaskModel.from_pretrained(teachers[call["task"]], device="cpu").eval()
        with torch.no_grad():
            logits = teacher(batch["input_ids"], batch["attention_mask"]).logits[call["task"]]
        labelled = batch["labels"] != IGNORE_INDEX
        soft = torch.softmax(logits[labelled], dim=-1)
        gold = torch.nn.functional.one_hot(batch["labels"][labelled], soft.size(-1)).float()
        expected = call["weight"] * gold + (1 - call["weight"]) * soft
        torch.testing.assert_close(call["target"], expected, atol=2e-3, rtol=0)  # the cache is float16
        assert (call["target"].max(dim=-1).values < 0.99).any()  # soft targets, not the gold one-hot
    # the last step: exactly the gold labels
    last = calls[-1]
    gold = last["labels"][last["labels"] != IGNORE_INDEX]
    torch.testing.assert_close(last["target"], torch.nn.functional.one_hot(gold, last["target"].size(-1)).float())


def test_gold_weight_end_keeps_a_teacher_share_to_the_last_step(make_config, train, teachers, monkeypatch):
    weights: list[float] = []
    real = ClassificationType.distillation_target

    def spy(self, labels, teacher_probs, weight):
        weights.append(weight)
        return real(self, labels, teacher_probs, weight)

    monkeypatch.setattr(ClassificationType, "distillation_target", spy)
    distillation = {"teachers": {"sentiment": str(teachers["sentiment"])}, "gold_weight_end": 0.5}
    train(make_config(tasks=("sentiment",), training={"max_steps": 6}, distillation=distillation))
    assert weights == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])


def test_a_teacher_with_other_labels_is_a_clear_error(make_config, train, teachers):
    """The ner teacher has PER/LOC tags; a sentiment student cannot learn from it."""
    config = make_config(tasks=("sentiment",), distillation={"teachers": {"sentiment": str(teachers["ner"])}})
    with pytest.raises(ValueError, match=r"distillation\.teachers\.sentiment: .* is a token_classification task"):
        train(config)
    from mtsent.training.teachers import teacher_cache

    teacher = MultiTaskModel.from_pretrained(teachers["ner"])
    student = MultiTaskModel(
        teacher.encoder, [{"name": "ner", "type": "token_classification", "labels": ["O", "B-ORG", "I-ORG"]}]
    )
    with pytest.raises(
        ValueError,
        match=r"distillation\.teachers\.ner: the labels of .* task 'ner' differ from the student's: only the "
        r"teacher has \['B-LOC', 'B-PER', 'I-LOC', 'I-PER'\], only the student has \['B-ORG', 'I-ORG'\]",
    ):
        teacher_cache(teachers["ner"], student, "ner", [], [], 32)


def test_distillation_config_checks_task_names(make_config):
    from mtsent.training.config import load_config

    with pytest.raises(ValueError, match=r"distillation\.teachers names unknown task 'pos'"):
        load_config(None, None, **make_config(distillation={"teachers": {"pos": "x"}}))


def test_cross_task_targets_are_the_other_teachers_outputs_on_each_batch(make_config, train, teachers, monkeypatch):
    """With cross_task_weights, a sentiment batch also trains the ner head on the ner teacher's tag distribution
    at each word's first sub-word of those texts, and a ner batch the sentiment head on the sentiment teacher's
    class distribution of each sentence (recomputed here from the saved teachers); each term is added to the
    back-propagated loss at its task's weight, and their sum is logged as `cross_task`."""
    from mtsent.training import losses

    seen: list[tuple[str, dict, losses.StepLosses]] = []
    real_forward = losses.TrainingObjective.forward

    def forward(self, batch, task, weight=1.0):
        result = real_forward(self, batch, task, weight)
        seen.append((task, {k: v.cpu() for k, v in batch.items()}, result))
        return result

    monkeypatch.setattr(losses.TrainingObjective, "forward", forward)
    weights = {"ner": 0.5, "sentiment": 2.0}
    config = make_config(
        tasks=("sentiment", "ner"),
        training={"max_steps": 4, "log_every": 1},
        distillation={"teachers": {n: str(p) for n, p in teachers.items()}, "cross_task_weights": weights},
    )
    trainer, _, text = train(config)
    assert "read the training texts of ner" in text and "read the training texts of sentiment" in text
    tokenizer = trainer.model.encoder.tokenizer
    for task, batch, result in seen:
        other = "ner" if task == "sentiment" else "sentiment"
        assert {k for k in batch if k.startswith("foreign_")} == {f"foreign_labels.{other}", f"foreign_probs.{other}"}
        teacher = MultiTaskModel.from_pretrained(teachers[other], device="cpu").eval()
        with torch.no_grad():
            logits = teacher(batch["input_ids"], batch["attention_mask"]).logits[other].float()
        labels = batch[f"foreign_labels.{other}"]
        if other == "ner":  # the first sub-word of every word, as the words of the decoded text
            for row, ids in zip(labels, batch["input_ids"]):
                read = [tokenizer.convert_ids_to_tokens(int(ids[p])) for p in (row != IGNORE_INDEX).nonzero()]
                text_ids = [int(i) for i in ids if i not in tokenizer.all_special_ids]
                assert len(read) == len(tokenizer.decode(text_ids).split())
                assert not any(piece.startswith("##") for piece in read)
            expected = torch.softmax(logits[labels != IGNORE_INDEX], dim=-1)
        else:
            assert torch.equal(labels, torch.zeros(len(batch["input_ids"]), dtype=torch.long))
            expected = torch.softmax(logits, dim=-1)
        torch.testing.assert_close(batch[f"foreign_probs.{other}"].float(), expected, atol=2e-3, rtol=0)
        assert result.cross_task is not None and result.cross_task > 0
        extra = result.weighted - result.loss - weights[other] * result.cross_task
        torch.testing.assert_close(extra, torch.zeros_like(extra), atol=1e-5, rtol=0)
    records = (trainer.run_dir / "metrics.jsonl").read_text(encoding="utf-8")
    assert '"task": "cross_task"' in records


def test_cross_task_weights_need_the_tasks_teacher(make_config):
    from mtsent.training.config import load_config

    with pytest.raises(ValueError, match=r"cross_task_weights\.ner: 'ner' has no teacher"):
        load_config(
            None, None, **make_config(distillation={"teachers": {"sentiment": "x"}, "cross_task_weights": {"ner": 1}})
        )
    with pytest.raises(ValueError, match=r"cross_task_weights\.sentiment"):
        load_config(
            None,
            None,
            **make_config(distillation={"teachers": {"sentiment": "x"}, "cross_task_weights": {"sentiment": -1}}),
        )


def test_foreign_words_come_from_the_features_or_the_same_tokenisation(tiny_backbone):
    """A text's words are read again by tokenising it as training did; if that gives other sub-words than the
    features hold, the error names the task and the example."""
    from transformers import AutoTokenizer

    from mtsent.data.examples import SentenceExample
    from mtsent.training.teachers import _word_ids

    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    examples = [SentenceExample("Anna visited Berlinerwald", "x"), SentenceExample("good film", "y")]
    features = [{"input_ids": tokenizer(e.text)["input_ids"]} for e in examples]
    words = _word_ids(tokenizer, "sentiment", examples, features, 32)
    assert words == [tokenizer(e.text).word_ids() for e in examples]
    assert _word_ids(tokenizer, "ner", [], [{"input_ids": [1, 2], "word_ids": [None, 0]}], 32) == [[None, 0]]
    features[1]["input_ids"] = features[1]["input_ids"][:-1]
    with pytest.raises(ValueError, match=r"task 'sentiment', training example 1: tokenising its text again"):
        _word_ids(tokenizer, "sentiment", examples, features, 32)


def test_cross_task_batches_limit_which_batches_carry_the_targets(make_config, train, teachers, monkeypatch):
    from mtsent.training import losses

    carried: dict[str, set[str]] = {}
    real_forward = losses.TrainingObjective.forward

    def forward(self, batch, task, weight=1.0):
        carried.setdefault(task, set()).update(k for k in batch if k.startswith("foreign_"))
        return real_forward(self, batch, task, weight)

    monkeypatch.setattr(losses.TrainingObjective, "forward", forward)
    distillation = {
        "teachers": {n: str(p) for n, p in teachers.items()},
        "cross_task_weights": {"ner": 1.0, "sentiment": 1.0},
        "cross_task_batches": ["sentiment"],
    }
    _, _, text = train(make_config(tasks=("sentiment", "ner"), training={"max_steps": 4}, distillation=distillation))
    assert carried == {"sentiment": {"foreign_labels.ner", "foreign_probs.ner"}, "ner": set()}
    assert "read the training texts of sentiment" in text and "read the training texts of ner" not in text
    with pytest.raises(ValueError, match=r"distillation\.cross_task_batches names unknown task 'pos'"):
        train(make_config(distillation={**distillation, "cross_task_batches": ["pos"]}))
