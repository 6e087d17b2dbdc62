"""Training throughput: mtsent's multi-task Trainer vs Hugging Face `Trainer` fine-tunes, CoNLL-2003 + SST-2.

Run: `python benchmarks/train_speed.py` (writes docs/results/train_speed.json). Same backbone, batch size, max
length (128) and bf16 on both sides. mtsent trains one model on both tasks (round-robin sampling, `--steps`
steps); Hugging Face, which has no shared-encoder multi-task training, fine-tunes a token-classification model on
CoNLL-2003 and a sequence-classification model on SST-2 for `--steps / 2` steps each. Throughput is examples per
second of training time (evaluation and setup excluded on both sides); the whole comparison is repeated
`--repeats` times, alternating sides, and the median is reported.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from datetime import date
from pathlib import Path

from corpora import DATA
from records import RESULTS, machine, write_report

NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def mtsent_rate(steps: int, batch_size: int, out: Path) -> float:
    """Examples/s of training time reported by mtsent's Trainer."""
    from mtsent.training import Trainer

    config = {
        "name": "train_speed",
        "data_dir": str(DATA),
        "tasks": {
            "ner": {
                "type": "token_classification",
                "data": {"format": "conll", "train": "conll2003/train.txt", "dev": "conll2003/dev.txt"},
            },
            "sentiment": {
                "type": "sentence_classification",
                "data": {
                    "format": "tsv",
                    "train": "sst2/train.tsv",
                    "dev": "sst2/dev.tsv",
                    "header": True,
                    "text_column": "sentence",
                    "label_column": "label",
                },
            },
        },
        "training": {"batch_size": batch_size, "max_steps": steps, "precision": "bf16", "max_length": 128},
        "sampling": {"strategy": "round_robin"},
        "evaluation": {"every_steps": 10 * steps},
        "output": {"dir": str(out / "mtsent"), "save_best": False, "save_last": False, "plots": False},
    }
    summary = Trainer(config, show_progress=False).fit()
    return float(summary["train_examples_per_s"])


def hf_rate(steps: int, batch_size: int, out: Path) -> float:
    """Examples/s of training time of two Hugging Face Trainer fine-tunes (NER, then sentiment), combined."""
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    from mtsent.data.readers import read_conll, read_table
    from mtsent.encoder import default_backbone_path

    hf_logging.set_verbosity_error()
    path = str(default_backbone_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    n = steps // 2 * batch_size

    conll = read_conll(DATA / "conll2003" / "train.txt")[:n]
    enc = tokenizer([list(e.tokens) for e in conll], is_split_into_words=True, truncation=True, max_length=128)
    labels = []
    for i, e in enumerate(conll):
        previous, row = None, []
        for w in enc.word_ids(i):
            row.append(-100 if w is None or w == previous else NER_LABELS.index(e.tags[w]))
            previous = w
        labels.append(row)
    ner = Dataset.from_dict({**enc, "labels": labels})
    sst = read_table(DATA / "sst2" / "train.tsv", text_column="sentence", label_column="label")[:n]
    enc = tokenizer([e.text for e in sst], truncation=True, max_length=128)
    sentiment = Dataset.from_dict({**enc, "labels": [int(e.label) for e in sst]})

    jobs = [
        (AutoModelForTokenClassification, len(NER_LABELS), ner, DataCollatorForTokenClassification(tokenizer)),
        (AutoModelForSequenceClassification, 2, sentiment, DataCollatorWithPadding(tokenizer)),
    ]
    examples, seconds = 0, 0.0
    for model_class, num_labels, dataset, collator in jobs:
        args = TrainingArguments(
            output_dir=str(out / "hf"),
            per_device_train_batch_size=batch_size,
            max_steps=steps // 2,
            bf16=True,
            use_cpu=True,
            learning_rate=5e-5,
            logging_strategy="no",
            save_strategy="no",
            report_to=[],
            disable_tqdm=True,
        )
        model = model_class.from_pretrained(path, num_labels=num_labels)
        metrics = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator).train().metrics
        examples += steps // 2 * batch_size
        seconds += metrics["train_runtime"]
    return examples / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS / "train_speed.json")
    args = parser.parse_args()

    rates: dict[str, list[float]] = {"mtsent Trainer (1 model, 2 tasks)": [], "HF Trainer (2 models)": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for name in list(rates)[:: 1 if r % 2 == 0 else -1]:
                fn = mtsent_rate if name.startswith("mtsent") else hf_rate
                rates[name].append(fn(args.steps, args.batch_size, Path(tmp) / str(r)))
    medians = {name: statistics.median(v) for name, v in rates.items()}
    base = medians["HF Trainer (2 models)"]
    result = {
        "benchmark": "train_speed",
        "date": date.today().isoformat(),
        "machine": machine(),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "precision": "bf16",
        "repeats": args.repeats,
        "results": {n: {"examples_per_s": medians[n], "runs": rates[n], "x_hf": medians[n] / base} for n in rates},
    }
    write_report(args.output, result)
    print("| trainer | train examples/s | x HF |")
    print("|---|---|---|")
    for name, value in medians.items():
        print(f"| {name} | {value:.1f} | {value / base:.2f} |")


if __name__ == "__main__":
    main()
