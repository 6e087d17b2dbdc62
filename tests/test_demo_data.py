"""The demo's data files (src/mtsent/resources/demo) are balanced, valid and free of duplicates.

The files were generated once from hand-written sentences and templates and are shipped as they are; edits are
made to the files themselves, and these checks (the generator's, turned into tests) keep them sound.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from mtsent.demo import DEMO_DIR

# the label balance the demo was built with: per label, the number of rows
TABLES = {
    "topic.tsv": {"World": 60, "Sports": 60, "Business": 60, "Sci/Tech": 60},
    "sentiment.tsv": {"positive": 120, "negative": 120},
}
NER_SENTENCES = 240
TAG = re.compile(r"^(O|[BI]-(PER|ORG|LOC|MISC))$")


def _table(name: str) -> list[tuple[str, str]]:
    lines = (DEMO_DIR / name).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "text\tlabel", f"{name}: header"
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split("\t")
        assert len(cells) == 2, f"{name}:{number}: expected text<TAB>label, got {line!r}"
        rows.append((cells[0], cells[1]))
    return rows


def _ner() -> list[list[tuple[str, str]]]:
    blocks = (DEMO_DIR / "ner.conll").read_text(encoding="utf-8").strip("\n").split("\n\n")
    sentences = []
    for block in blocks:
        pairs = [line.split(" ") for line in block.split("\n")]
        assert all(len(p) == 2 for p in pairs), f"expected `token TAG` lines: {block!r}"
        sentences.append([(token, tag) for token, tag in pairs])
    return sentences


def _examples() -> list[str]:
    return (DEMO_DIR / "examples.txt").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("name", list(TABLES))
def test_tables_are_balanced_clean_and_unique(name: str) -> None:
    rows = _table(name)
    assert Counter(label for _, label in rows) == TABLES[name]
    texts = [text for text, _ in rows]
    assert [t for t, n in Counter(texts).items() if n > 1] == [], "duplicate texts"
    for text in texts:
        assert text and text == text.strip(), f"empty or unstripped text: {text!r}"
        assert '"' not in text and "\r" not in text, f"double quote or carriage return in {text!r}"
        assert "  " not in text and "{" not in text and "}" not in text, f"unfilled template slot: {text!r}"


def test_ner_sentences_are_valid_iob2_and_unique() -> None:
    sentences = _ner()
    assert len(sentences) == NER_SENTENCES
    for sentence in sentences:
        previous = "O"
        for token, tag in sentence:
            assert token and "{" not in token and "}" not in token, f"bad token {token!r} in {sentence}"
            assert TAG.match(tag), f"bad tag {tag!r} in {sentence}"
            if tag.startswith("I-"):
                assert previous != "O" and previous[2:] == tag[2:], f"I- without a B- of its type: {sentence}"
            previous = tag
    texts = [" ".join(token for token, _ in s) for s in sentences]
    assert [t for t, n in Counter(texts).items() if n > 1] == [], "duplicate sentences"
    types = Counter(tag[2:] for s in sentences for _, tag in s if tag.startswith("B-"))
    assert set(types) == {"PER", "ORG", "LOC", "MISC"}  # every entity type occurs
    assert any(all(tag == "O" for _, tag in s) for s in sentences)  # and sentences without entities too


def test_examples_are_unseen() -> None:
    examples = _examples()
    assert len(examples) == 8 and all(e and e == e.strip() for e in examples)
    training = {t for name in TABLES for t, _ in _table(name)} | {" ".join(w for w, _ in s) for s in _ner()}
    assert not training & set(examples), "an example sentence is also in the training data"
