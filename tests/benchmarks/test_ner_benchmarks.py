"""benchmarks/ner_decoding.py and benchmarks/raw_text_path.py on a small CoNLL file and the tiny model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONLL = """-DOCSTART- -X- O

Angela NNP B-PER
Merkel NNP I-PER
visited VBD O
the DT O
U.S. NNP B-LOC
on IN O
Monday NNP O
. . O

Men NNS O
's POS O
100 CD O
metres NNS O
: : O
1. CD O
Donovan NNP B-PER
Bailey NNP I-PER
( ( O
Canada NNP B-LOC
) ) O
"""


def _run(script: str, model: Path, data: Path, output: Path) -> dict:
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), str(model), "--file", str(data), "--output", str(output)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(output.read_text(encoding="utf-8"))


def test_ner_decoding_benchmark(tiny_model_dir, tmp_path):
    data = tmp_path / "dev.conll"
    data.write_text(CONLL, encoding="utf-8")
    record = _run("ner_decoding.py", tiny_model_dir, data, tmp_path / "decoding.json")
    assert record["task"] == "ner" and record["sentences"] == 2
    assert set(record["decodings"]) == {"argmax", "viterbi"}
    for row in record["decodings"].values():
        assert 0.0 <= row["f1"] <= 1.0 and {"precision", "recall", "f1_per_type"} <= set(row)
    gain = record["decodings"]["viterbi"]["f1"] - record["decodings"]["argmax"]["f1"]
    assert record["f1_gain_viterbi_x100"] == round(100 * gain, 2)


def test_raw_text_path_benchmark(tiny_model_dir, tmp_path):
    pytest.importorskip("sacremoses", reason="the Moses detokenizer (sacremoses, in the dev extra) is needed")
    data = tmp_path / "dev.conll"
    data.write_text(CONLL, encoding="utf-8")
    record = _run("raw_text_path.py", tiny_model_dir, data, tmp_path / "raw.json")
    assert record["sentences"] == 2 and record["sentences_resplit_identically"] == 2
    assert record["sentences_not_mapped"] == 0
    assert set(record["paths"]) == {"word_level", "raw_text"}
    # both sentences split back into the CoNLL words, so both paths see the same words and score the same
    assert record["paths"]["raw_text"] == pytest.approx(record["paths"]["word_level"])


def test_entities_map_back_onto_conll_words():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from raw_text_path import tags_from_entities, word_offsets

    from mtsent.spans import EntitySpan

    text = "Angela Merkel visited the U.S.-based firm."
    offsets = word_offsets(text, ["Angela", "Merkel", "visited", "the", "U.S.-based", "firm", "."])
    assert offsets[4] == (26, 36)
    entities = [EntitySpan("Angela Merkel", "PER", 0, 13, 0.9), EntitySpan("U.S", "LOC", 26, 29, 0.8)]
    assert tags_from_entities(offsets, entities) == ["B-PER", "I-PER", "O", "O", "B-LOC", "O", "O"]
    assert word_offsets("a b", ["a", "c"]) is None
