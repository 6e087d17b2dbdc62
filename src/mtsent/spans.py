"""Words, tags and entity spans: split raw text into words with offsets, read BIO tags, decode them into spans.

The one tag rule of mtsent (`parse_tag`): tags are BIO (IOB2): `O`, `B-TYPE` or `I-TYPE`. Data files must use
it (IOB1 files are converted to IOB2 on reading; IOBES `S-`/`E-` tags are rejected with the line). When
decoding a tag sequence, a tag without a `B-`/`I-` prefix (IO scheme, such as `PER`) is read as `I-PER`.

Decoding follows conlleval (and seqeval's default mode, whose `get_entities` does the work): `B-X` opens an
entity, `I-X` continues an open `X` entity and otherwise opens a new one (an `I-` after `O` or after another
type starts a span), `O` closes.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

__all__ = ["EntitySpan", "Word", "bio_spans", "entity_spans", "is_bio_tag", "parse_tag", "split_words"]

# Letters/digits, optionally joined by - ' or . inside (U.S, don't, New-York); any other non-space char alone.
_WORD = re.compile(r"\w+(?:[-'.’]\w+)*|[^\w\s]")


@dataclass(frozen=True)
class Word:
    """A word of the input text and where it is: text[start:end] == word."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class EntitySpan:
    """An entity found in a sentence: its text, type, character offsets (end exclusive) and mean tag probability."""

    text: str
    type: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


def split_words(text: str) -> list[Word]:
    """Split text into words with their offsets: runs of letters and digits, each other symbol alone.

    Unlike a BERT pre-tokeniser (`tokenizers.pre_tokenizers.BertPreTokenizer`, which splits at every
    punctuation mark), a `-`, `'`, `.` or `’` between two letters or digits stays inside the word, so
    `Cook's`, `U.S`, `3.50` and `New-York` are one word each: one tag per word, as CoNLL-style data tags them.
    The sub-word tokenizer still splits them inside the model.
    """
    return [Word(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def parse_tag(tag: str) -> tuple[str, str | None]:
    """("O", None), ("B", type) or ("I", type); a tag with no `B-`/`I-` prefix is ("I", tag) (IO scheme)."""
    if tag == "O" or not tag:
        return "O", None
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "BI":
        return tag[0], tag[2:]
    return "I", tag


def is_bio_tag(tag: str) -> bool:
    """True for the tags a data file may hold: `O`, `B-TYPE`, `I-TYPE` (TYPE without whitespace)."""
    return tag == "O" or (len(tag) > 2 and tag[1] == "-" and tag[0] in "BI" and not any(c.isspace() for c in tag))


def bio_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """Decode a word-level tag sequence into (first word, last word exclusive, type) triples."""
    from seqeval.metrics.sequence_labeling import get_entities

    bio = [prefix if kind is None else f"{prefix}-{kind}" for prefix, kind in map(parse_tag, tags)]
    return [(start, end + 1, kind) for kind, start, end in get_entities(bio)]  # seqeval's end is inclusive


def entity_spans(text: str, words: list[Word], tags: list[str], scores: list[float]) -> list[EntitySpan]:
    """Turn word-level tags and their probabilities into entity spans with character offsets in `text`."""
    if not (len(words) == len(tags) == len(scores)):
        raise ValueError(f"words ({len(words)}), tags ({len(tags)}) and scores ({len(scores)}) differ in length")
    out = []
    for first, last, kind in bio_spans(tags):
        start, end = words[first].start, words[last - 1].end
        score = sum(scores[first:last]) / (last - first)
        out.append(EntitySpan(text=text[start:end], type=kind, start=start, end=end, score=float(score)))
    return out
