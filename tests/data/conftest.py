"""Shared fixtures for the data layer tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path | None:
    """$MTSENT_DATA, else ../shared/data beside the repository; None when absent."""
    env = os.environ.get("MTSENT_DATA")
    candidate = Path(env) if env else REPO.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def tokenizer():
    from mtsent.data import load_tokenizer

    return load_tokenizer(None)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    found = shared_data_dir()
    if found is None:
        pytest.skip("real data not found: set MTSENT_DATA or place it at ../shared/data beside the repo")
    return found
