"""Corpus-scale encode and predict: a dataset of Parquet, JSONL, CSV or text files in, a directory of Parquet out.

`run_job` runs in this process by default; `ray_engine` runs the model in a pool of Ray Data actors (optional
dependency: `pip install "mtsent[ray]"`). See docs/corpus.md.
"""

from __future__ import annotations

from mtsent.corpus.job import Annotator, CorpusJob, JobSummary, run_job
from mtsent.corpus.sources import FORMATS, InputFile, find_inputs, read_chunks

__all__ = ["FORMATS", "Annotator", "CorpusJob", "InputFile", "JobSummary", "find_inputs", "read_chunks", "run_job"]
