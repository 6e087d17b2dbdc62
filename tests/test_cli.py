"""The command line: every command works, every user mistake is one 'error:' line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mtsent import MultiTaskModel, cli

runner = CliRunner()
SENTENCES = ["A man is playing a guitar.", "Someone plays an instrument.", "Stocks fell on Monday."]


@pytest.fixture
def fast_models(monkeypatch, encoder, tiny_model, tiny_model_dir):
    """Serve the session's models instead of loading them from disk again (loading is tested separately)."""
    real_load = cli.load_model

    def load_model(model):
        if model is None:
            return MultiTaskModel(encoder, [])
        if Path(model) == tiny_model_dir:
            return tiny_model
        return real_load(model)

    monkeypatch.setattr(cli, "load_model", load_model)


def run(*args: str, input: str | bytes | None = None):
    return runner.invoke(cli.app, [str(a) for a in args], input=input)


def assert_user_error(result, *fragments: str) -> str:
    """Non-zero exit through SystemExit (no traceback) with one 'error:' message containing the fragments."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "error:" in result.output
    assert "Traceback" not in result.output
    message = " ".join(result.output.split())  # rich may wrap long lines
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---------------------------------------------------------------- encode
def test_encode_to_npy(fast_models, encoder, tmp_path):
    out = tmp_path / "emb.npy"
    result = run("encode", *SENTENCES, "--output", out)
    assert result.exit_code == 0, result.output
    vectors = np.load(out)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(vectors, encoder.encode(SENTENCES), atol=1e-6)
    assert "wrote 3 embeddings of size 384" in result.output


def test_encode_to_jsonl_from_file(fast_models, encoder, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(SENTENCES) + "\n\n   \n", encoding="utf-8")  # blank lines at the end are ignored
    out = tmp_path / "emb.jsonl"
    result = run("encode", "--file", src, "--output", out, "--no-normalize")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["sentence"] for r in rows] == SENTENCES
    vectors = np.array([r["embedding"] for r in rows])
    np.testing.assert_allclose(vectors, encoder.encode(SENTENCES, normalize=False), atol=1e-5)


def test_encode_from_stdin_to_stdout(fast_models):
    result = run("encode", input="first line\nsecond line\n\n")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["sentence"] for r in rows] == ["first line", "second line"]
    assert len(rows[0]["embedding"]) == 384
    assert np.linalg.norm(rows[0]["embedding"]) == pytest.approx(1.0, abs=1e-4)


def test_encode_file_dash_reads_stdin(fast_models):
    result = run("encode", "--file", "-", input="from stdin\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["sentence"] == "from stdin"


def test_similarity_prints_a_table(fast_models, encoder):
    result = run("similarity", *SENTENCES)
    assert result.exit_code == 0, result.output
    assert "cosine similarity" in result.output
    assert "1.000" in result.output
    expected = encoder.similarity(SENTENCES)
    assert f"{expected[0, 1]:.3f}" in result.output


def test_predict_table(fast_models, tiny_model_dir):
    result = run("predict", "Angela Merkel visited Paris.", "--model", tiny_model_dir)
    assert result.exit_code == 0, result.output
    assert "Angela Merkel visited Paris." in result.output
    for name in ("sentiment", "topic", "ner"):
        assert name in result.output


def test_predict_json_real_load(tiny_model, tiny_model_dir):
    """No patching: the directory is really loaded, and its answers are the saved model's."""
    texts = ["Angela Merkel visited Paris.", "What a great match!"]
    result = run("predict", *texts, "--model", tiny_model_dir, "--json", "--tasks", "topic,ner")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in records] == texts
    expected = tiny_model.predict(texts, tasks=["topic", "ner"])
    for record, answer in zip(records, expected):
        assert set(record) == {"text", "topic", "ner"}
        assert record["topic"]["label"] == answer["topic"].label
        assert sum(record["topic"]["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert record["ner"]["tags"] == answer["ner"].tags
        assert isinstance(record["ner"]["entities"], list)


def test_predict_decoding_option(tiny_model_dir):
    """--decoding viterbi applies to the token tasks asked for (a real load: the session model stays as it is)."""
    result = run("predict", "Angela Merkel visited Paris.", "-m", tiny_model_dir, "--json", "--decoding", "viterbi")
    assert result.exit_code == 0, result.output
    tags = json.loads(result.stdout)["ner"]["tags"]
    assert all(not t.startswith("I-") or before[2:] == t[2:] for before, t in zip(["O", *tags], tags))
    result = run("predict", "Hello.", "-m", tiny_model_dir, "--tasks", "topic", "--decoding", "viterbi")
    assert_user_error(result, "--decoding viterbi: none of the tasks ['topic'] decodes that way")


def test_predict_to_output_file(fast_models, tiny_model_dir, tmp_path):
    out = tmp_path / "pred.jsonl"
    result = run("predict", "One.", "Two.", "-m", tiny_model_dir, "-o", out)
    assert result.exit_code == 0, result.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 2
    assert "wrote 2 predictions" in result.output


def test_info(fast_models, tiny_model_dir):
    result = run("info", tiny_model_dir)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for fragment in ("backbone", "pooling", "mean", "384", "sentiment", "topic", "ner", "B-PER"):
        assert fragment in text


def test_info_encoder_only(fast_models, encoder, tmp_path, monkeypatch):
    result = run("info", "default-encoder-placeholder")  # not a path: goes to the real loader, which refuses it
    assert result.exit_code != 0
    monkeypatch.setattr(cli, "load_model", lambda model: MultiTaskModel(encoder, []))
    result = run("info", "anything")
    assert result.exit_code == 0, result.output
    assert "no task heads" in result.output


# ---------------------------------------------------------------- user mistakes
def test_missing_model_directory(tmp_path):
    missing = tmp_path / "no-such-model"
    for args in (
        ("info", missing),
        ("predict", "text", "--model", missing),
        ("encode", "text", "--model", missing),
        ("similarity", "a", "b", "--model", missing),
    ):
        assert_user_error(run(*args), "model directory not found", "no-such-model")


def test_empty_model_directory_is_one_line(tmp_path):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    for args in (("info", empty), ("predict", "text", "--model", empty), ("encode", "text", "--model", empty)):
        result = run(*args)
        assert_user_error(result, "empty-model holds no model: expected config.json and model.safetensors")
        assert len(result.output.strip().splitlines()) == 1, result.output


def test_relative_missing_model_directory():
    assert_user_error(run("info", "./no/such/dir"), "model directory not found")


def test_empty_input_file(fast_models, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    assert_user_error(run("encode", "--file", empty), "holds no sentences")


def test_missing_input_file(fast_models, tmp_path):
    assert_user_error(run("encode", "--file", tmp_path / "absent.txt"), "input file not found")


def test_no_input_at_all(fast_models, tiny_model_dir):
    assert_user_error(run("encode"), "no input")
    assert_user_error(run("similarity", input=""), "no input")
    assert_user_error(run("predict", "--model", tiny_model_dir, input="\n\n"), "no input")


def test_unknown_task(fast_models, tiny_model_dir):
    assert_user_error(
        run("predict", "text", "--model", tiny_model_dir, "--tasks", "sentiment,pos"),
        "unknown task 'pos'",
        "sentiment, topic, ner",
    )


def test_unknown_pooling():
    assert_user_error(run("encode", "text", "--pooling", "sum"), "unknown pooling 'sum'", "mean, cls, max, attention")


def test_unknown_precision(fast_models):
    assert_user_error(run("encode", "text", "--precision", "fp8"), "unknown precision 'fp8'")


def test_bad_output_suffix(fast_models, tmp_path):
    assert_user_error(run("encode", "text", "-o", tmp_path / "out.txt"), "must end in .npy or .jsonl")


def test_non_utf8_file(fast_models, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("first line\ncaf\u00e9 cr\u00e8me\n".encode("latin-1"))
    assert_user_error(run("encode", "--file", bad), "is not UTF-8 text", "line 2")


def test_non_utf8_stdin(fast_models):
    assert_user_error(run("encode", input=b"ok\n\xff\xfe\n"), "<stdin> is not UTF-8 text", "line 2")


def test_mtsent_dir_with_pooling_option(tiny_model_dir):
    assert_user_error(run("encode", "text", "--model", tiny_model_dir, "--pooling", "cls"), "from_pretrained")


def test_broken_model_directory(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("[]", encoding="utf-8")  # valid JSON, but not an object
    assert_user_error(run("info", broken))


def test_broken_model_directory_is_named(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("[]", encoding="utf-8")
    assert_user_error(run("info", broken), "broken-model")


def test_batch_size_zero_refused():
    result = run("encode", "text", "--batch-size", "0")
    assert result.exit_code == 2
    assert "batch-size" in result.output


# ---------------------------------------------------------------- start-up, version, small papercuts
def test_importing_the_cli_does_not_load_torch():
    """`mtsent --help` stays fast: torch, transformers and numpy load only when a command needs them."""
    import subprocess
    import sys

    code = "import sys, mtsent.cli; print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_lazy_package_still_resolves_task_types():
    """With nothing imported but a config, task type names still resolve (the built-in types load on demand)."""
    import subprocess
    import sys

    code = (
        "from mtsent import HeadConfig; "
        "print(HeadConfig(name='ner', type='token_classification', labels=['O', 'B-PER']).type)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "token_classification"


def test_version():
    from importlib.metadata import version

    result = run("--version")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"mtsent {version('mtsent')}"


def test_empty_tasks_option_is_an_error(fast_models, tiny_model_dir):
    for value in ("", " , "):
        assert_user_error(
            run("predict", "text", "--model", tiny_model_dir, "--tasks", value),
            "--tasks is empty",
            "sentiment, topic, ner",
        )


def test_info_keeps_task_types_whole_at_80_columns(fast_models, tiny_model_dir):
    result = runner.invoke(cli.app, ["info", str(tiny_model_dir)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "sentence_classification" in result.output
    assert "token_classification" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80


def test_encode_file_with_blank_lines_between_sentences(fast_models, tmp_path):
    src = tmp_path / "gaps.txt"
    src.write_text("first\n\nsecond\n", encoding="utf-8")
    assert_user_error(run("encode", "--file", src, "-o", tmp_path / "o.npy"), "gaps.txt has 1 blank line", "line 2")
    assert not (tmp_path / "o.npy").exists()


# ---------------------------------------------------------------- evaluate
def test_evaluate_label_map_and_data_dir_lookup(fast_models, tiny_model_dir, tmp_path, monkeypatch):
    """SST-2 style 0/1 labels scored against a negative/positive head; a relative -f found in --data-dir."""
    data = tmp_path / "data"
    (data / "sst2").mkdir(parents=True)
    (data / "sst2" / "dev.tsv").write_text("sentence\tlabel\ngreat fun\t1\ndull and slow\t0\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # sst2/dev.tsv is not under the working directory
    args = ["evaluate", "-m", tiny_model_dir, "-t", "sentiment", "-f", "sst2/dev.tsv", "--data-dir", data]
    args += ["--text-column", "sentence", "--label-column", "label", "-o", tmp_path / "m.json"]
    unmapped = run(*args)
    assert_user_error(unmapped, "labels ['0', '1'] are not labels of task 'sentiment'")
    result = run(*args, "--label-map", "0=negative, 1=positive")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert sum(row["support"] for row in metrics["per_class"].values()) == 2
    bad_pair = run(*args, "--label-map", "0:negative")
    assert_user_error(bad_pair, "--label-map: expected FILE_LABEL=HEAD_LABEL", "0:negative")
    assert_user_error(run(*args, "--label-map", "0=negative,0=positive"), "'0' is mapped twice")
    missing = ["evaluate", "-m", tiny_model_dir, "-t", "sentiment", "-f", "sst2/test.tsv", "--data-dir", data]
    assert_user_error(run(*missing), "sst2/test.tsv not found in the working directory nor in the data directory")


def test_evaluate_checks_the_output_path_first(tiny_model_dir, tmp_path, monkeypatch):
    def no_model(model):
        raise AssertionError("the model was loaded before the output path was checked")

    monkeypatch.setattr(cli, "load_model", no_model)
    data = tmp_path / "d.tsv"
    data.write_text("text\tlabel\nfine\tpositive\n", encoding="utf-8")
    args = ["evaluate", "-m", tiny_model_dir, "-t", "sentiment", "-f", data, "--text-column", "text"]
    args += ["--label-column", "label", "-o", tmp_path / "missing" / "x.json"]
    assert_user_error(run(*args), "directory", "missing does not exist")
    assert_user_error(run("predict", "text", "-m", tiny_model_dir, "-o", tmp_path), "is a directory")
