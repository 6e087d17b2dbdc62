"""Task types: the registry, what each built-in type declares, and the head each builds."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from mtsent.config import HeadConfig
from mtsent.tasks import SentenceClassification, TaskType, TokenClassification, get_task_type


def test_registry_resolves_names_and_lists_them_for_an_unknown_one():
    assert get_task_type("sentence_classification") is SentenceClassification
    assert get_task_type("token_classification") is TokenClassification
    with pytest.raises(ValueError, match="unknown task type 'regression'; registered task types: ") as info:
        get_task_type("regression")
    assert "sentence_classification" in str(info.value) and "token_classification" in str(info.value)


def test_a_head_config_is_checked_against_the_registry_and_its_type():
    with pytest.raises(ValidationError, match="unknown task type 'regression'"):
        HeadConfig(name="x", type="regression", labels=["a", "b"])
    with pytest.raises(ValidationError, match="a sentence_classification head needs at least 2 labels"):
        HeadConfig(name="x", type="sentence_classification", labels=["a"])


def test_main_metrics_and_levels():
    assert {t.name: t.main_metric for t in (SentenceClassification, TokenClassification)} == {
        "sentence_classification": "accuracy",
        "token_classification": "f1",
    }
    assert (SentenceClassification.level, TokenClassification.level) == ("sentence", "token")
    assert TokenClassification.formats == ("conll",) and "conll" not in SentenceClassification.formats


def test_build_head_reads_the_right_feature_size():
    sentence = HeadConfig(name="s", type="sentence_classification", labels=["a", "b"])
    token = HeadConfig(name="t", type="token_classification", labels=["O", "B-X", "I-X"], hidden_dim=5)
    s_head = SentenceClassification(sentence).build_head(sentence_dim=64, token_dim=384)
    t_head = TokenClassification(token).build_head(sentence_dim=64, token_dim=384)
    assert s_head(torch.randn(2, 64)).shape == (2, 2)
    assert t_head(torch.randn(2, 9, 384)).shape == (2, 9, 3)
    assert t_head.net[1].in_features == 384 and t_head.net[1].out_features == 5


def test_classification_loss_ignores_padding_positions():
    task = TokenClassification(HeadConfig(name="t", type="token_classification", labels=["O", "B-X", "I-X"]))
    logits = torch.randn(2, 4, 3)
    labels = torch.tensor([[-100, 1, 2, -100], [-100, 0, -100, -100]])
    kept = logits[labels != -100]
    expected = torch.nn.functional.cross_entropy(kept, labels[labels != -100])
    torch.testing.assert_close(task.loss(logits, labels), expected)


def test_label_lists():
    assert SentenceClassification.label_list({"pos", "neg"}) == ["neg", "pos"]
    assert TokenClassification.label_list({"O", "I-PER", "B-LOC"}) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_every_registered_type_implements_the_contract():
    from mtsent.config import registered_task_types

    for cls in registered_task_types().values():
        assert issubclass(cls, TaskType) and not getattr(cls, "__abstractmethods__", None)
        for attribute in ("name", "level", "formats", "main_metric", "reads_all_windows"):
            assert hasattr(cls, attribute), (cls, attribute)
