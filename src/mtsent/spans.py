"""Words, tags and entity spans: split raw text into words with offsets (CoNLL / Penn Treebank style), read
BIO tags, decode them into spans.

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

# Abbreviations that keep their full stop (Reuters / Penn Treebank style): titles, company forms, months,
# US states as newswire writes them, and a few Latin ones. `U.S.`-style initialisms need no entry.
_ABBREVIATIONS = (
    "Mr Mrs Ms Dr Prof Sr Jr St Mt Ft Gen Gov Sen Rep Lt Col Capt Sgt Maj Adm Cmdr Rev Hon Pres Supt "
    "Inc Corp Co Ltd Bros Cie Plc Assn Dept Univ Ave Blvd Rd "
    "Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec Mon Tue Tues Wed Thu Thur Thurs Fri Sat Sun "
    "Ala Ariz Ark Calif Colo Conn Del Fla Ga Ill Ind Kan Kans Ky La Md Mass Mich Minn Miss Mo Mont Neb Nev "
    "Okla Ore Pa Tenn Tex Va Vt Wash Wis Wyo "
    "vs etc approx cf al No Nos Vol Fig"
)
_CLITIC = r"['’](?i:s|m|d|re|ve|ll)(?!\w)"  # 's 'm 'd 're 've 'll: tokens of their own, as in CoNLL / PTB
_NEGATION = r"(?i:n['’]t)(?!\w)"  # do|n't, ca|n't
_WORD = re.compile(
    rf"""
      (?<!\w)(?:[A-Za-z]\.){{2,}}(?:-\w+)*         # initialisms, full stops kept: U.S., a.m., U.S.-based
    | (?<!\w)(?:{"|".join(sorted(_ABBREVIATIONS.split(), key=len, reverse=True))})\.(?=\s+\S)  # Inc., vs. (not last)
    | (?<!\w)[A-Z]\.(?=\s+\S)                      # an initial inside a text: M. Johnson
    | (?<!\w)\d+\.(?=\s+\S)                       # a rank or list number inside a text: 1. Michael Johnson
    | (?<!\w)[A-Z]{{1,3}}\$                          # currencies: C$, US$
    | \w+(?={_NEGATION})                             # do (of don't)
    | {_NEGATION} | {_CLITIC}                          # n't, 's
    | (?:\+(?=\.?\d))?(?:\.(?=\d))?\w+            # a word or number (+0.5, .496), with its joined parts:
      (?:(?:[-.&]|(?<=\d)[,:/](?=\d)|['’](?!(?i:s|m|d|re|ve|ll|t)(?!\w)))\w+)*  # New-York 1,000.5 3:41 O'Neill
    | ([-.=*_~!?])\1+ | [^\w\s]                      # a run of one mark (--, ...) is one token; any other mark
    """,
    re.VERBOSE,
)


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
    """Split raw text into words with their offsets, the way CoNLL-2003 (Penn Treebank style) splits its text.

    A tagger is trained on the data set's words, so raw text has to be cut the same way or tags land on words
    the model never saw: clitics are words of their own (`Men`+`'s`, `do`+`n't`), numbers keep their
    separators (`1,000.50`, `3:41.20`, `1/2`, `.496`), initialisms and common abbreviations keep their full
    stop (`U.S.`, `Inc.`, `M. Johnson`), a list number inside a text keeps its full stop (`1. Michael`) while
    a text's final full stop is a word, hyphenated words stay whole (`New-York`, `1996-08-30`), a run of one
    mark (`--`, `...`) is one word and every other symbol stands alone. The sub-word tokenizer still splits
    words inside the model.
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
