"""Token counting for admission: the model's own counts, from a tokenizer the model thread cannot disturb."""

from __future__ import annotations

from types import SimpleNamespace

from mtsent.serving.app import TokenCounter

TEXTS = ["Hello Berlin", "  spaced   out  ", "Zürich, naïve café — 東京", "word " * 300, "a"]


def test_counts_are_the_model_tokenizers(served_model) -> None:
    counter = TokenCounter(served_model)
    lengths = [len(ids) for ids in served_model.encoder.tokenizer(TEXTS)["input_ids"]]
    assert counter.count("predict", TEXTS) == lengths
    assert counter.count("encode", TEXTS) == [min(n, served_model.encoder.max_length) for n in lengths]


def test_counting_neither_sees_nor_changes_the_models_truncation(served_model) -> None:
    tokenizer = served_model.encoder.tokenizer
    counter = TokenCounter(served_model)
    long_text = "word " * 300
    tokenizer([long_text], truncation=True, max_length=8)  # leaves truncation set on the shared backend
    before = tokenizer.backend_tokenizer.truncation
    assert before is not None and before["max_length"] == 8
    assert counter.count("predict", [long_text]) == [302]
    assert tokenizer.backend_tokenizer.truncation == before


def test_a_tokenizer_without_a_rust_backend_is_copied(served_model) -> None:
    class Plain:
        calls = 0

        def __call__(self, sentences, **kwargs):
            Plain.calls += 1
            return {"input_ids": [s.split() for s in sentences]}

    model = SimpleNamespace(encoder=SimpleNamespace(tokenizer=Plain(), max_length=2))
    counter = TokenCounter(model)
    assert counter.count("predict", ["a b c", "d"]) == [3, 1]
    assert counter.count("encode", ["a b c", "d"]) == [2, 1]
    assert Plain.calls == 2 and counter._tokenizer is not model.encoder.tokenizer
