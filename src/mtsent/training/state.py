"""Resumable training state without pickle: tensors in safetensors, everything else in JSON.

Saved next to the model files of the `last` checkpoint (and written atomically with them): optimizer moments,
scheduler counters, the per-task batch streams' positions, early-stopping state and all random generators.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

__all__ = ["STATE_JSON", "STATE_TENSORS", "load_training_state", "save_training_state", "saved_step"]

STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"


def _split_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, slots in state["state"].items():
        for key, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optimizer."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    for idx, slots in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(slots)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_training_state(
    directory: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    trainer: dict,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write the state files into `directory` (the caller makes the directory appear atomically)."""
    tensors, optim_meta = _split_optimizer(optimizer.state_dict())
    tensors["rng.torch"] = torch.get_rng_state()
    for name, value in (extra_tensors or {}).items():
        tensors[f"extra.{name}"] = value.detach().cpu().contiguous()
    np_state = np.random.get_state()
    payload = {
        "trainer": trainer,
        "optimizer": optim_meta,
        "scheduler": scheduler.state_dict(),
        "rng": {
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
            "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        },
    }
    save_file(tensors, str(directory / STATE_TENSORS))
    (directory / STATE_JSON).write_text(json.dumps(payload), encoding="utf-8")


def load_training_state(directory: Path, optimizer: torch.optim.Optimizer, scheduler: Any) -> tuple[dict, dict]:
    """Restore optimizer, scheduler and RNGs; return (trainer dict, extra tensors)."""
    json_file, tensor_file = directory / STATE_JSON, directory / STATE_TENSORS
    for f in (json_file, tensor_file):
        if not f.is_file():
            raise FileNotFoundError(f"cannot resume: {f} is missing (was the run saved with output.save_last?)")
    payload = json.loads(json_file.read_text(encoding="utf-8"))
    tensors = load_file(str(tensor_file))
    optimizer.load_state_dict(_join_optimizer(tensors, payload["optimizer"]))
    scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    py = payload["rng"]["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npy = payload["rng"]["numpy"]
    np.random.set_state((npy[0], np.array(npy[1], dtype=np.uint32), *npy[2:]))
    extra = {k.removeprefix("extra."): v for k, v in tensors.items() if k.startswith("extra.")}
    return payload["trainer"], extra


def saved_step(directory: Path) -> int | None:
    """The step the checkpoint in `directory` was saved at; None when it holds no trainer state."""
    file = directory / STATE_JSON
    if not file.is_file():
        return None
    return int(json.loads(file.read_text(encoding="utf-8"))["trainer"]["state"]["step"])
