"""`mtsent demo`: its config points at packaged data, and the whole demo runs end to end.

The end-to-end runs swap the packaged MiniLM for a tiny random BERT and train for 3 steps (the real demo's
150 steps take minutes); everything else (data, config, training, reload, embedding, prediction) is real.
"""

from __future__ import annotations

import pytest
import torch
import yaml
from rich.console import Console
from typer.testing import CliRunner

import mtsent.demo as demo
from mtsent.data import load_task_data
from mtsent.training.config import load_config


@pytest.fixture
def tiny_demo(monkeypatch, tiny_backbone):
    """Make `run_demo` (and `mtsent demo`) use the tiny backbone, fp32 and one thread."""
    original = demo.demo_config

    def tiny_config(output, steps):
        raw = original(output, steps)
        raw["model"] = {"backbone": str(tiny_backbone)}
        raw["training"].update(precision="fp32", num_threads=1)
        return raw

    monkeypatch.setattr(demo, "demo_config", tiny_config)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_demo_config_points_at_packaged_data(tmp_path):
    raw = demo.demo_config(tmp_path / "out", 7)
    assert raw["data_dir"] == str(demo.DEMO_DIR)
    assert raw["training"]["max_steps"] == 7 and raw["evaluation"]["every_steps"] == 7
    cfg = load_config(None, None, **raw)
    assert cfg.name == "demo" and set(cfg.tasks) == {"topic", "sentiment", "ner"}
    assert cfg.output_dir == tmp_path / "out"
    for name, task in cfg.tasks.items():
        files = [getattr(task.data, key) for key in ("train", "dev", "test", "path")]
        files = [f for f in files if f]
        assert files, name
        for f in files:
            assert (demo.DEMO_DIR / f).is_file(), f"{name}: {f} is not packaged"
        splits = load_task_data(name, task.type, task.data, demo.DEMO_DIR)
        assert len(splits.train) >= 50 and len(splits.dev) >= 10, name
        assert len(splits.labels) >= 2
    examples = (demo.DEMO_DIR / "examples.txt").read_text(encoding="utf-8").split("\n")
    assert len([line for line in examples if line.strip()]) >= 3


def test_demo_data_ships_with_the_package():
    """Every demo file is matched by the package-data patterns, so a wheel install has them too."""
    import fnmatch
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not running from a source checkout")
    patterns = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]["mtsent"]
    package_root = demo.DEMO_DIR.parents[1]
    for f in demo.DEMO_DIR.iterdir():
        rel = f.relative_to(package_root).as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), f"{rel} is not package data"


def test_run_demo_end_to_end(tiny_demo, tmp_path, capsys):
    out = tmp_path / "demo"
    console = Console(width=200)
    best = demo.run_demo(out, 3, console)
    assert best == out / "best"
    printed = capsys.readouterr().out
    assert "The shipped model" in printed and "cosine similarity" in printed
    assert "train one encoder with three heads" in printed
    assert "Tim Cook" not in printed  # the example sentences, not the test's
    assert "Falcon Robotics" in printed
    summary = yaml.safe_load((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["steps"] == 3 and set(summary["best"]["main"]) == {"topic", "sentiment", "ner"}

    from mtsent.model import MultiTaskModel

    model = MultiTaskModel.from_pretrained(best, device="cpu")
    (answer,) = model.predict(["Angela Merkel visited Paris on Monday."])
    assert set(answer) == {"topic", "sentiment", "ner"}

    # running it again replaces the earlier demo run (the demo always starts fresh)
    demo.run_demo(out, 3, console)
    assert yaml.safe_load((out / "summary.json").read_text(encoding="utf-8"))["steps"] == 3


def test_run_demo_refuses_to_overwrite_another_directory(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete", encoding="utf-8")
    with pytest.raises(FileExistsError, match="not an earlier demo run"):
        demo.run_demo(precious, 3, Console(quiet=True))
    assert (precious / "thesis.tex").is_file()


def test_demo_cli(tiny_demo, tmp_path):
    from mtsent.cli import app

    result = CliRunner().invoke(app, ["demo", "--steps", "2", "--output", str(tmp_path / "d")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "best" / "model.safetensors").is_file()
    not_demo = tmp_path / "other"
    not_demo.mkdir()
    result = CliRunner().invoke(app, ["demo", "--steps", "2", "--output", str(not_demo)])
    assert result.exit_code == 2
    assert "not an earlier demo run" in " ".join(result.output.split())
