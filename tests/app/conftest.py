"""Fixtures for the web app tests: the app script's path and an AppTest factory that passes the model by env."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import mtsent.app

APP_PATH = Path(mtsent.app.__file__)


@pytest.fixture
def make_app(monkeypatch, tmp_path) -> Callable[..., AppTest]:
    """Build an AppTest for the app with a given model and runs directory (empty by default).

    The timeout is generous because the first run in the process loads a model; later runs reuse it through
    st.cache_resource, which lives as long as the test process.
    """

    def factory(model: str | Path | None = None, runs_dir: Path | None = None) -> AppTest:
        if model is None:
            monkeypatch.delenv(mtsent.app.ENV_MODEL, raising=False)
        else:
            monkeypatch.setenv(mtsent.app.ENV_MODEL, str(model))
        runs = runs_dir if runs_dir is not None else tmp_path / "no-runs"
        monkeypatch.setenv(mtsent.app.ENV_RUNS_DIR, str(runs))
        return AppTest.from_file(str(APP_PATH), default_timeout=120)

    return factory
