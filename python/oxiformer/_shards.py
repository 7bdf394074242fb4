"""The output of ``embed-dataset``: a directory of Parquet shards, written atomically.

Layout of OUTPUT (names starting with ``_`` or ``.`` are skipped by Parquet readers, so
``pyarrow.parquet.read_table(OUTPUT)`` sees the shards only)::

    part-000000.parquet ...   one shard per chunk of the plan (local engine), each written to
                              a hidden temporary file and renamed when complete
    _oxiformer.json           the job's manifest: inputs and settings, checked by --resume
    _errors/part-000000.jsonl the bad rows of each chunk (--on-error skip), written before the
                              chunk's shard, so a finished shard always has its errors on disk

and next to it ``OUTPUT.errors.jsonl``, every bad row in order, assembled at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer._optional import require
from oxiformer._rows import RowError
from oxiformer.errors import ConfigError

__all__ = [
    "ShardWriter",
    "collect_errors",
    "count_rows",
    "embedding_array",
    "errors_file",
    "output_schema",
    "prepare_output",
    "write_error_part",
]

MANIFEST = "_oxiformer.json"
ERRORS_DIR = "_errors"


def shard_name(index: int) -> str:
    return f"part-{index:06d}.parquet"


def errors_file(output: Path) -> Path:
    """``OUTPUT.errors.jsonl``, next to the output directory."""
    return output.with_name(output.name + ".errors.jsonl")


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def output_schema(id_kind: str, dimension: int, keep_text: bool, dtype: Any = np.float32) -> Any:
    """``id`` (int64 or string), ``embedding`` (fixed-size list of ``dtype``: float32, or int8 /
    uint8 for packed bits), maybe ``text``."""
    pa = require("pyarrow", "writing Parquet")
    fields = [
        pa.field("id", pa.int64() if id_kind == "int" else pa.string()),
        pa.field("embedding", pa.list_(pa.from_numpy_dtype(np.dtype(dtype)), dimension)),
    ]
    if keep_text:
        fields.append(pa.field("text", pa.string()))
    return pa.schema(fields)


def embedding_array(embeddings: npt.NDArray[Any]) -> Any:
    """A (rows, dim) array as an Arrow fixed-size list array of its dtype (no copy of the
    values)."""
    pa = require("pyarrow", "writing Parquet")
    dimension = embeddings.shape[1]
    values = pa.array(np.ascontiguousarray(embeddings).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(values, dimension)


def prepare_output(output: Path, manifest: dict[str, Any], resume: bool) -> set[int]:
    """Create OUTPUT (or check it for --resume); return the indexes of finished shards."""
    existing = [entry.name for entry in output.iterdir()] if output.is_dir() else []
    if output.exists() and not output.is_dir():
        raise ConfigError(f"{output}: exists and is not a directory")
    if existing and not resume:
        raise ConfigError(
            f"{output}: exists and is not empty; use --resume to continue that run, "
            "or choose a new output"
        )
    if existing:
        try:
            previous = json.loads((output / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{output}: not an embed-dataset output ({err})") from err
        changed = sorted(
            k for k in manifest.keys() | previous.keys() if manifest.get(k) != previous.get(k)
        )
        if changed:
            raise ConfigError(
                f"{output}: was written from other inputs or settings ({', '.join(changed)} "
                "differ); --resume needs the same ones, or choose a new output"
            )
        for name in existing:
            if name.startswith(".") and name.endswith(".tmp"):
                (output / name).unlink()  # left by a run that was killed mid-shard
        return {
            index
            for index in range(int(manifest["shards"]))
            if (output / shard_name(index)).is_file()
        }
    output.mkdir(parents=True, exist_ok=True)
    _atomic_write(output / MANIFEST, json.dumps(manifest, indent=1).encode())
    return set()


class ShardWriter:
    """One shard, written in row groups to a hidden temporary file and renamed into place by
    :meth:`commit`; if the block ends without a commit the temporary file is removed. The file
    is created on entering the block, not before, so that an interruption (Ctrl-C) at any point
    leaves no temporary file behind."""

    def __init__(self, output: Path, index: int, schema: Any) -> None:
        self.pq = require("pyarrow.parquet", "writing Parquet")
        self.pa = require("pyarrow", "writing Parquet")
        self.path = output / shard_name(index)
        self.temporary = output / f".{shard_name(index)}.tmp"
        self.schema = schema
        self.writer: Any = None
        self.rows = 0

    def write(
        self,
        ids: Sequence[int | str],
        embeddings: npt.NDArray[np.float32],
        texts: Sequence[str] | None,
    ) -> None:
        columns = [self.pa.array(ids, self.schema.field("id").type), embedding_array(embeddings)]
        if texts is not None:
            columns.append(self.pa.array(texts, self.pa.string()))
        self.writer.write_table(self.pa.Table.from_arrays(columns, schema=self.schema))
        self.rows += len(ids)

    def commit(self) -> None:
        self.writer.close()
        with open(self.temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(self.temporary, self.path)

    def __enter__(self) -> ShardWriter:
        try:
            self.writer = self.pq.ParquetWriter(self.temporary, self.schema)
        except BaseException:
            self._discard()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._discard()

    def _discard(self) -> None:
        """Close and remove the temporary file, if it is still there (no commit)."""
        if not self.temporary.exists():
            return
        try:
            if self.writer is not None:
                self.writer.close()
        finally:
            self.temporary.unlink(missing_ok=True)


def write_error_part(output: Path, index: int, errors: Iterable[RowError]) -> None:
    """The bad rows of chunk ``index``, atomically (rewriting it gives the same file)."""
    lines = "".join(json.dumps(error.to_json(), ensure_ascii=False) + "\n" for error in errors)
    path = output / ERRORS_DIR / f"part-{index:06d}.jsonl"
    if not lines:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(exist_ok=True)
    _atomic_write(path, lines.encode("utf-8"))


def collect_errors(output: Path) -> int:
    """Write ``OUTPUT.errors.jsonl`` from the parts, in row order; the number of bad rows."""
    parts = sorted((output / ERRORS_DIR).glob("part-*.jsonl"))
    target = errors_file(output)
    if not parts:
        target.unlink(missing_ok=True)
        return 0
    temporary = target.with_name(f".{target.name}.tmp")
    count = 0
    with open(temporary, "wb") as out:
        for part in parts:
            data = part.read_bytes()
            count += data.count(b"\n")
            out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, target)
    return count


def count_rows(output: Path) -> int:
    """Rows in the Parquet files of OUTPUT, from their footers."""
    pq = require("pyarrow.parquet", "reading Parquet")
    return sum(pq.ParquetFile(path).metadata.num_rows for path in output.glob("*.parquet"))
