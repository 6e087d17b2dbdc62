"""Two "nodes" on one machine: two torchrun launchers (`--nnodes 2`, c10d rendezvous on 127.0.0.1), gloo, CPU.

The multi-node run must train exactly like one process that accumulates the same two batches per step: DDP
averages the two processes' gradients, accumulation averages the two micro-batches' (dropout is off, so the
only difference is float summation order).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import textwrap

import pytest
import torch
import yaml
from safetensors.torch import load_file
from test_training_ddp import _env, _torchrun

pytestmark = pytest.mark.slow

WORKER = textwrap.dedent(
    """
    import os, sys
    from safetensors.torch import save_file
    from mtsent.training import Trainer

    trainer = Trainer(sys.argv[1], show_progress=False)
    trainer.fit()
    weights = {k: v.detach().contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(weights, os.path.join(sys.argv[2], "rank" + os.environ["RANK"] + ".safetensors"))
    """
)


@pytest.fixture
def no_dropout_backbone(tiny_backbone, tmp_path):
    """The tiny random BERT without dropout, so one process and two give the same updates."""
    path = tmp_path / "backbone"
    shutil.copytree(tiny_backbone, path)
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_over_loopback_train_like_one_process(make_config, no_dropout_backbone, tmp_path):
    settings = {
        "training": {"max_steps": 4, "batch_size": 4, "log_every": 1},
        "model": {"backbone": str(no_dropout_backbone), "max_length": 32},
        "evaluation": {"every_steps": 4},
    }
    config = make_config(run_dir=tmp_path / "nodes", tasks=("sentiment",), **settings)
    config["tasks"]["sentiment"]["head"] = {"dropout": 0.0}
    cfg_path = tmp_path / "nodes.yaml"
    cfg_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    (tmp_path / "worker.py").write_text(WORKER, encoding="utf-8")
    reports = tmp_path / "reports"
    reports.mkdir()
    endpoint = f"127.0.0.1:{_free_port()}"
    launchers = [
        subprocess.Popen(
            [
                _torchrun(),
                "--nnodes",
                "2",
                "--nproc-per-node",
                "1",
                "--node-rank",
                str(rank),
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                endpoint,
                "--rdzv-id",
                "mtsent-test",
                str(tmp_path / "worker.py"),
                str(cfg_path),
                str(reports),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(),
            cwd=tmp_path,
        )
        for rank in (0, 1)
    ]
    outputs = [p.communicate(timeout=240)[0] for p in launchers]
    for p, out in zip(launchers, outputs):
        assert p.returncode == 0, out[-4000:]
    assert "x 2 process(es)" in " ".join(outputs[0].split())
    r0, r1 = load_file(reports / "rank0.safetensors"), load_file(reports / "rank1.safetensors")
    assert all(torch.equal(r0[k], r1[k]) for k in r0), "the two nodes' replicas diverged"

    from mtsent.training import Trainer

    single = make_config(run_dir=tmp_path / "single", tasks=("sentiment",), **settings)
    single["tasks"]["sentiment"]["head"] = {"dropout": 0.0}
    single["training"]["gradient_accumulation_steps"] = 2
    trainer = Trainer(single, show_progress=False)
    trainer.fit()
    one = {k: v.detach() for k, v in trainer.model.state_dict().items()}
    for key, value in one.items():
        torch.testing.assert_close(r0[key], value, rtol=1e-4, atol=1e-5, msg=key)
