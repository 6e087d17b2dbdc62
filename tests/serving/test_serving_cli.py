"""`mtsent serve`: options reach the server, a model that cannot load is one clear line (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtsent.cli import app

runner = CliRunner()


def test_missing_model_dir(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--model", str(tmp_path / "absent")])
    assert result.exit_code == 2
    assert "model directory not found" in result.output and "Traceback" not in result.output


def test_broken_model_dir(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    result = runner.invoke(app, ["serve", "--model", str(tmp_path)])
    assert result.exit_code == 2
    assert "could not load the model" in result.output and "Traceback" not in result.output


def test_options_reach_uvicorn(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict = {}

    def fake_run(app, **kwargs) -> None:
        seen.update(kwargs, settings=app.state.settings)

    monkeypatch.setattr("mtsent.serving.server.uvicorn.run", fake_run)
    args = ["serve", "--model", str(tiny_model_dir), "--port", "9123", "--no-batching", "--max-sentences", "8"]
    result = runner.invoke(app, [*args, "--max-wait-ms", "2", "--max-batch-size", "16"])
    assert result.exit_code == 0, result.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 9123
    s = seen["settings"]
    assert (s.batching, s.max_sentences, s.max_wait_ms, s.max_batch_size) == (False, 8, 2.0, 16)


def test_bad_setting_is_a_clear_error(tiny_model_dir: Path) -> None:
    result = runner.invoke(app, ["serve", "--model", str(tiny_model_dir), "--max-chars", "0"])
    assert result.exit_code != 0 and "Traceback" not in result.output
