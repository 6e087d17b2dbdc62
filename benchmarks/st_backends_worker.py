"""sentence-transformers' own fast CPU backends (ONNX, ONNX optimised O3, ONNX int8, OpenVINO) for
encode_speed.py, run in a Python environment of their own: their exporter (optimum, optimum-intel) pins
transformers < 4.58, while mtsent needs transformers 5. encode_speed.py starts this script with that
environment's interpreter and drives it over stdin/stdout (one JSON object per line), so that its timings
interleave with mtsent's in one run. It imports neither mtsent nor anything of this repository.

Make the environment (once):

    python3 -m venv ../stbench && ../stbench/bin/pip install torch==2.13.0 "sentence-transformers[onnx,openvino]"

Requests and answers:
    {"setup": MODEL_DIR, "workdir": DIR}     -> {"backends": [names]}   (exports every backend into DIR, offline)
    {"time": NAME, "sentences": [...]}       -> {"seconds": s}          (one timed encode, batch 32)
    {"embed": NAME, "sentences": [...], "out": PATH.npy} -> {"saved": PATH}
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

BATCH_SIZE = 32


def export_backends(model_dir: str, workdir: Path) -> dict:
    """Name -> loaded SentenceTransformer, each exported with sentence-transformers' own helpers."""
    from sentence_transformers import (
        SentenceTransformer,
        export_dynamic_quantized_onnx_model,
        export_optimized_onnx_model,
    )

    local = workdir / "model"
    shutil.copytree(model_dir, local)
    onnx = SentenceTransformer(str(local), backend="onnx", device="cpu")
    onnx.save(str(local))  # writes onnx/model.onnx next to the weights
    export_optimized_onnx_model(onnx, "O3", str(local))
    export_dynamic_quantized_onnx_model(onnx, "avx512_vnni", str(local))
    openvino = SentenceTransformer(str(local), backend="openvino", device="cpu")

    def load(file_name: str):
        return SentenceTransformer(str(local), backend="onnx", device="cpu", model_kwargs={"file_name": file_name})

    return {
        "sentence-transformers ONNX": load("onnx/model.onnx"),
        "sentence-transformers ONNX O3": load("onnx/model_O3.onnx"),
        "sentence-transformers ONNX int8 (avx512_vnni)": load("onnx/model_qint8_avx512_vnni.onnx"),
        "sentence-transformers OpenVINO": openvino,
    }


def encode(model, sentences: list[str]) -> np.ndarray:
    return model.encode(sentences, batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True)


def main() -> None:
    models: dict = {}
    out = sys.stdout
    sys.stdout = sys.stderr  # library chatter must not corrupt the protocol
    for line in sys.stdin:
        request = json.loads(line)
        if "setup" in request:
            models = export_backends(request["setup"], Path(request["workdir"]))
            answer: dict = {"backends": list(models)}
        elif "time" in request:
            started = time.perf_counter()
            encode(models[request["time"]], request["sentences"])
            answer = {"seconds": time.perf_counter() - started}
        elif "embed" in request:
            np.save(request["out"], encode(models[request["embed"]], request["sentences"]).astype(np.float32))
            answer = {"saved": request["out"]}
        else:
            answer = {"error": f"unknown request {sorted(request)}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
