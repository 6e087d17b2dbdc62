"""The anchors: sentence-transformers' fastest CPU backends and three single-task models on optimum.

These backends need transformers 4 and optimum, which cannot live beside transformers 5 in mtsent's
environment, so this script runs under another interpreter (a second virtual environment) and never imports
mtsent. Models are built offline from the backbone directory with the libraries' own export helpers, once, into
`--cache` (reused when present):

- sentence-transformers `backend="onnx"`, its O3 graph (`export_optimized_onnx_model`), its dynamic int8
  quantisation for avx512_vnni (`export_dynamic_quantized_onnx_model`) and `backend="openvino"`, each called as
  `encode(texts, batch_size=32, normalize_embeddings=True)`;
- three single-task models (sequence classification with 2 and 4 labels, token classification with 9; random
  heads, speed only) exported by optimum-intel (`OVModelFor...`) and by optimum (`ORTModelFor...`), run one
  after the other over batches of 32 texts in input order, the tokenizer padding each batch (as
  multitask_speed.py's `hf_pipeline` does with plain transformers).

Commands (`python anchor_backends.py COMMAND -h`):

- `export`: build every contender into the cache;
- `time`: warm up, then time the chosen contenders round-robin on the texts of a JSON file; writes JSON;
- `serve`: keep the chosen contenders loaded and answer one JSON request per stdin line with one timed pass,
  so that a driver in another interpreter interleaves them with its own contenders (`AnchorProcess`).

This module imports only the standard library and numpy at the top: the main environment imports it for
`AnchorProcess` and the contender names.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np

BATCH_SIZE = 32
TASK_MODELS = (("sequence", 2), ("sequence", 4), ("token", 9))
"""The single-task models: sentiment (2 labels) and topic (4) sentence classifiers, NER (9 BIO tags)."""
VERSIONED = (
    "sentence-transformers",
    "transformers",
    "optimum",
    "optimum-onnx",
    "optimum-intel",
    "openvino",
    "onnxruntime",
    "torch",
)


@dataclass(frozen=True)
class Anchor:
    """A contender of this script: its table label and what it does (embed sentences, or answer three tasks)."""

    label: str
    kind: Literal["encode", "tasks"]


ANCHORS: dict[str, Anchor] = {
    "st-onnx": Anchor("sentence-transformers ONNX", "encode"),
    "st-onnx-o3": Anchor("sentence-transformers ONNX O3", "encode"),
    "st-onnx-int8": Anchor("sentence-transformers ONNX int8 (dynamic, avx512_vnni)", "encode"),
    "st-openvino": Anchor("sentence-transformers OpenVINO", "encode"),
    "hf3-openvino": Anchor("Hugging Face x3, OpenVINO (optimum-intel)", "tasks"),
    "hf3-onnxruntime": Anchor("Hugging Face x3, ONNX Runtime (optimum)", "tasks"),
}
ST_ONNX_FILES = {"st-onnx": "model.onnx", "st-onnx-o3": "model_O3.onnx", "st-onnx-int8": "model_qint8_avx512_vnni.onnx"}
"""The files sentence-transformers' helpers write into `onnx/` (their `file_suffix` naming)."""

Run = Callable[[list[str]], np.ndarray | None]


@dataclass(frozen=True)
class Loaded:
    """A contender ready to time: one pass over texts, and what it runs with (max length, precision, files)."""

    run: Run
    details: dict[str, Any]


# ---------------------------------------------------------------- exports (once, into the cache)
def export_sentence_transformers(backbone: Path, cache: Path) -> None:
    """The sentence-transformers ONNX (plain, O3, int8) and OpenVINO models, by the library's own helpers."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model, export_optimized_onnx_model

    onnx_dir = cache / "st-onnx"
    if not (onnx_dir / "onnx" / ST_ONNX_FILES["st-onnx"]).is_file():
        SentenceTransformer(str(backbone), backend="onnx", device="cpu").save_pretrained(str(onnx_dir))
    derived = {
        "st-onnx-o3": lambda m: export_optimized_onnx_model(m, "O3", str(onnx_dir)),
        "st-onnx-int8": lambda m: export_dynamic_quantized_onnx_model(m, "avx512_vnni", str(onnx_dir)),
    }
    missing = [key for key in derived if not (onnx_dir / "onnx" / ST_ONNX_FILES[key]).is_file()]
    if missing:
        model = SentenceTransformer(str(onnx_dir), backend="onnx", device="cpu")
        for key in missing:
            derived[key](model)
    ov_dir = cache / "st-openvino"
    if not (ov_dir / "openvino" / "openvino_model.xml").is_file():
        SentenceTransformer(str(backbone), backend="openvino", device="cpu").save_pretrained(str(ov_dir))


def task_dir(cache: Path, runtime: str, kind: str, labels: int) -> Path:
    return cache / runtime / f"{kind}-{labels}"


def export_task_models(backbone: Path, cache: Path) -> None:
    """The three task models with random heads saved as plain transformers checkpoints (a folder without
    config_sentence_transformers.json, which would make optimum export a sentence-transformers pipeline instead
    of a classifier), then exported to OpenVINO and ONNX by optimum's `from_pretrained(..., export=True)`."""
    import torch
    from optimum.intel import OVModelForSequenceClassification, OVModelForTokenClassification
    from optimum.onnxruntime import ORTModelForSequenceClassification, ORTModelForTokenClassification
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    classes = {
        "sequence": (
            AutoModelForSequenceClassification,
            OVModelForSequenceClassification,
            ORTModelForSequenceClassification,
        ),
        "token": (AutoModelForTokenClassification, OVModelForTokenClassification, ORTModelForTokenClassification),
    }
    for kind, labels in TASK_MODELS:
        hf_class, ov_class, ort_class = classes[kind]
        torch_dir = task_dir(cache, "torch", kind, labels)
        if not (torch_dir / "config.json").is_file():
            torch.manual_seed(0)
            hf_class.from_pretrained(str(backbone), num_labels=labels).save_pretrained(str(torch_dir))
            AutoTokenizer.from_pretrained(str(backbone)).save_pretrained(str(torch_dir))
        for runtime, cls, marker in (
            ("openvino", ov_class, "openvino_model.xml"),
            ("onnxruntime", ort_class, "model.onnx"),
        ):
            out = task_dir(cache, runtime, kind, labels)
            if not (out / marker).is_file():
                cls.from_pretrained(str(torch_dir), export=True).save_pretrained(str(out))


# ---------------------------------------------------------------- loading (threads pinned, library defaults else)
def ort_session_options(threads: int | None) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return options


def ov_config(threads: int | None) -> dict[str, str]:
    return {"INFERENCE_NUM_THREADS": str(threads)} if threads else {}


def ov_precision(ov_model: Any) -> str:
    """The precision OpenVINO chose for the compiled model (bf16 by default on CPUs with bf16 units)."""
    return ov_model.request.get_property("INFERENCE_PRECISION_HINT").get_type_name()


def load_sentence_transformer(key: str, backbone: Path, cache: Path, threads: int | None) -> Loaded:
    from sentence_transformers import SentenceTransformer

    export_sentence_transformers(backbone, cache)
    if key == "st-openvino":
        model = SentenceTransformer(
            str(cache / "st-openvino"), backend="openvino", device="cpu", model_kwargs={"ov_config": ov_config(threads)}
        )
        details = {"file": "openvino/openvino_model.xml", "precision": ov_precision(model[0].auto_model)}
    else:
        file = f"onnx/{ST_ONNX_FILES[key]}"
        model = SentenceTransformer(
            str(cache / "st-onnx"),
            backend="onnx",
            device="cpu",
            model_kwargs={"file_name": file, "session_options": ort_session_options(threads)},
        )
        details = {"file": file}

    def run(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True)

    return Loaded(run, {**details, "max_length": model.max_seq_length, "batch_size": BATCH_SIZE})


def load_task_models(runtime: str, backbone: Path, cache: Path, threads: int | None) -> Loaded:
    from transformers import AutoTokenizer

    export_task_models(backbone, cache)
    if runtime == "openvino":
        from optimum.intel import OVModelForSequenceClassification, OVModelForTokenClassification

        classes = {"sequence": OVModelForSequenceClassification, "token": OVModelForTokenClassification}
        options: dict[str, Any] = {"ov_config": ov_config(threads)}
    else:
        from optimum.onnxruntime import ORTModelForSequenceClassification, ORTModelForTokenClassification

        classes = {"sequence": ORTModelForSequenceClassification, "token": ORTModelForTokenClassification}
        options = {"session_options": ort_session_options(threads)}
    models = [
        classes[kind].from_pretrained(str(task_dir(cache, runtime, kind, labels)), **options)
        for kind, labels in TASK_MODELS
    ]
    tokenizer = AutoTokenizer.from_pretrained(str(task_dir(cache, "torch", *TASK_MODELS[0])))

    def run(texts: list[str]) -> None:
        for model in models:
            for i in range(0, len(texts), BATCH_SIZE):
                batch = tokenizer(texts[i : i + BATCH_SIZE], padding=True, truncation=True, return_tensors="np")
                model(**batch).logits.argmax(-1).tolist()

    details = {"max_length": tokenizer.model_max_length, "batch_size": BATCH_SIZE}
    if runtime == "openvino":
        details["precision"] = ov_precision(models[0])
    return Loaded(run, details)


def load(key: str, backbone: Path, cache: Path, threads: int | None) -> Loaded:
    """Export the contender when its files are missing, then load it for timing."""
    if ANCHORS[key].kind == "encode":
        return load_sentence_transformer(key, backbone, cache, threads)
    return load_task_models(key.removeprefix("hf3-"), backbone, cache, threads)


def versions() -> dict[str, str]:
    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def timed(run: Run, texts: list[str]) -> tuple[float, np.ndarray | None]:
    start = time.perf_counter()
    out = run(texts)
    return time.perf_counter() - start, out


# ---------------------------------------------------------------- commands
def prepare(args: argparse.Namespace) -> dict[str, Loaded]:
    """Offline, threads pinned, every chosen contender exported and loaded."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.threads:
        import torch  # sentence-transformers' own tensor work between the sessions' runs

        torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    return {key: load(key, args.backbone, args.cache, args.threads) for key in args.contenders}


def time_command(args: argparse.Namespace) -> None:
    loaded = prepare(args)
    corpora: dict[str, list[str]] = json.loads(args.texts.read_text(encoding="utf-8"))
    seconds: dict[str, dict[str, list[float]]] = {key: {c: [] for c in corpora} for key in loaded}
    for corpus, texts in corpora.items():
        for contender in loaded.values():
            contender.run(texts[: args.warmup])
        for _ in range(args.repeats):
            for key, contender in loaded.items():
                seconds[key][corpus].append(timed(contender.run, texts)[0])
    result = {
        "versions": versions(),
        "threads": args.threads,
        "texts": {c: len(t) for c, t in corpora.items()},
        "contenders": {
            key: {"label": ANCHORS[key].label, **loaded[key].details, "seconds": seconds[key]} for key in loaded
        },
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for key in loaded:
        medians = ", ".join(f"{c} {statistics.median(s):.3f} s" for c, s in seconds[key].items())
        print(f"{ANCHORS[key].label}: {medians}")


def serve_command(args: argparse.Namespace) -> None:
    """One JSON request per stdin line, `{"run": key, "corpus": name, "limit": n|null, "save": path|null}`, one
    JSON reply per stdout line, `{"seconds": s}`; the first line out reports readiness, versions and details.
    Everything the libraries print goes to stderr, so stdout carries the protocol only."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    loaded = prepare(args)
    corpora: dict[str, list[str]] = json.loads(args.texts.read_text(encoding="utf-8"))
    details = {key: loaded[key].details for key in loaded}
    replies.write(json.dumps({"ready": True, "versions": versions(), "details": details}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        seconds, out = timed(loaded[request["run"]].run, corpora[request["corpus"]][: request.get("limit")])
        if request.get("save"):
            np.save(request["save"], np.asarray(out, dtype=np.float32))
        replies.write(json.dumps({"seconds": seconds}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("export", "time", "serve"):
        sub = commands.add_parser(name)
        sub.add_argument("--backbone", type=Path, required=True, help="sentence-transformers model directory")
        sub.add_argument("--cache", type=Path, required=True, help="where exported models are kept and reused")
        sub.add_argument("--threads", type=int, default=None, help="intra-op threads (default: each library's)")
        sub.add_argument("--contenders", nargs="+", choices=list(ANCHORS), default=list(ANCHORS))
        if name != "export":
            sub.add_argument("--texts", type=Path, required=True, help='JSON {"corpus name": [texts]}')
    timer = commands.choices["time"]
    timer.add_argument("--repeats", type=int, default=5)
    timer.add_argument("--warmup", type=int, default=256, help="texts of each corpus in the untimed warm-up pass")
    timer.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "export":
        prepare(args)
    elif args.command == "time":
        time_command(args)
    else:
        serve_command(args)


# ---------------------------------------------------------------- the driver's side (any environment)
class AnchorProcess:
    """Anchor contenders served by a child interpreter (`serve`): exported and loaded once, before any timing,
    then one timed pass per request, so a driver can put them in its round-robin without timing model loads."""

    def __init__(
        self,
        python: str,
        keys: Sequence[str],
        texts: dict[str, list[str]],
        threads: int,
        backbone: Path,
        cache: Path,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="anchors-")
        self.workdir = Path(self._tmp.name)
        texts_file = self.workdir / "texts.json"
        texts_file.write_text(json.dumps(texts), encoding="utf-8")
        # the child's imports must come from its own environment, not from the driver's PYTHONPATH
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        command = [
            python,
            str(Path(__file__).resolve()),
            "serve",
            "--backbone",
            str(backbone),
            "--cache",
            str(cache),
            "--threads",
            str(threads),
            "--texts",
            str(texts_file),
            "--contenders",
            *keys,
        ]
        self.python = python
        self._child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        ready = self._reply()
        self.versions: dict[str, str] = ready["versions"]
        self.details: dict[str, dict[str, Any]] = ready["details"]

    def _reply(self) -> dict[str, Any]:
        assert self._child.stdout is not None
        line = self._child.stdout.readline()
        if not line:
            raise RuntimeError(f"the anchor process exited ({self._child.wait()}); its stderr above says why")
        return json.loads(line)

    def _ask(self, request: dict[str, Any]) -> float:
        assert self._child.stdin is not None
        self._child.stdin.write(json.dumps(request) + "\n")
        self._child.stdin.flush()
        return float(self._reply()["seconds"])

    def seconds(self, key: str, corpus: str, limit: int | None = None) -> float:
        """One timed pass of `key` over the first `limit` texts of `corpus` (all when None)."""
        return self._ask({"run": key, "corpus": corpus, "limit": limit})

    def embed(self, key: str, corpus: str) -> np.ndarray:
        path = self.workdir / f"{key}-{corpus}.npy"
        self._ask({"run": key, "corpus": corpus, "save": str(path)})
        return np.load(path)

    def close(self) -> None:
        if self._child.stdin is not None:
            self._child.stdin.close()
        self._child.wait(timeout=60)
        self._tmp.cleanup()

    def __enter__(self) -> AnchorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def anchor_session(
    python: str | None, kind: str, texts: dict[str, list[str]], threads: int, backbone: Path, cache: Path
) -> AnchorProcess | nullcontext[None]:
    """The anchors of one kind ("encode" or "tasks") in a child process, or none (with a line saying so)."""
    if python is None:
        print("anchors skipped: pass --anchor-python to time ONNX/OpenVINO alongside")
        return nullcontext()
    keys = [key for key, anchor in ANCHORS.items() if anchor.kind == kind]
    return AnchorProcess(python, keys, texts, threads, backbone, cache)


if __name__ == "__main__":
    main()
