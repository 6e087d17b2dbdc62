"""Parity of a trained model's exports with mtsent itself, each export run by its own consumer library.

- sentence-transformers: `SentenceTransformer(export).encode` against `SentenceEncoder.encode` (fp32) on every
  STS-B dev sentence: row cosine.
- transformers: `pipeline("token-classification", aggregation_strategy="first")` against `mtsent predict` on every
  CoNLL-2003 dev sentence (tokens joined by spaces): share of sentences with the same entity set (type and
  character span), overall and on the sentences whose words both cut alike (see `joins_words`).
- onnx: onnxruntime against PyTorch fp32 on the STS-B dev sentences: largest |difference| of the embedding and of
  the token task's logits (real tokens only).

Run: `python benchmarks/export_parity.py --model runs/ner300/best` (writes docs/results/export_parity.json).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from corpora import DATA, read_stsb
from records import RESULTS, machine, write_report
from similarity import row_cosine

from mtsent.data import read_conll
from mtsent.export import to_onnx, to_sentence_transformers, to_transformers
from mtsent.model import MultiTaskModel
from mtsent.spans import split_words


def conll_texts(path: Path) -> list[str]:
    """The dev sentences as plain text, tokens joined by single spaces."""
    return [" ".join(example.tokens) for example in read_conll(path)]


def joins_words(tokenizer, text: str) -> bool:
    """True when a word of mtsent's (U.S., ex-England) is several words to the tokenizer and so to the pipeline:
    there the pipeline tags each piece by its own first sub-word, mtsent the whole word by its first."""
    pre = tokenizer.backend_tokenizer.pre_tokenizer
    return any(len(pre.pre_tokenize_str(word.text)) > 1 for word in split_words(text))


def mtsent_entities(model: MultiTaskModel, task: str, texts: list[str]) -> list[set[tuple[str, int, int]]]:
    predictions = model.predict(texts, tasks=[task], precision="fp32")
    return [{(e.type, e.start, e.end) for e in p[task].entities} for p in predictions]


def pipeline_entities(export_dir: Path, texts: list[str]) -> list[set[tuple[str, int, int]]]:
    from transformers import pipeline

    ner = pipeline("token-classification", model=str(export_dir), aggregation_strategy="first", device="cpu")
    return [{(e["entity_group"], e["start"], e["end"]) for e in found} for found in ner(texts, batch_size=32)]


def onnx_max_diff(model: MultiTaskModel, export_dir: Path, texts: list[str], batch_size: int = 64) -> dict[str, float]:
    """Largest |onnxruntime - PyTorch fp32| per output over the texts (padding positions left out)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(export_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    worst = dict.fromkeys(names, 0.0)
    tokenizer = model.encoder.tokenizer
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            texts[start : start + batch_size],
            padding=True,
            truncation=True,
            max_length=model.encoder.max_length,
            return_tensors="np",
        )
        feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
        got = dict(zip(names, session.run(names, feeds)))
        with torch.inference_mode():
            ref = model(torch.from_numpy(feeds["input_ids"]), torch.from_numpy(feeds["attention_mask"]))
        expected = {"sentence_embedding": ref.sentence_embedding} | {f"logits_{n}": v for n, v in ref.logits.items()}
        keep = feeds["attention_mask"].astype(bool)
        for name in names:
            diff = np.abs(got[name] - expected[name].numpy())
            worst[name] = max(worst[name], float((diff[keep] if diff.ndim == 3 else diff).max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="A trained mtsent model with a token task.")
    parser.add_argument("--task", default="ner")
    parser.add_argument("--output", type=Path, default=RESULTS / "export_parity.json")
    args = parser.parse_args()

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = MultiTaskModel.from_pretrained(args.model, device="cpu")
    first, second, _ = read_stsb()
    sentences = first + second
    conll = conll_texts(DATA / "conll2003" / "dev.txt")
    result: dict = {"benchmark": "export_parity", "date": date.today().isoformat(), "machine": machine()}
    result["model"] = str(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(str(to_sentence_transformers(model, out / "st")), device="cpu")
        cos = row_cosine(model.encode(sentences, precision="fp32"), st.encode(sentences, convert_to_numpy=True))
        result["sentence_transformers"] = {
            "sentences": len(sentences),
            "min_cosine": float(cos.min()),
            "mean_cosine": float(cos.mean()),
        }
        ours = mtsent_entities(model, args.task, conll)
        theirs = pipeline_entities(to_transformers(model, args.task, out / "hf"), conll)
        same = [a == b for a, b in zip(ours, theirs)]
        alike = [not joins_words(model.encoder.tokenizer, t) for t in conll]
        same_alike = [s for s, a in zip(same, alike) if a]
        result["transformers"] = {
            "sentences": len(conll),
            "same_entities": sum(same),
            "share_same": sum(same) / len(same),
            "sentences_cut_alike": len(same_alike),
            "share_same_cut_alike": sum(same_alike) / len(same_alike),
            "entities_mtsent": sum(map(len, ours)),
            "entities_pipeline": sum(map(len, theirs)),
            "differing_examples": [
                {"text": conll[i], "mtsent": sorted(ours[i]), "pipeline": sorted(theirs[i])}
                for i, s in enumerate(same)
                if not s
            ][:5],
        }
        onnx_dir = to_onnx(model, out / "onnx")
        result["onnx"] = {"sentences": len(sentences), "max_abs_diff": onnx_max_diff(model, onnx_dir, sentences)}
    result["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_report(args.output, result)
    print(result)


if __name__ == "__main__":
    main()
