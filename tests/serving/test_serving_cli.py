"""`mtsent serve`: options reach the server, a model that cannot load is one clear line (exit 2)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtsent.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def own_logging_stays_in_the_test(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`uvicorn.Config` applies mtsent's logging setup at once, with handlers on the CLI runner's stream, which is
    closed when the test ends: later log lines in the session would fail to write. Restore the loggers after."""
    for name in ("mtsent", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", list(logger.handlers))
        for attr in ("level", "propagate", "disabled"):
            monkeypatch.setattr(logger, attr, getattr(logger, attr))
    yield
    monkeypatch.undo()
    logging.getLogger().manager._clear_cache()


def test_missing_model_dir(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--model", str(tmp_path / "absent")])
    assert result.exit_code == 2
    assert "model directory not found" in result.output and "Traceback" not in result.output


def test_broken_model_dir(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    result = runner.invoke(app, ["serve", "--model", str(tmp_path)])
    assert result.exit_code == 2
    assert "could not load the model" in result.output and "Traceback" not in result.output


def fake_server(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Capture the uvicorn config instead of serving."""
    seen: dict = {}

    def fake_run(server) -> None:
        seen["config"] = server.config
        seen["settings"] = server.config.app.state.settings

    monkeypatch.setattr("mtsent.serving.server.uvicorn.Server.run", fake_run)
    return seen


def test_options_reach_uvicorn(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = fake_server(monkeypatch)
    args = ["serve", "--model", str(tiny_model_dir), "--port", "9123", "--no-batching", "--max-sentences", "8"]
    args += ["--read-timeout", "3", "--max-connections", "50", "--shutdown-timeout", "4", "--precision", "bf16"]
    args += ["--no-background-long-texts"]
    result = runner.invoke(app, [*args, "--max-wait-ms", "2", "--max-batch-size", "16", "--no-warmup"])
    assert result.exit_code == 0, result.output
    config = seen["config"]
    assert config.host == "127.0.0.1" and config.port == 9123
    assert (config.limit_concurrency, config.timeout_graceful_shutdown) == (50, 4)
    assert config.http.read_timeout_s == 3.0
    s = seen["settings"]
    assert (s.batching, s.max_sentences, s.max_wait_ms, s.max_batch_size) == (False, 8, 2.0, 16)
    assert s.precision == "bf16" and not s.warmup and "warning" not in result.output
    assert not s.background_long_texts


def test_options_are_checked_before_the_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(model):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr("mtsent.serving.server.load_for_serving", never)
    for bad in (["--log-level", "verbose"], ["--max-wait-ms", "600000"], ["--precision", "fp16"]):
        result = runner.invoke(app, ["serve", *bad])
        assert result.exit_code == 2 and "Traceback" not in result.output, bad


def test_empty_model_dir_says_so(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--model", str(tmp_path)])
    assert result.exit_code == 2 and "holds no model" in result.output and "sentencepiece" not in result.output


def test_exposed_without_key_warns(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_server(monkeypatch)
    monkeypatch.delenv("MTSENT_API_KEYS", raising=False)
    result = runner.invoke(app, ["serve", "--model", str(tiny_model_dir), "--host", "0.0.0.0"])
    assert result.exit_code == 0 and "no API key is set" in result.output
    keys = tmp_path / "keys"
    keys.write_text("a-long-enough-key-123\n", encoding="utf-8")
    args = ["serve", "--model", str(tiny_model_dir), "--host", "0.0.0.0", "--api-key-file", str(keys)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "warning" not in result.output


def test_ui_binds_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("subprocess.call", lambda cmd: calls.append(cmd) or 0)
    assert runner.invoke(app, ["ui", "--headless"]).exit_code == 0
    assert calls[-1][calls[-1].index("--server.address") + 1] == "127.0.0.1"
    result = runner.invoke(app, ["ui", "--headless", "--host", "0.0.0.0"])
    assert result.exit_code == 0 and "without authentication" in result.output
    assert calls[-1][calls[-1].index("--server.address") + 1] == "0.0.0.0"


def test_bad_setting_is_a_clear_error(tiny_model_dir: Path) -> None:
    result = runner.invoke(app, ["serve", "--model", str(tiny_model_dir), "--max-chars", "0"])
    assert result.exit_code != 0 and "Traceback" not in result.output
