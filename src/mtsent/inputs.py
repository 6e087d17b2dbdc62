"""Validation of user-supplied sentences, shared by the library, the CLI and the service.

Every entry point checks its input here so that a bad item is reported the same way everywhere:
by its index and what was wrong with it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["VISIBLE_CHARACTER", "check_sentences", "decode_utf8", "one_or_many"]

Method = TypeVar("Method", bound=Callable[..., Any])

# Characters that show nothing: controls, whitespace (Python's and JavaScript's), zero-width and other format
# characters (U+200B, U+FEFF, bidi marks), Hangul fillers. Written with BMP escapes only and without `\s`, whose
# meaning differs between Python and ECMA-262, so this one pattern means the same in `re` and in a JSON Schema.
_INVISIBLE = (
    r"\u0000-\u0020\u007f-\u00a0\u00ad\u034f\u061c\u115f\u1160\u1680\u17b4\u17b5\u180b-\u180f"
    r"\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufffb"
)
VISIBLE_CHARACTER = f"[^{_INVISIBLE}]"
"""A text must match this (hold one visible character); the service's JSON Schema uses it as `pattern`."""
_VISIBLE = re.compile(VISIBLE_CHARACTER)


def check_sentences(sentences: object, name: str = "sentences", max_chars: int | None = None) -> list[str]:
    """Return `sentences` as a list of strings or raise a TypeError/ValueError naming the bad item.

    A bare string is refused rather than iterated character by character, which is the classic silent bug.
    """
    if isinstance(sentences, str | bytes):
        raise TypeError(f"{name} must be a list of strings, not a single {type(sentences).__name__}")
    if not isinstance(sentences, Sequence):
        try:
            sentences = list(sentences)  # type: ignore[call-overload]
        except TypeError:
            raise TypeError(f"{name} must be a list of strings, got {type(sentences).__name__}") from None
    if len(sentences) == 0:
        raise ValueError(f"{name} is empty: give at least one sentence")
    out: list[str] = []
    for i, item in enumerate(sentences):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{i}] must be a string, got {type(item).__name__}")
        if not item.strip():
            raise ValueError(f"{name}[{i}] is empty or whitespace only")
        if not _VISIBLE.search(item):
            raise ValueError(f"{name}[{i}] has no visible character (only control, format or zero-width ones)")
        if max_chars is not None and len(item) > max_chars:
            raise ValueError(f"{name}[{i}] has {len(item)} characters, more than the limit of {max_chars}")
        out.append(item)
    return out


def one_or_many(method: Method) -> Method:
    """Let a batch method (`self, texts, ...` -> one result per text) also take a single string.

    As in sentence-transformers, one string in gives one result out: `encode("a")` is a 1-D vector and
    `predict("a")` a single answer, where `encode(["a"])` is a (1, dim) array and `predict(["a"])` a list.
    """

    @functools.wraps(method)
    def wrapper(self: Any, texts: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(texts, str):
            return method(self, [texts], *args, **kwargs)[0]
        return method(self, texts, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def decode_utf8(data: bytes, name: str) -> str:
    """`data` as text, or a ValueError naming the file (`name`) and the line of the first undecodable byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(f"{name} is not UTF-8 text: undecodable byte at line {line} (byte {exc.start})") from None
