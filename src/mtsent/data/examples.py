"""Immutable example records shared by readers, splitters and encoders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SentenceExample:
    """One text with one label; ``source`` ("file:line") makes later errors point at the input."""

    text: str
    label: str
    source: str = ""


@dataclass(frozen=True)
class PairExample:
    """Two texts with a gold similarity score (a number on the data set's own scale, e.g. STS-B's 0-5)."""

    text: str
    text_pair: str
    score: float
    source: str = ""


@dataclass(frozen=True)
class TokenExample:
    """One pre-tokenised sentence with one tag per token.

    ``tokens`` and ``tags`` are stored as tuples (lists are accepted) so examples stay hashable.
    """

    tokens: Sequence[str]
    tags: Sequence[str]
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "tags", tuple(self.tags))
        if len(self.tokens) != len(self.tags):
            raise ValueError(f"{self.source or 'TokenExample'}: {len(self.tokens)} tokens but {len(self.tags)} tags")


def example_texts(example: SentenceExample | PairExample | TokenExample) -> list[str]:
    """The running text an example gives the encoder: a sentence, both of a pair, or the tokens joined by spaces."""
    if isinstance(example, TokenExample):
        return [" ".join(example.tokens)]
    if isinstance(example, PairExample):
        return [example.text, example.text_pair]
    return [example.text]
