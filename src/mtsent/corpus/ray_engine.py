"""The Ray Data engine: the same corpus job, with the model in a pool of Ray actors on one machine or a cluster.

The pipeline is `from_items(pending files)` → `map_batches(read)` (one light task per file, reading it in chunks
with the same readers as the in-process engine, so rows, row numbers and bad-input reports are identical) →
`map_batches(Annotator, compute=ActorPoolStrategy(size=actors))` (each actor loads the model once) → streamed back
in input order to the driver, which writes and commits each input file's Parquet part (see `mtsent.corpus.job`).
Writing on the driver is what makes a part's completion known and atomic, and the output directory need not be
shared storage; the inputs must be readable at the same path from every node, and mtsent installed on each.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pyarrow as pa

from mtsent.corpus.job import Annotator, CorpusJob, Engine, input_chunks
from mtsent.corpus.sources import InputFile

__all__ = ["RAY_MISSING", "ray_engine"]

RAY_MISSING = 'the Ray engine needs Ray Data: pip install "mtsent[ray]"'
BLOCK_BYTES = 4 << 20
"""Ray Data's block size limit for this job: small enough that one file's chunks spread over all the actors
(at the default 128 MiB a whole file of short sentences is one block, which one actor would process alone)."""


def _read(batch: pa.Table, job: dict, chunk_size: int) -> Iterator[pa.Table]:
    """A read task: the chunks of the files in `batch` (one file per task), tagged with their pending index."""
    model = CorpusJob.model_validate(job)
    for index, path, fmt in zip(*(batch.column(c).to_pylist() for c in ("index", "path", "format"))):
        yield from input_chunks([InputFile(path, fmt)], model, chunk_size, first_index=index)


@contextmanager
def _ray_session(address: str | None) -> Iterator[None]:
    """Use the Ray session already open in this process, else connect (`address`, else $RAY_ADDRESS, else start a
    local cluster sized to the machine) and shut it down afterwards."""
    import ray

    if ray.is_initialized():
        yield
        return
    ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def _data_context() -> Iterator[None]:
    """Ordered output, small blocks and no Ray progress logging for this job; Ray Data's settings come back after."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    saved = (ctx.execution_options.preserve_order, ctx.target_max_block_size, ctx.enable_progress_bars, logger.level)
    ctx.execution_options.preserve_order = True
    ctx.target_max_block_size = BLOCK_BYTES
    ctx.enable_progress_bars = False  # mtsent's own bar counts the rows written
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        ctx.execution_options.preserve_order, ctx.target_max_block_size, ctx.enable_progress_bars, level = saved
        logger.setLevel(level)


def _unwrap(exc: BaseException) -> BaseException:
    """The user's error inside a Ray error, as one line: a bad value raised in a task, or a model that an actor
    could not load (Ray keeps only the text of an actor's constructor error)."""
    cause = getattr(exc, "cause", None)
    while getattr(cause, "cause", None) is not None:
        cause = cause.cause
    if isinstance(cause, ValueError | OSError | TypeError):
        return cause
    if getattr(exc, "_actor_init_failed", False):
        lines = [line.strip() for line in str(getattr(exc, "error_msg", exc)).splitlines() if line.strip()]
        return ValueError(f"the model could not be loaded in a Ray actor: {lines[-1] if lines else exc}")
    return exc


def ray_engine(
    *,
    chunk_size: int = 4096,
    actors: int | None = None,
    threads: int = 1,
    gpus_per_actor: float | None = None,
    address: str | None = None,
) -> Engine:
    """An engine for `run_job` that runs the model in `actors` Ray actors of `threads` CPU threads each.

    Defaults: as many actors as the cluster has CPUs for (`CPUs // threads`), or GPUs when it has GPUs (one GPU
    per actor unless `gpus_per_actor` says otherwise; 0 keeps the actors on CPU).
    """
    try:
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError(RAY_MISSING) from None
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if actors is not None and actors < 1:
        raise ValueError(f"actors must be >= 1, got {actors}")

    def batches(files: Sequence[InputFile], job: CorpusJob) -> Iterator[pa.Table]:
        import ray
        import ray.data

        with _ray_session(address), _data_context():
            resources = ray.cluster_resources()
            gpus = gpus_per_actor if gpus_per_actor is not None else (1.0 if resources.get("GPU", 0) >= 1 else 0.0)
            if actors is not None:
                pool = actors
            elif gpus > 0:
                pool = max(1, int(resources.get("GPU", 0) / gpus))
            else:
                pool = max(1, int(resources.get("CPU", 1)) // threads)
            items = [{"index": i, "path": f.path, "format": f.format} for i, f in enumerate(files)]
            ds = ray.data.from_items(items, override_num_blocks=len(items))
            ds = ds.map_batches(
                _read,
                batch_size=1,
                batch_format="pyarrow",
                num_cpus=0,  # reading is light next to the model; the actors hold the CPUs
                fn_kwargs={"job": job.model_dump(), "chunk_size": chunk_size},
            )
            ds = ds.map_batches(
                Annotator,
                batch_size=chunk_size,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=pool),
                num_cpus=threads,
                num_gpus=gpus,
                fn_constructor_kwargs={"job": job.model_dump(), "threads": threads},
            )
            try:
                yield from ds.iter_batches(batch_format="pyarrow", batch_size=None)
            except ray.exceptions.RayError as exc:
                unwrapped = _unwrap(exc)
                if unwrapped is exc:
                    raise
                raise unwrapped from None

    return batches
