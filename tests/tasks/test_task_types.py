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
        for attribute in ("name", "level", "formats", "main_metric", "reads_all_windows", "decodings"):
            assert hasattr(cls, attribute), (cls, attribute)
        assert cls.decodings and cls.decodings[0] == "argmax", cls


# ---------------------------------------------------------------- decoding
NER = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
# per word: argmax reads O, I-PER, I-LOC (invalid twice); the best valid sequence is B-PER I-PER O
PROBS = torch.tensor([[0.50, 0.45, 0.01, 0.02, 0.02], [0.10, 0.05, 0.80, 0.03, 0.02], [0.30, 0.05, 0.05, 0.20, 0.40]])


def _token_type(decoding: str) -> TokenClassification:
    return TokenClassification(HeadConfig(name="ner", type="token_classification", labels=NER, decoding=decoding))


@pytest.mark.parametrize(
    ("decoding", "tags", "entities"),
    [
        ("argmax", ["O", "I-PER", "I-LOC"], [("Ann", "PER"), ("Lee", "LOC")]),
        ("viterbi", ["B-PER", "I-PER", "O"], [("Bo Ann", "PER")]),
    ],
)
def test_decode_and_score_follow_the_heads_decoding(decoding, tags, entities):
    from mtsent.batching import Window
    from mtsent.data.examples import TokenExample
    from mtsent.spans import split_words
    from mtsent.tasks import WindowOutput

    task = _token_type(decoding)
    text = "Bo Ann Lee"
    # [CLS] Bo An ##n Lee [SEP]: word 1 has two sub-words; only the first one's row is read
    word_ids = [None, 0, 1, 1, 2, None]
    rows = [PROBS[0], PROBS[0], PROBS[1], PROBS[0], PROBS[2], PROBS[0]]
    logits = torch.stack(rows).log()  # softmax(log p) == p
    out = WindowOutput(Window(text_index=0, first_word=0, input_ids=[0] * 6, word_ids=word_ids), logits)
    prediction = task.decode(text, split_words(text), [out], "truncate")
    assert prediction.tags == tags
    assert [(e.text, e.type) for e in prediction.entities] == entities
    # a word's score is the probability of the tag it got: Bo (B-PER 0.45) and Ann (I-PER 0.80)
    assert prediction.entities[0].score == pytest.approx(0.625 if decoding == "viterbi" else 0.80)

    # evaluation decodes the same way: the batch's log-probabilities, then the words' sequence
    example = TokenExample(tokens=("Bo", "Ann", "Lee"), tags=("B-PER", "I-PER", "O"))
    outputs = task.decode_batch(logits.unsqueeze(0))
    assert task.predicted_tags([example], [{"word_ids": word_ids}], outputs) == [tags]
    assert task.score([example], [{"word_ids": word_ids}], outputs)["f1"] == (1.0 if decoding == "viterbi" else 0.0)


def test_a_word_without_sub_words_is_o_in_both_decodings():
    from mtsent.data.examples import TokenExample

    for decoding in ("argmax", "viterbi"):
        task = _token_type(decoding)
        logits = torch.tensor([[0.0] * 5, [0.0, 5.0, 0.0, 0.0, 0.0], [0.0] * 5]).unsqueeze(0)
        example = TokenExample(tokens=("Ann", "Lee"), tags=("B-PER", "I-PER"))  # "Lee" was cut off
        tags = task.predicted_tags([example], [{"word_ids": [None, 0, None]}], task.decode_batch(logits))
        assert tags == [["B-PER", "O"]]


def test_decoding_is_checked_against_the_type_and_its_labels():
    with pytest.raises(ValidationError, match="a sentence_classification head decodes with argmax, not 'viterbi'"):
        HeadConfig(name="s", type="sentence_classification", labels=["a", "b"], decoding="viterbi")
    with pytest.raises(ValidationError, match=r"needs BIO labels .*not BIO: \['PER'\]"):
        HeadConfig(name="t", type="token_classification", labels=["O", "PER"], decoding="viterbi")
    with pytest.raises(ValidationError, match="'O' is missing"):
        HeadConfig(name="t", type="token_classification", labels=["B-PER", "I-PER"], decoding="viterbi")
    with pytest.raises(ValidationError, match=r"B- label of every I- label; missing for \['I-LOC'\]"):
        HeadConfig(name="t", type="token_classification", labels=["O", "B-PER", "I-PER", "I-LOC"], decoding="viterbi")
    with pytest.raises(ValidationError, match="decoding"):
        HeadConfig(name="t", type="token_classification", labels=NER, decoding="beam")
    # argmax accepts any label set, as before
    HeadConfig(name="t", type="token_classification", labels=["O", "PER"])


def test_a_sentence_answer_closer_to_chance_than_to_certainty_is_shown_as_uncertain():
    from mtsent.tasks.sentence_classification import SentencePrediction

    def answer(label: str, scores: dict[str, float]) -> SentencePrediction:
        return SentencePrediction(label, scores[label], scores)

    assert answer("negative", {"negative": 0.51, "positive": 0.49}).summary() == "uncertain (negative 0.51)"
    assert answer("positive", {"negative": 0.24, "positive": 0.76}).summary() == "positive (0.76)"
    four = {"World": 0.6, "Sports": 0.2, "Business": 0.1, "Sci/Tech": 0.1}
    assert answer("World", four).summary() == "uncertain (World 0.60)"  # below (1 + 1/4) / 2 = 0.625
    assert answer("World", {**four, "World": 0.81, "Sports": 0.0}).summary() == "World (0.81)"
    assert answer("World", {**four, "World": 0.81, "Sports": 0.0}).summary(min_score=0.9) == "uncertain (World 0.81)"
