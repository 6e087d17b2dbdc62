"""Words with offsets and BIO decoding (conlleval / seqeval semantics)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtsent.spans import EntitySpan, Word, bio_spans, entity_spans, split_words


# ---------------------------------------------------------------- split_words
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, world!", ["Hello", ",", "world", "!"]),
        # CoNLL-2003 keeps an initialism's full stops ("U.S."), and splits clitics off ("do" + "n't")
        ("I live in New-York, U.S.", ["I", "live", "in", "New-York", ",", "U.S."]),
        ("don't  stop\tnow\n", ["do", "n't", "stop", "now"]),
        ("Zoë paid 3.50 € (cash)", ["Zoë", "paid", "3.50", "€", "(", "cash", ")"]),
        ("   ", []),
        # the rest as CoNLL-2003 tokenises its Reuters text
        ("Men's 100 metres: 1. Donovan Bailey (Canada) 9.84", ["Men", "'s", "100", "metres", ":", "1.",
         "Donovan", "Bailey", "(", "Canada", ")", "9.84"]),
        ("I'm sure we'll win, but they've lost 1,000.50 C$ -- in 1/2 day...",
         ["I", "'m", "sure", "we", "'ll", "win", ",", "but", "they", "'ve", "lost", "1,000.50", "C$", "--", "in",
          "1/2", "day", "..."]),
        ("M. Johnson of Acme Corp. said on 1996-08-30 that O'Neill's average was .496 in 3:41.20.",
         ["M.", "Johnson", "of", "Acme", "Corp.", "said", "on", "1996-08-30", "that", "O'Neill", "'s", "average",
          "was", ".496", "in", "3:41.20", "."]),
        ("The U.S.-based AT&T won 3-1. It can't lose in 1996.", ["The", "U.S.-based", "AT&T", "won", "3-1", ".",
         "It", "ca", "n't", "lose", "in", "1996", "."]),
        ("He played for Acme Inc.", ["He", "played", "for", "Acme", "Inc", "."]),  # a final full stop is a word
        ("((nested)) 'quoted' players' FIFA’s", ["(", "(", "nested", ")", ")", "'", "quoted", "'", "players", "'",
         "FIFA", "’s"]),
    ],
)
def test_split_words(text, expected):
    words = split_words(text)
    assert [w.text for w in words] == expected
    for w in words:
        assert text[w.start : w.end] == w.text


@given(st.text(max_size=60))
@settings(max_examples=100, deadline=None)
def test_split_words_offsets_property(text):
    words = split_words(text)
    last = 0
    for w in words:
        assert text[w.start : w.end] == w.text
        assert w.start >= last and w.end > w.start  # in order, non-overlapping, non-empty
        assert not w.text.isspace()
        last = w.end
    # nothing but whitespace is left out
    covered = set()
    for w in words:
        covered.update(range(w.start, w.end))
    assert all(text[i].isspace() for i in range(len(text)) if i not in covered)


# ---------------------------------------------------------------- bio_spans
@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["O", "O", "O"], []),
        ([], []),
        (["B-PER", "I-PER", "O", "B-LOC"], [(0, 2, "PER"), (3, 4, "LOC")]),
        (["O", "I-PER", "I-PER", "O"], [(1, 3, "PER")]),  # I- after O starts a span
        (["B-PER", "I-LOC", "I-LOC"], [(0, 1, "PER"), (1, 3, "LOC")]),  # I- of another type starts a span
        (["B-PER", "B-PER"], [(0, 1, "PER"), (1, 2, "PER")]),  # B- then B- same type: two spans
        (["I-ORG", "B-ORG", "I-ORG"], [(0, 1, "ORG"), (1, 3, "ORG")]),
        (["O", "B-MISC", "I-MISC"], [(1, 3, "MISC")]),  # span running to the end
        (["B-LOC"], [(0, 1, "LOC")]),
        (["PER", "PER", "O", "LOC"], [(0, 2, "PER"), (3, 4, "LOC")]),  # IO scheme: bare tags
        (["B-PER", "PER", "O"], [(0, 2, "PER")]),  # bare tag continues the same type
        (["B-PER", "O", "I-PER"], [(0, 1, "PER"), (2, 3, "PER")]),
    ],
)
def test_bio_spans(tags, expected):
    assert bio_spans(tags) == expected


TAGS = st.lists(
    st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]),
    max_size=25,
)


@given(TAGS)
@settings(max_examples=200, deadline=None)
def test_bio_spans_match_seqeval(tags):
    from seqeval.metrics.sequence_labeling import get_entities

    expected = sorted((start, end + 1, kind) for kind, start, end in get_entities(list(tags)))  # seqeval end inclusive
    assert bio_spans(tags) == expected


@given(TAGS)
@settings(max_examples=100, deadline=None)
def test_bio_spans_are_ordered_disjoint_and_cover_every_entity_tag(tags):
    spans = bio_spans(tags)
    covered = set()
    last = 0
    for start, end, kind in spans:
        assert last <= start < end <= len(tags)
        for i in range(start, end):
            assert tags[i].endswith(kind)
        covered.update(range(start, end))
        last = end
    assert covered == {i for i, t in enumerate(tags) if t != "O"}


# ---------------------------------------------------------------- entity_spans
def test_entity_spans_offsets_text_and_score():
    text = "Yesterday Angela Merkel visited New York ."
    words = split_words(text)
    tags = ["O", "B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
    scores = [1.0, 0.9, 0.7, 1.0, 0.6, 0.4, 1.0]
    spans = entity_spans(text, words, tags, scores)
    assert [(s.text, s.type) for s in spans] == [("Angela Merkel", "PER"), ("New York", "LOC")]
    for s in spans:
        assert text[s.start : s.end] == s.text
    assert spans[0].score == pytest.approx(0.8)
    assert spans[1].score == pytest.approx(0.5)
    assert spans[0].to_dict() == {"text": "Angela Merkel", "type": "PER", "start": 10, "end": 23, "score": 0.8}


def test_entity_spans_malformed_and_at_end():
    text = "Paris Hilton Paris"
    words = split_words(text)
    spans = entity_spans(text, words, ["I-PER", "B-LOC", "I-LOC"], [0.5, 0.5, 0.5])
    assert spans == [
        EntitySpan("Paris", "PER", 0, 5, 0.5),
        EntitySpan("Hilton Paris", "LOC", 6, 18, 0.5),
    ]


def test_entity_spans_all_o_is_empty():
    words = split_words("nothing to see")
    assert entity_spans("nothing to see", words, ["O"] * 3, [1.0] * 3) == []


@pytest.mark.parametrize(
    ("n_tags", "n_scores"),
    [(1, 2), (2, 1), (3, 2)],
)
def test_entity_spans_length_mismatch_raises(n_tags, n_scores):
    words = [Word("a", 0, 1), Word("b", 2, 3)]
    with pytest.raises(ValueError, match="differ in length"):
        entity_spans("a b", words, ["O"] * n_tags, [1.0] * n_scores)


def test_split_words_resplits_conll_dev_as_conll_does(data_dir):
    """Detokenised CoNLL-2003 dev sentences split back into CoNLL's own words (3,219 of 3,250 when written)."""
    pytest.importorskip("sacremoses", reason="the Moses detokenizer (sacremoses, in the dev extra) is needed")
    from sacremoses import MosesDetokenizer

    from mtsent.data.readers import read_conll

    sentences = [e.tokens for e in read_conll(data_dir / "conll2003" / "dev.txt")]
    detokenizer = MosesDetokenizer(lang="en")
    same = sum([w.text for w in split_words(detokenizer.detokenize(list(s)))] == list(s) for s in sentences)
    assert len(sentences) == 3250
    assert same >= 3200  # the former splitter (letters and digits with inner - ' .) matched 2,223
