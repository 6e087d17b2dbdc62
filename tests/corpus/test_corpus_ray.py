"""Corpus jobs on Ray Data: 2 local actors give the same rows, vectors, labels and bad-row reports as in-process.

One local Ray cluster (2 CPUs, no dashboard) serves the module; the tiny random BERT keeps each job to seconds.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from corpus_data import write_dataset

from mtsent.corpus import CorpusJob, run_job
from mtsent.corpus.job import local_engine

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def table_of(out):
    return pq.read_table(out).sort_by([("file", "ascending"), ("row", "ascending")])


def test_ray_matches_in_process(ray_cluster, tiny_tagger_dir, tmp_path):
    from mtsent.corpus.ray_engine import ray_engine

    write_dataset(tmp_path / "in", rows=500)  # 2,000 rows in 4 formats
    with (tmp_path / "in" / "a.txt").open("a", encoding="utf-8") as fh:
        fh.write("\n\n   \nlast line\n")
    (tmp_path / "in" / "e.jsonl").write_text('{"text": "ok"}\n{"text": 3}\n', encoding="utf-8")
    for command in ("encode", "predict"):
        job = CorpusJob(command=command, model=str(tiny_tagger_dir), precision="fp32", keep_columns=["text"])
        local = run_job(
            job, tmp_path / "in", tmp_path / f"{command}-local", engine=local_engine(chunk_size=256), on_error="skip"
        )
        on_ray = run_job(
            job,
            tmp_path / "in",
            tmp_path / f"{command}-ray",
            engine=ray_engine(chunk_size=256, actors=2),
            on_error="skip",
        )
        assert (on_ray.rows, on_ray.bad_rows) == (local.rows, local.bad_rows) == (2002, 1)
        a, b = table_of(tmp_path / f"{command}-local"), table_of(tmp_path / f"{command}-ray")
        assert a.column_names == b.column_names
        for name in a.column_names:
            if name == "embedding":  # fp32 is batch-invariant: the same vectors bit for bit
                assert np.array_equal(
                    np.stack(a[name].to_numpy(zero_copy_only=False)), np.stack(b[name].to_numpy(zero_copy_only=False))
                )
            else:
                assert a[name].to_pylist() == b[name].to_pylist(), name
        errors = [json.loads(f.read_text()) for f in (tmp_path / f"{command}-ray" / "_errors").glob("*.jsonl")]
        assert [e["row"] for e in errors] == [1]
    again = run_job(job, tmp_path / "in", tmp_path / "predict-ray", engine=ray_engine(actors=2), on_error="skip")
    assert (again.files, again.skipped_files) == (0, 5)


def test_ray_reports_a_bad_row_like_in_process(ray_cluster, tiny_encoder_dir, tmp_path):
    from mtsent.corpus.ray_engine import ray_engine

    (tmp_path / "x.csv").write_text("id,text\n1,hello\n2,\n", encoding="utf-8")
    job = CorpusJob(command="encode", model=str(tiny_encoder_dir))
    with pytest.raises(ValueError, match=r"x.csv, row 1: 'text' is empty"):
        run_job(job, tmp_path / "x.csv", tmp_path / "out", engine=ray_engine(actors=1))
    with pytest.raises(ValueError, match="has no task heads"):
        run_job(
            job.model_copy(update={"command": "predict"}),
            tmp_path / "x.csv",
            tmp_path / "out2",
            engine=ray_engine(actors=1),
        )
