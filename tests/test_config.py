"""Configuration validation: typos and contradictions are errors, never silent defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mtsent.config import EncoderConfig, HeadConfig, ModelConfig
from mtsent.pooling import POOLING_MODES

SENTIMENT = {"name": "sentiment", "type": "sentence_classification", "labels": ["neg", "pos"]}
NER = {"name": "ner", "type": "token_classification", "labels": ["O", "B-PER", "I-PER"]}


def test_defaults():
    c = EncoderConfig()
    assert (c.backbone, c.pooling, c.projection_dim, c.normalize, c.max_length) == ("default", "mean", None, True, None)
    m = ModelConfig()
    assert m.tasks == [] and m.encoder == EncoderConfig()


def test_round_trip_through_json():
    m = ModelConfig(encoder=EncoderConfig(pooling="cls", projection_dim=64), tasks=[SENTIMENT, NER])
    again = ModelConfig.model_validate_json(m.model_dump_json())
    assert again == m
    assert again.task("ner").type == "token_classification"


@pytest.mark.parametrize("cls", [EncoderConfig, HeadConfig, ModelConfig])
def test_unknown_key_is_an_error(cls):
    base = {"name": "x", "type": "sentence_classification", "labels": ["a", "b"]} if cls is HeadConfig else {}
    with pytest.raises(ValidationError, match="poolng"):
        cls(**base, poolng="mean")


def test_unknown_key_in_nested_task_is_an_error():
    with pytest.raises(ValidationError, match="label"):
        ModelConfig(tasks=[{**SENTIMENT, "label": ["a"]}])


def test_bad_pooling_lists_choices():
    with pytest.raises(ValidationError, match="unknown pooling 'avg'") as info:
        EncoderConfig(pooling="avg")
    for mode in POOLING_MODES:
        assert mode in str(info.value)


def test_assignment_is_validated():
    c = EncoderConfig()
    with pytest.raises(ValidationError, match="unknown pooling"):
        c.pooling = "sum"


@pytest.mark.parametrize(
    ("field", "value"),
    [("projection_dim", 0), ("projection_dropout", 1.0), ("projection_dropout", -0.1), ("max_length", 2)],
)
def test_encoder_numeric_bounds(field, value):
    with pytest.raises(ValidationError, match=field):
        EncoderConfig(**{field: value})


def test_duplicate_labels_named():
    with pytest.raises(ValidationError, match=r"labels\[2\] 'pos' is repeated"):
        HeadConfig(name="s", type="sentence_classification", labels=["neg", "pos", "pos"])


@pytest.mark.parametrize(
    "override",
    [
        {"labels": ["only"]},  # fewer than two labels
        {"labels": ["a", ""]},  # empty label
        {"name": ""},
        {"name": "has space"},
        {"name": "1starts_with_digit"},
        {"type": "regression"},
        {"hidden_dim": 0},
        {"dropout": 1.0},
    ],
)
def test_head_config_rejects(override):
    with pytest.raises(ValidationError):
        HeadConfig(**{**SENTIMENT, **override})


def test_head_config_accepts_hyphen_and_underscore_names():
    assert HeadConfig(**{**SENTIMENT, "name": "_my-task_2"}).name == "_my-task_2"


def test_duplicate_task_names_listed():
    with pytest.raises(ValidationError, match="task names must be unique; repeated: sentiment"):
        ModelConfig(tasks=[SENTIMENT, NER, {**SENTIMENT, "labels": ["a", "b", "c"]}])


def test_task_lookup_unknown_is_key_error():
    with pytest.raises(KeyError):
        ModelConfig(tasks=[SENTIMENT]).task("topic")
