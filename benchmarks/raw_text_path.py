"""Word-level path vs raw-text path of a trained NER model on CoNLL-2003 dev: entity F1 side by side.

    python benchmarks/raw_text_path.py runs/ner/best               # writes docs/results/raw_text_path.json
    python benchmarks/raw_text_path.py MODEL_DIR --file other.conll --task ner --output /tmp/raw.json

word level: `mtsent evaluate` on the CoNLL words (`evaluate_file`). raw text: each sentence detokenised with
the Moses detokenizer (sacremoses, in the dev extra), given to `predict` as a plain string (which splits it
into words itself, `spans.split_words`), and its entities (character offsets) mapped back onto the CoNLL words:
a word overlapping an entity gets its type (B- on the first such word, I- after). Both are scored with
seqeval. The record also counts the sentences whose raw text `split_words` cuts back into exactly CoNLL's words.
"""

from __future__ import annotations

from ner_decoding import ner_benchmark_args, write_record

from mtsent.data.readers import read_conll
from mtsent.metrics import token_metrics
from mtsent.spans import split_words
from mtsent.training.evaluation import evaluate_file


def word_offsets(text: str, tokens: list[str]) -> list[tuple[int, int]] | None:
    """Where each token lies in the detokenised text, in order; None if one is not found as written."""
    offsets, position = [], 0
    for token in tokens:
        start = text.find(token, position)
        if start < 0:
            return None
        offsets.append((start, start + len(token)))
        position = start + len(token)
    return offsets


def tags_from_entities(offsets: list[tuple[int, int]], entities: list) -> list[str]:
    """CoNLL word tags from character-offset entities: words overlapping an entity take its type."""
    tags = ["O"] * len(offsets)
    for entity in entities:
        inside = [j for j, (s, e) in enumerate(offsets) if s < entity.end and e > entity.start and tags[j] == "O"]
        for k, j in enumerate(inside):
            tags[j] = f"{'B' if k == 0 else 'I'}-{entity.type}"
    return tags


def main() -> None:
    from sacremoses import MosesDetokenizer

    args, model, task = ner_benchmark_args(__doc__, "raw_text_path.json")
    examples = read_conll(args.file)
    word_level = evaluate_file(model, task, args.file)

    detokenizer = MosesDetokenizer(lang="en")
    texts = [detokenizer.detokenize(list(e.tokens)) for e in examples]
    resplit = sum([w.text for w in split_words(t)] == list(e.tokens) for t, e in zip(texts, examples))
    predictions = model.predict(texts, tasks=[task], precision="fp32")
    gold, pred, unmapped = [], [], 0
    for example, text, answer in zip(examples, texts, predictions):
        offsets = word_offsets(text, list(example.tokens))
        if offsets is None:  # the detokenizer rewrote a word: score the sentence as all O
            unmapped += 1
            offsets = [(0, 0)] * len(example.tokens)
        gold.append(list(example.tags))
        pred.append(tags_from_entities(offsets, answer[task].entities))
    raw = token_metrics(gold, pred)
    rows = {
        path: {"precision": m["precision"], "recall": m["recall"], "f1": m["f1"]}
        for path, m in (("word_level", word_level), ("raw_text", raw))
    }
    for path, m in rows.items():
        print(f"{path:10s} P {100 * m['precision']:.2f}  R {100 * m['recall']:.2f}  F1 {100 * m['f1']:.2f}")
    print(f"{resplit} of {len(examples)} sentences re-split into CoNLL's words; {unmapped} could not be mapped")
    record = {
        "model": str(args.model),
        "task": task,
        "file": str(args.file),
        "sentences": len(examples),
        "sentences_resplit_identically": resplit,
        "sentences_not_mapped": unmapped,
        "paths": rows,
        "f1_gap_x100": round(100 * (rows["word_level"]["f1"] - rows["raw_text"]["f1"]), 2),
        "decoding": model.tasks[task].decoding,
    }
    write_record("raw_text_path.py", args, record)


if __name__ == "__main__":
    main()
