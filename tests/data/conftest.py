"""Shared fixtures for the data layer tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tokenizer():
    from mtsent.data import load_tokenizer

    return load_tokenizer(None)
