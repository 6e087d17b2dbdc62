"""Inference modes: precision choice, token-budget batching, converted model copies, streaming to files.

Precisions (one option everywhere: `precision=` in `encode`/`predict`, `--precision` in the CLI):

- `fp32` (exact, batch-invariant): matches sentence-transformers.
- `bf16`: bfloat16 weights (a cached copy) under autocast; matrix products run on AMX (recent Intel Xeon) or
  tensor cores (GPU).
- `int8`: dynamic int8 quantisation of most Linear layers (CPU only); for CPUs without bf16 units.
- `auto` (the default in the library, the CLI and the service): `bf16` where the hardware has bf16 matrix
  units, else `fp32`.

See docs/speed.md for measurements and how to choose.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import tempfile
import warnings
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from functools import cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from mtsent.encoder import SentenceEncoder

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "PRECISIONS",
    "drop_inference_copies",
    "encode_file",
    "fast_bf16",
    "inference_copy",
    "jsonl_records",
    "precision_context",
    "resolve_precision",
    "token_budget_batches",
]

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8", "auto")
DEFAULT_MAX_TOKENS = 2048
"""Padded tokens per batch: measured best on a 2-core AMX CPU (1024-2048 beat both fixed batches of 32 and 8192)."""


@cache
def _cpu_has_bf16_units() -> bool:
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def fast_bf16(device: torch.device) -> bool:
    """Whether bf16 matrix products are native here (AMX / AVX512-BF16 CPU, Ampere or newer GPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_has_bf16_units()


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision for a requested one: `auto` picks bf16 only where the hardware makes it fast."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    if precision == "int8" and device.type != "cpu":
        raise ValueError("precision 'int8' (dynamic quantisation) runs on CPU only; use bf16 on a GPU")
    return precision


def precision_context(device: torch.device, precision: str):
    """Autocast context for a precision name: bf16 autocast, nothing for fp32 and int8 (see `inference_copy`)."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def token_budget_batches(lengths: Sequence[int], max_tokens: int, max_batch: int | None = None) -> list[list[int]]:
    """Indices sorted longest first, cut so that each batch holds at most `max_tokens` padded tokens.

    Short sentences travel in large batches (less per-call overhead), long ones in small batches (bounded
    activation and attention memory); `max_batch` optionally caps the number of sentences too. A sentence
    longer than the budget gets a batch of its own.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if max_batch is not None and max_batch < 1:
        raise ValueError(f"batch_size must be >= 1, got {max_batch}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        # longest first: the batch's first sentence sets its padded width
        fits = batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= max_tokens
        if fits and (max_batch is None or len(batches[-1]) < max_batch):
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


_COPIES: weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[tuple, nn.Module]]] = weakref.WeakKeyDictionary()


def _weights_key(module: nn.Module) -> tuple:
    """Changes whenever a weight is replaced, moved or updated in place (an optimiser step bumps `_version`)."""
    key = []
    for p in module.parameters():
        try:
            version = p._version
        except RuntimeError:  # inference tensors keep no version counter; they cannot be updated in place either
            version = -1
        key.append((p.data_ptr(), version))
    return tuple(key)


def _converted(module: nn.Module, precision: str) -> nn.Module:
    """A copy of the module with weights stored for `precision`; tokenizers and configs are shared, not copied.

    bf16: every weight in bfloat16, run under autocast (which keeps the float32 pooling and heads working); this
    saves autocast's cast of each weight on every call. int8: dynamic quantisation of the Linear layers that do
    not shrink their input; the down-projections (FFN output, classifier heads) stay float because their inputs
    carry outlier activations that a per-tensor int8 scale flattens (quantising them too cost ~1 point of STS-B
    Spearman and cosines down to 0.79 with all-MiniLM-L6-v2; see docs/speed.md).
    """
    shared = {
        id(value): value
        for sub in module.modules()
        for name, value in vars(sub).items()
        if not name.startswith("_") and not isinstance(value, nn.Module | torch.Tensor)
    }
    clone = copy.deepcopy(module, memo=shared)
    if precision == "bf16":
        return clone.to(torch.bfloat16).eval()
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    spec = {
        name: default_dynamic_qconfig
        for name, layer in clone.named_modules()
        if isinstance(layer, nn.Linear) and layer.in_features <= layer.out_features
    }
    with warnings.catch_warnings():
        # torch.ao eager quantisation is deprecated in favour of torchao (not a dependency here); it still works
        warnings.simplefilter("ignore")
        return quantize_dynamic(clone, spec, dtype=torch.qint8).eval()


def inference_copy(module: nn.Module, precision: str) -> nn.Module:
    """The module that runs a precision: itself for fp32, a cached converted copy for bf16 and int8.

    The copy is rebuilt when the weights change (training, loading, moving), and it is kept outside the module
    (no new sub-module), so `state_dict` and the saved checkpoint format are unchanged. Run it inside
    `precision_context`. Weight changes are detected by tensor version counters, which fused optimizers
    (`torch.optim.AdamW(fused=True)`) do not bump: a loop that steps one must call `drop_inference_copies`
    before inference, as mtsent's Trainer does before each evaluation.
    """
    precision = resolve_precision(precision, next(module.parameters()).device)
    if precision == "fp32":
        return module
    key = (precision, _weights_key(module))
    cached = _COPIES.get(module, {}).get(precision)
    if cached is None or cached[0] != key:
        cached = (key, _converted(module, precision))
        _COPIES.setdefault(module, {})[precision] = cached
    return cached[1]


# ---------------------------------------------------------------- streaming to files
def drop_inference_copies(module: nn.Module) -> None:
    """Forget the converted copies of `module` and its sub-modules, so the next inference call rebuilds them."""
    for sub in module.modules():
        _COPIES.pop(sub, None)


def _line_chunks(stream: IO[bytes], name: str, chunk_size: int) -> Iterator[list[str]]:
    """Non-blank stripped lines in chunks; a decoding error names the file and the line."""
    chunk: list[str] = []
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            message = f"{name} is not UTF-8 text: undecodable byte at line {number} (byte {exc.start})"
            raise ValueError(message) from None
        if line:
            chunk.append(line)
            if len(chunk) == chunk_size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for raw in f if raw.strip())


def encode_file(
    encoder: SentenceEncoder,
    source: Path,
    output: Path | None = None,
    *,
    chunk_size: int = 10_000,
    **encode_kwargs,
) -> tuple[int, int]:
    """Embed a file of one sentence per line ('-' = stdin) into `.npy` or `.jsonl` (None: JSONL on stdout).

    Memory stays bounded whatever the file's size: lines are read, encoded and written `chunk_size` at a time.
    A `.npy` gets its header first (the row count comes from a first pass over the file; stdin is spooled to a
    temporary file for that) and then the rows, appended with plain writes rather than a memory map, whose
    written pages would count towards the process's resident memory. Returns (sentences, dimension).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    suffix = output.suffix if output is not None else ".jsonl"
    if suffix not in (".npy", ".jsonl", ".json"):
        raise ValueError(f"--output must end in .npy or .jsonl, got {output.name}")  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory() as tmp:
        if str(source) == "-":
            name = "<stdin>"
            spooled = Path(tmp) / "stdin.txt"
            with spooled.open("wb") as f:
                shutil.copyfileobj(sys.stdin.buffer, f)
            source = spooled
        else:
            name = str(source)
            if not source.is_file():
                raise FileNotFoundError(f"input file not found: {source}")
        total = _count_lines(source)
        if total == 0 and name == "<stdin>":
            raise ValueError("no input: give sentences as arguments, --file PATH, or pipe them on stdin")
        if total == 0:
            raise ValueError(f"{name} holds no sentences (it is empty or only blank lines)")
        written = 0
        with source.open("rb") as lines, _open_output(output) as out:
            if suffix == ".npy":
                header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False}
                np.lib.format.write_array_header_1_0(out, {**header, "shape": (total, encoder.dim)})
            for chunk in _line_chunks(lines, name, chunk_size):
                vectors = encoder.encode(chunk, **encode_kwargs)
                if suffix == ".npy":
                    out.write(np.ascontiguousarray(vectors, dtype="<f4").tobytes())
                else:
                    out.write(jsonl_records(chunk, vectors).encode("utf-8"))
                written += len(chunk)
        if written != total:
            raise ValueError(f"{name} changed while it was being encoded ({total} lines, then {written})")
    return written, encoder.dim


def jsonl_records(sentences: Sequence[str], vectors: np.ndarray) -> str:
    """One JSON object per line: the sentence and its embedding rounded to 6 decimals."""
    return "".join(
        json.dumps({"sentence": t, "embedding": [round(float(x), 6) for x in v]}) + "\n"
        for t, v in zip(sentences, vectors)
    )


def _open_output(output: Path | None):
    """The binary stream to write: stdout, or the output file written atomically (see `_atomic_file`)."""
    if output is None:
        return nullcontext(sys.stdout.buffer)
    return _atomic_file(output)


@contextmanager
def _atomic_file(output: Path) -> Iterator[BinaryIO]:
    """Write to `output.partial` and rename it into place only once complete: a killed run never leaves an
    .npy whose header promises rows that are not there, and an existing output survives a failed run."""
    partial = output.with_name(output.name + ".partial")
    try:
        with partial.open("wb") as fh:
            yield fh
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
