"""The one exception type of the data layer, so callers can catch bad input precisely."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data: the message names the file, the line/row and what was expected."""
