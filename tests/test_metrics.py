"""Task metrics against values computed by hand (and conlleval semantics for entity scores)."""

from __future__ import annotations

import pytest

from mtsent.metrics import sentence_metrics, token_metrics
from mtsent.spans import bio_spans


def test_sentence_metrics_by_hand():
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    m = sentence_metrics(gold, pred, ["a", "b", "c"])
    # a: tp 2 fp 0 fn 1 -> P 1, R 2/3, F1 0.8;  b: tp 1 fp 1 fn 1 -> 0.5;  c: tp 1 fp 1 fn 0 -> P 0.5 R 1 F1 2/3
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1-score": 0.8, "support": 3})
    assert m["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1-score": 0.5, "support": 2})
    assert m["per_class"]["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1-score": 2 / 3, "support": 1})
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]  # rows gold, columns predicted
    assert m["labels"] == ["a", "b", "c"] and m["n"] == 6


def test_sentence_metrics_label_order_and_never_predicted_class():
    m = sentence_metrics(["x", "y", "y", "y"], ["y", "y", "y", "y"], ["y", "x"])
    assert m["labels"] == ["y", "x"]
    assert m["confusion_matrix"] == [[3, 0], [1, 0]]
    # x: never predicted -> precision 0 (zero_division), recall 0, F1 0; y: P 3/4, R 1, F1 6/7
    assert m["per_class"]["x"]["precision"] == 0.0
    assert m["macro_f1"] == pytest.approx((6 / 7 + 0) / 2)
    assert m["accuracy"] == 0.75


def test_sentence_metrics_errors():
    with pytest.raises(ValueError, match="differ in length"):
        sentence_metrics(["a"], ["a", "b"], ["a", "b"])
    with pytest.raises(ValueError, match="no examples"):
        sentence_metrics([], [], ["a", "b"])


GOLD = [
    ["B-PER", "I-PER", "O", "B-LOC", "O"],
    ["O", "B-ORG", "I-ORG", "O", "B-PER"],
    ["B-MISC", "O", "O"],
    ["B-PER", "B-LOC"],
]
PRED = [
    ["B-PER", "I-PER", "O", "I-LOC", "O"],  # I-LOC after O opens a LOC entity: matches the gold LOC
    ["O", "B-ORG", "O", "I-ORG", "B-PER"],  # ORG(1) and ORG(3) instead of ORG(1-2): both wrong; PER right
    ["O", "O", "B-PER"],  # MISC missed, a spurious PER
    ["B-PER", "I-LOC"],  # I-LOC after another type opens a new LOC entity: both right
]


def test_token_metrics_by_hand_with_conlleval_semantics():
    m = token_metrics(GOLD, PRED)
    # gold entities 7 (PER x3, LOC x2, ORG, MISC); predicted 8 (PER x4, LOC x2, ORG x2); correct 5
    assert m["precision"] == pytest.approx(5 / 8)
    assert m["recall"] == pytest.approx(5 / 7)
    assert m["f1"] == pytest.approx(2 * 5 / (8 + 7))
    per = m["per_type"]
    assert set(per) == {"PER", "LOC", "ORG", "MISC"}
    assert per["PER"] == pytest.approx({"precision": 3 / 4, "recall": 1.0, "f1-score": 6 / 7, "support": 3})
    assert per["LOC"] == pytest.approx({"precision": 1.0, "recall": 1.0, "f1-score": 1.0, "support": 2})
    assert per["ORG"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1})
    assert per["MISC"] == pytest.approx({"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1})
    assert m["n"] == 4


def test_scoring_and_prediction_decode_entities_the_same_way():
    """The spans that `predict` reports (mtsent.spans) are the entities the metric counts."""

    def entities(tags_per_sentence):
        return {(i, s, e, t) for i, tags in enumerate(tags_per_sentence) for s, e, t in bio_spans(tags)}

    correct = entities(GOLD) & entities(PRED)
    assert len(entities(GOLD)) == 7 and len(entities(PRED)) == 8 and len(correct) == 5


def test_token_metrics_perfect_and_empty_predictions():
    assert token_metrics(GOLD, GOLD)["f1"] == 1.0
    nothing = token_metrics(GOLD, [["O"] * len(s) for s in GOLD])
    assert nothing["precision"] == 0.0 and nothing["recall"] == 0.0 and nothing["f1"] == 0.0


def test_token_metrics_errors():
    with pytest.raises(ValueError, match="sentence lists differ"):
        token_metrics([["O"]], [])
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        token_metrics([["O", "O"]], [["O"]])
    with pytest.raises(ValueError, match="no sentences"):
        token_metrics([], [])
