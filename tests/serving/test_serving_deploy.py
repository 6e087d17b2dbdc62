"""Deployment: CPU count from the cgroup quota, model files readable by any user, a light serving install."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from mtsent.serving.system import available_cpus, cgroup_cpu_limit, is_loopback

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("content", "expected"), [("max 100000\n", None), ("150000 100000\n", 1.5), ("", None)])
def test_cgroup_v2_quota(tmp_path: Path, content: str, expected: float | None) -> None:
    (tmp_path / "cpu.max").write_text(content)
    assert cgroup_cpu_limit(tmp_path) == expected


def test_cgroup_v1_quota_and_rounding(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path) == 0.5
    assert available_cpus(tmp_path) == 1  # half a CPU still needs one thread


def test_quota_caps_the_cpu_count(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert available_cpus(tmp_path) == 1
    assert available_cpus(tmp_path / "absent") == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.4", False),
        ("example.org", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_saved_model_files_are_world_readable(tiny_model_dir: Path) -> None:
    for f in tiny_model_dir.iterdir():
        if f.is_file():
            assert stat.S_IMODE(f.stat().st_mode) == 0o644, f.name


def test_serving_install_is_light() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = " ".join(project["dependencies"])
    for heavy in ("streamlit", "datasets", "matplotlib", "fastapi", "accelerate"):
        assert heavy not in core
    extras = project["optional-dependencies"]
    assert not any(name in " ".join(extras["serve"]) for name in ("streamlit", "datasets", "matplotlib"))
    assert "mtsent[serve,app,train]" in extras["dev"]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert '".[serve]"' in dockerfile


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".venv", ".git", "runs", "tests", "docs"):
        assert entry in ignored
