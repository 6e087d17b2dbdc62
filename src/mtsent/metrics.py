"""Task metrics: accuracy and macro-F1 for sentence tasks, entity-level P/R/F1 for token tasks, rank and linear
correlation for similarity scores.

Entity scores come from seqeval in its default mode, which reproduces the official conlleval script: an `I-`
tag after `O` (or after another type) starts an entity, as in `mtsent.spans`, so the decoding used for
predictions and the one used for scoring agree. Which metric stands for a task is its type's `main_metric`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["sentence_metrics", "similarity_metrics", "token_metrics"]


def sentence_metrics(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, a per-class report and the confusion matrix (rows gold, columns predicted)."""
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix, f1_score

    if len(gold) != len(pred):
        raise ValueError(f"gold ({len(gold)}) and predicted ({len(pred)}) label lists differ in length")
    if not gold:
        raise ValueError("no examples to score")
    labels = list(labels)
    report = classification_report(gold, pred, labels=labels, output_dict=True, zero_division=0)
    return {
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            label: {k: float(report[label][k]) for k in ("precision", "recall", "f1-score", "support")}
            for label in labels
        },
        "confusion_matrix": confusion_matrix(gold, pred, labels=labels).tolist(),
        "labels": labels,
        "n": len(gold),
    }


def token_metrics(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict:
    """Entity-level micro precision/recall/F1 and the same per entity type (conlleval-compatible)."""
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    if len(gold) != len(pred):
        raise ValueError(f"gold ({len(gold)}) and predicted ({len(pred)}) sentence lists differ in length")
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted tags")
    if not gold:
        raise ValueError("no sentences to score")
    gold, pred = [list(s) for s in gold], [list(s) for s in pred]
    report = classification_report(gold, pred, output_dict=True, zero_division=0)
    per_type = {
        kind: {k: float(v[k]) for k in ("precision", "recall", "f1-score", "support")}
        for kind, v in report.items()
        if not kind.endswith(" avg")
    }
    return {
        "precision": float(precision_score(gold, pred, zero_division=0)),
        "recall": float(recall_score(gold, pred, zero_division=0)),
        "f1": float(f1_score(gold, pred, zero_division=0)),
        "per_type": per_type,
        "n": len(gold),
    }


def similarity_metrics(gold: Sequence[float], pred: Sequence[float]) -> dict:
    """Spearman's rank and Pearson's linear correlation of predicted similarities with gold scores (SciPy).

    Spearman is what STS results report: it ignores the scale of the gold scores (STS-B's 0-5) and of the
    prediction (a cosine), and only asks whether pairs are ordered alike.
    """
    from scipy.stats import pearsonr, spearmanr

    if len(gold) != len(pred):
        raise ValueError(f"gold ({len(gold)}) and predicted ({len(pred)}) score lists differ in length")
    if len(gold) < 2:
        raise ValueError(f"need at least 2 pairs to correlate, got {len(gold)}")
    return {
        "spearman": float(spearmanr(gold, pred).statistic),
        "pearson": float(pearsonr(gold, pred).statistic),
        "n": len(gold),
    }
