"""The shipped configs load the real data with the sizes in ../shared/data/README.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtsent.data import align_token_labels, encode_sentences, load_task_data, read_task_specs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tasks(data_dir: Path) -> dict:
    specs = read_task_specs(REPO / "configs" / "multitask.yaml")
    return {name: load_task_data(name, s.type, s.data, data_dir) for name, s in specs.items()}


def test_conll2003(tasks: dict, tokenizer) -> None:
    ner = tasks["ner"]
    assert (len(ner.train), len(ner.dev), len(ner.test)) == (14041, 3250, 0)
    assert ner.labels == ["O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert ner.skipped == {}
    _, stats = align_token_labels(tokenizer, ner.train, ner.label2id, max_length=128)
    assert stats.words_total == 203621  # token lines in train.txt
    assert stats.sentences_truncated <= 2


def test_sst2(tasks: dict, tokenizer) -> None:
    sst = tasks["sentiment"]
    assert (len(sst.train), len(sst.dev)) == (60614, 6735)
    assert sst.labels == ["negative", "positive"]
    feats = encode_sentences(tokenizer, sst.train, sst.label2id, max_length=128)
    assert len(feats) == 60614 and max(len(f["input_ids"]) for f in feats) <= 128


def test_agnews_split(tasks: dict) -> None:
    topic = tasks["topic"]
    # the file has 10,001 data rows (no header, trailing newline present), split 70/15/15
    assert (len(topic.train), len(topic.dev), len(topic.test)) == (7001, 1500, 1500)
    assert topic.labels == ["Business", "Sci/Tech", "Sports", "World"]
    texts = [e.text for e in topic.train]
    assert not any(t.startswith('"') and t.endswith('"') for t in texts)  # CSV quoting was undone
