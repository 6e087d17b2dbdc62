"""check_sentences: every entry point reports bad input the same way, by index."""

from __future__ import annotations

import numpy as np
import pytest

from mtsent.inputs import check_sentences, decode_utf8, one_or_many


def test_accepts_lists_tuples_generators_and_numpy():
    assert check_sentences(["a", "b"]) == ["a", "b"]
    assert check_sentences(("a",)) == ["a"]
    assert check_sentences(s for s in ["x", "y"]) == ["x", "y"]
    assert check_sentences(np.array(["p", "q"])) == ["p", "q"]


def test_keeps_text_unchanged():
    assert check_sentences(["  padded  "]) == ["  padded  "]


@pytest.mark.parametrize("bare", ["a sentence", b"bytes"])
def test_bare_string_refused(bare):
    with pytest.raises(TypeError, match="must be a list of strings, not a single"):
        check_sentences(bare)


def test_non_iterable_refused():
    with pytest.raises(TypeError, match="got int"):
        check_sentences(3)


def test_empty_list():
    with pytest.raises(ValueError, match="sentences is empty"):
        check_sentences([])


@pytest.mark.parametrize("blank", ["", "   ", "\n\t"])
def test_blank_item_named_by_index(blank):
    with pytest.raises(ValueError, match=r"sentences\[1\] is empty or whitespace only"):
        check_sentences(["ok", blank])


@pytest.mark.parametrize("item", [None, 3, b"bytes", ["nested"]])
def test_non_string_item_named_by_index(item):
    with pytest.raises(TypeError, match=r"texts\[2\] must be a string"):
        check_sentences(["a", "b", item], name="texts")


def test_max_chars():
    assert check_sentences(["abc"], max_chars=3) == ["abc"]
    with pytest.raises(ValueError, match=r"sentences\[0\] has 4 characters, more than the limit of 3"):
        check_sentences(["abcd"], max_chars=3)


class _Echo:
    @one_or_many
    def lengths(self, texts, scale=1):
        return [len(t) * scale for t in texts]


def test_one_or_many_unwraps_a_single_string():
    echo = _Echo()
    assert echo.lengths("abc", scale=2) == 6
    assert echo.lengths(["abc"], 2) == [6]
    assert echo.lengths(("a", "bb")) == [1, 2]
    assert _Echo.lengths.__name__ == "lengths"


def test_decode_utf8_names_the_file_and_line():
    assert decode_utf8("café\n".encode(), "f.txt") == "café\n"
    with pytest.raises(ValueError, match=r"f\.txt is not UTF-8 text: undecodable byte at line 3 \(byte 4\)"):
        decode_utf8(b"a\nb\n\xff", "f.txt")
