"""Embedding whole corpora: files in, a Parquet dataset of shards out, with bounded memory.

:func:`embed_file` (and ``oxiformer embed-dataset INPUT OUTPUT``) reads ``.txt`` (one text a
line), ``.jsonl``, ``.csv`` or ``.parquet`` files, or a directory of them, and writes a
directory of Parquet shards with the columns ``id`` and ``embedding`` (fixed-size list of
float32), and ``text`` with ``keep_text``. Two engines run the same plan (see
:mod:`oxiformer._inputs`) and give the same bits:

- ``"local"``: this process, chunk by chunk. Each chunk of ``rows_per_shard`` rows becomes one
  shard, written atomically; memory holds one batch of ``ENCODE_ROWS`` rows, whatever the size
  of the corpus. ``resume=True`` skips the shards a killed or interrupted run finished.
- ``"ray"``: Ray Data across a cluster (:mod:`oxiformer.ray`).

Needs pyarrow (``pip install "oxiformer[parquet]"``; Ray: ``"oxiformer[ray]"``).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oxiformer import _inputs, _shards
from oxiformer._checks import count
from oxiformer._optional import require
from oxiformer._rows import read_chunk
from oxiformer.embedding_precision import check_corpus_precision, quantized_shape
from oxiformer.errors import ConfigError, OxiformerError
from oxiformer.pretrained import model_dir
from oxiformer.st_settings import Settings

__all__ = ["ENCODE_ROWS", "EmbedSummary", "embed_file"]

#: Rows read, embedded and written at a time: what bounds the local engine's memory.
ENCODE_ROWS = 1024
ENGINES = ("local", "ray")
ON_ERROR = ("fail", "skip")


@dataclass(frozen=True)
class EmbedSummary:
    """What a run did: rows embedded (this run), rows skipped as bad (whole output), shards."""

    output: Path
    engine: str
    rows: int
    skipped: int
    shards: int
    resumed_shards: int
    seconds: float
    errors_file: Path | None

    def describe(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        line = (
            f"embedded {self.rows:,} rows into {self.output} ({self.engine} engine, "
            f"{self.shards} shard{'s' * (self.shards != 1)}) in {self.seconds:.1f} s, "
            f"{rate:,.0f} rows/s"
        )
        if self.resumed_shards:
            line += f"; {self.resumed_shards} finished shards kept from before"
        if self.skipped:
            line += f"; {self.skipped:,} bad rows skipped, listed in {self.errors_file}"
        return line


@dataclass(frozen=True)
class Job:
    """The settings of one run, as the engines need them."""

    plan: _inputs.Plan
    output: Path
    model: Path
    column: str
    id_column: str | None
    keep_text: bool
    dtype: str | None
    batch_size: int
    normalize: bool
    on_error: str
    quiet: bool
    prompt_name: str | None = None
    prompt: str | None = None
    truncate_dim: int | None = None
    precision: str | None = None
    """None: float32 (so that a float32 run resumes one started before this option)."""

    def manifest(self, rows_per_shard: int, engine: str) -> dict[str, Any]:
        """What a resumed run must share with the first: inputs and everything that changes
        the output (not the batch size: results do not depend on it)."""
        return {
            "engine": engine,
            "inputs": list(self.plan.files),
            "rows": self.plan.rows,
            "shards": len(self.plan.chunks),
            "rows_per_shard": rows_per_shard,
            "column": self.column,
            "id_column": self.id_column,
            "id_kind": self.plan.id_kind,
            "keep_text": self.keep_text,
            "model": str(self.model.resolve()),
            "dtype": self.dtype,
            "normalize": self.normalize,
            # only when set: a run without a prompt resumes one started by an older version
            **{key: value for key, value in self.options().items() if value is not None},
        }

    def options(self) -> dict[str, Any]:
        """The options of ``encode`` beyond the basics: the prompt, the truncation, the
        precision."""
        return {
            "prompt_name": self.prompt_name,
            "prompt": self.prompt,
            "truncate_dim": self.truncate_dim,
            "precision": self.precision,
        }

    def schema(self, dimension: int) -> Any:
        """The output's Arrow schema for a model ``dimension`` wide (after truncation)."""
        width, dtype = quantized_shape(dimension, self.precision or "float32")
        return _shards.output_schema(self.plan.id_kind, width, self.keep_text, dtype)

    def load_model(self) -> Any:
        """The job's ``SentenceEncoder``, truncating as asked."""
        from oxiformer.sentence import SentenceEncoder

        return SentenceEncoder.from_pretrained(
            self.model, dtype=self.dtype, truncate_dim=self.truncate_dim
        )

    @property
    def show_progress(self) -> bool:
        return not self.quiet and sys.stderr is not None and sys.stderr.isatty()


def embed_file(
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    column: str = "text",
    id_column: str | None = None,
    keep_text: bool = False,
    model: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    int8: bool = False,
    batch_size: int = 32,
    normalize: bool = False,
    prompt_name: str | None = None,
    prompt: str | None = None,
    truncate_dim: int | None = None,
    precision: str = "float32",
    engine: str = "local",
    resume: bool = False,
    on_error: str = "fail",
    rows_per_shard: int = 10_000,
    address: str | None = None,
    workers: int | None = None,
    worker_cpus: float = 1,
    quiet: bool = False,
) -> EmbedSummary:
    """Embed every row of ``input`` into the Parquet dataset ``output``.

    ``column`` names the text field (JSON lines, CSV, Parquet); ``id_column`` the field whose
    values become ``id`` (default: the row number, counted over all input files in sorted
    order). ``on_error="skip"`` lists bad rows in ``OUTPUT.errors.jsonl`` instead of stopping.
    ``prompt_name`` (one of the model's prompts) or ``prompt`` (a text) goes before every
    text and ``truncate_dim`` keeps the first dimensions, as in ``SentenceEncoder.encode``
    (``revision``: of a model id ``model`` in the Hugging Face cache);
    ``precision`` ``"binary"`` or ``"ubinary"`` writes packed bits (int8 / uint8 lists), as
    ``encode(precision=...)`` (int8 and uint8 need ranges from the whole corpus: refused).
    ``engine="ray"`` runs on Ray Data: on the cluster at ``address`` (``"auto"``,
    ``"ray://host:port"``) or a local instance, with ``workers`` actors of ``worker_cpus``
    CPUs each; ``resume`` is for the local engine only.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r} (use {' or '.join(ENGINES)})")
    if on_error not in ON_ERROR:
        raise ConfigError(f"unknown on_error {on_error!r} (use {' or '.join(ON_ERROR)})")
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    if engine == "ray" and resume:
        raise ConfigError(
            "--resume is for the local engine; Ray retries failed tasks and restarts killed "
            "workers itself (run again into a new output after a lost driver)"
        )
    if engine == "ray":
        require("ray", "--engine ray")
    require("pyarrow.parquet", "embed-dataset (Parquet output)")
    started = time.perf_counter()
    job = Job(
        plan=_inputs.make_plan(_inputs.input_files(input), column, id_column, rows_per_shard),
        output=Path(output),
        model=model_dir(model, revision),
        column=column,
        id_column=id_column,
        keep_text=keep_text,
        dtype="int8" if int8 else None,
        batch_size=batch_size,
        normalize=normalize,
        on_error=on_error,
        quiet=quiet,
        prompt_name=prompt_name,
        prompt=prompt,
        truncate_dim=None if truncate_dim is None else count("truncate_dim", truncate_dim),
        precision=None if check_corpus_precision(precision) == "float32" else precision,
    )
    Settings.load(job.model).prompt(prompt_name, prompt)  # an unknown name fails now
    done = _shards.prepare_output(job.output, job.manifest(rows_per_shard, engine), resume)
    if engine == "ray":
        from oxiformer.ray import run_job

        embedded = run_job(job, address=address, workers=workers, worker_cpus=worker_cpus)
    else:
        embedded = _run_local(job, done)
    if not any(job.output.glob("*.parquet")):  # no row at all: still a readable dataset
        _write_empty_shard(job)
    skipped = _shards.collect_errors(job.output)
    written = _shards.count_rows(job.output)
    if written + skipped != job.plan.rows:
        raise OxiformerError(
            f"{job.output}: holds {written} rows and {skipped} bad rows, the input "
            f"{job.plan.rows} rows"
        )
    return EmbedSummary(
        output=job.output,
        engine=engine,
        rows=embedded,
        skipped=skipped,
        shards=len(job.plan.chunks)
        if engine == "local"
        else len(list(job.output.glob("*.parquet"))),
        resumed_shards=len(done),
        seconds=time.perf_counter() - started,
        errors_file=_shards.errors_file(job.output) if skipped else None,
    )


def _write_empty_shard(job: Job) -> None:
    schema = job.schema(job.load_model().dimension)
    with _shards.ShardWriter(job.output, 0, schema) as writer:
        writer.commit()


def _run_local(job: Job, done: set[int]) -> int:
    """Embed every chunk whose shard is not done, one shard at a time; rows embedded."""
    from tqdm import tqdm

    encoder = job.load_model()
    schema = job.schema(encoder.dimension)
    finished = sum(chunk.rows for chunk in job.plan.chunks if chunk.index in done)
    embedded = 0
    with tqdm(
        total=job.plan.rows,
        initial=finished,
        unit="rows",
        disable=not job.show_progress,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.05,
    ) as bar:
        for chunk in job.plan.chunks:
            if chunk.index in done:
                continue
            errors = []
            with _shards.ShardWriter(job.output, chunk.index, schema) as writer:
                for batch in read_chunk(
                    chunk, job.column, job.id_column, job.plan.id_kind, ENCODE_ROWS
                ):
                    if batch.errors and job.on_error == "fail":
                        raise batch.errors[0].to_exception()
                    errors.extend(batch.errors)
                    if batch.texts:
                        embeddings = np.asarray(
                            encoder.encode(
                                batch.texts,
                                batch_size=job.batch_size,
                                normalize_embeddings=job.normalize,
                                prompt_name=job.prompt_name,
                                prompt=job.prompt,
                                precision=job.precision or "float32",
                            )
                        )
                        writer.write(batch.ids, embeddings, batch.texts if job.keep_text else None)
                        embedded += len(batch.texts)
                    bar.update(len(batch))
                _shards.write_error_part(job.output, chunk.index, errors)
                writer.commit()
    return embedded
