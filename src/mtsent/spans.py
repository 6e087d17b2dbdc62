"""Words and entity spans: split raw text into words with character offsets, decode BIO tags into spans.

Decoding follows conlleval (and seqeval's default mode): `B-X` opens an entity, `I-X` continues an open `X`
entity and otherwise opens a new one (an `I-` after `O` or after another type starts a span), `O` closes.
A tag without a `B-`/`I-` prefix (IO scheme, such as `PER`) is read as `I-PER`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

__all__ = ["EntitySpan", "Word", "bio_spans", "entity_spans", "split_words"]

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
    """Split text into words the way BERT-style pre-tokenisers do (punctuation apart), keeping offsets."""
    return [Word(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def _parse(tag: str) -> tuple[str, str | None]:
    if tag == "O" or not tag:
        return "O", None
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "BIES":
        prefix, kind = tag[0], tag[2:]
        return ("B" if prefix in "BS" else "I"), kind
    return "I", tag


def bio_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """Decode a word-level tag sequence into (first word, last word exclusive, type) triples."""
    spans: list[tuple[int, int, str]] = []
    start: int | None = None
    current: str | None = None
    for i, tag in enumerate(tags):
        prefix, kind = _parse(tag)
        continues = prefix == "I" and kind == current and start is not None
        if continues:
            continue
        if start is not None and current is not None:
            spans.append((start, i, current))
        start, current = (i, kind) if prefix in ("B", "I") else (None, None)
    if start is not None and current is not None:
        spans.append((start, len(tags), current))
    return spans


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
