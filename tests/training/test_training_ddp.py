"""Distributed data parallel on CPU: `torchrun --nproc_per_node 2` with gloo, on the tiny backbone.

Each process reports a hash of its final weights and its learned loss weights: DDP must keep them identical
across processes, and only the main process writes the run directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import yaml

pytestmark = pytest.mark.slow

WORKER = textwrap.dedent(
    """
    import hashlib, json, os, sys
    from mtsent.training import Trainer, trainer as trainer_module

    created = []

    class Recorded(trainer_module.UncertaintyWeighting):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(self)

    trainer_module.UncertaintyWeighting = Recorded
    trainer = Trainer(sys.argv[1], show_progress=False)
    summary = trainer.fit()
    digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in trainer.model.state_dict().values()))
    report = {"weights": digest.hexdigest(), "log_vars": created[0].log_vars.detach().tolist(),
              "steps": summary["steps"]}
    with open(os.path.join(sys.argv[2], "rank" + os.environ["RANK"] + ".json"), "w") as fh:
        json.dump(report, fh)
    """
)


def _torchrun() -> str:
    exe = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    if exe is None:
        pytest.skip("torchrun not found")
    return exe


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def test_torchrun_two_cpu_processes(make_config, tmp_path):
    config = make_config(
        training={"max_steps": 4, "loss_weighting": "uncertainty", "batch_size": 4},
        evaluation={"every_steps": 2},
        sampling={"strategy": "proportional"},
    )
    cfg_path = tmp_path / "ddp.yaml"
    cfg_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER, encoding="utf-8")
    reports = tmp_path / "reports"
    reports.mkdir()
    proc = subprocess.run(
        [_torchrun(), "--standalone", "--nproc_per_node", "2", str(worker), str(cfg_path), str(reports)],
        capture_output=True,
        text=True,
        timeout=240,
        env=_env(),
        cwd=tmp_path,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    flat = " ".join(output.split())
    assert "x 2 process(es)" in flat, flat[-2000:]
    assert flat.count("run directory:") == 1  # only the main process reports (and writes)
    r0 = json.loads((reports / "rank0.json").read_text())
    r1 = json.loads((reports / "rank1.json").read_text())
    assert r0["steps"] == r1["steps"] == 4
    assert r0["weights"] == r1["weights"], "DDP replicas diverged"
    assert r0["log_vars"] == r1["log_vars"], "uncertainty loss weights diverged across processes"
    assert any(v != 0 for v in r0["log_vars"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    assert summary["steps"] == 4
    assert summary["examples_seen"] == 4 * 4 * 2  # steps x batch x processes
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
