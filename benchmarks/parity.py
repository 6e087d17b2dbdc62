"""Parity of mtsent's default encoder (fp32) with sentence-transformers on every STS-B dev sentence.

Run: `python benchmarks/parity.py` (writes docs/results/parity.json).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date
from pathlib import Path

from corpora import read_stsb
from records import RESULTS, machine, write_report
from similarity import row_cosine, sts_spearman


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=RESULTS / "parity.json")
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from mtsent.encoder import SentenceEncoder, default_backbone_path

    first, second, gold = read_stsb()
    sentences = first + second
    ours = SentenceEncoder(device="cpu").encode(sentences, precision="fp32")
    st = SentenceTransformer(str(default_backbone_path()), device="cpu")
    theirs = st.encode(sentences, normalize_embeddings=True, convert_to_numpy=True)
    cos = row_cosine(ours, theirs)
    n = len(first)
    result = {
        "benchmark": "parity",
        "date": date.today().isoformat(),
        "machine": machine(),
        "sentences": len(sentences),
        "precision": "fp32",
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        "below_0.9999": int((cos < 0.9999).sum()),
        "stsb_dev_spearman": {
            "mtsent": sts_spearman(ours[:n], ours[n:], gold),
            "sentence_transformers": sts_spearman(theirs[:n], theirs[n:], gold),
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_report(args.output, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
