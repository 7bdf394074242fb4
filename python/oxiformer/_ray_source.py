"""The input of the Ray engine as a Ray Data datasource: one read task per chunk of the plan.

Ray's own ``read_text``/``read_json``/``read_csv`` cannot give what ``embed-dataset`` promises:
row numbers as ids (their rows carry no position), and bad rows reported one by one
(``read_text`` decodes a whole file at once, so one bad byte fails the file). Reading the
plan's chunks with :mod:`oxiformer._rows` gives both engines the same rows, ids and bad rows.
Imported only when Ray is installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from oxiformer import _shards
from oxiformer._inputs import Chunk, Plan
from oxiformer._rows import RowError, read_chunk

__all__ = ["ChunkSource"]

#: Rows per block a read task yields.
BLOCK_ROWS = 1024


def _read(
    chunk: Chunk, column: str, id_column: str | None, id_kind: str, skip_to: str | None
) -> Iterator[Any]:
    """The rows of one chunk as Arrow tables (``id``, ``text``). Bad rows stop the task
    (``skip_to`` None) or go to the chunk's errors part under ``skip_to``, written before the
    task ends: a retried task rewrites the same file, so every bad row is listed once."""
    schema = pa.schema(
        [
            pa.field("id", pa.int64() if id_kind == "int" else pa.string()),
            pa.field("text", pa.string()),
        ]
    )
    errors: list[RowError] = []
    yielded = False
    for batch in read_chunk(chunk, column, id_column, id_kind, BLOCK_ROWS):
        if batch.errors and skip_to is None:
            raise batch.errors[0].to_exception()
        errors.extend(batch.errors)
        if batch.ids:
            yielded = True
            yield pa.Table.from_arrays(
                [pa.array(batch.ids, schema.field("id").type), pa.array(batch.texts, pa.string())],
                schema=schema,
            )
    if skip_to is not None:
        _shards.write_error_part(Path(skip_to), chunk.index, errors)
    if not yielded:
        yield schema.empty_table()


class ChunkSource(Datasource):  # type: ignore[misc]
    """The plan's chunks, read where Ray schedules them (the files must be on storage every
    node sees, at the same path)."""

    def __init__(
        self, plan: Plan, column: str, id_column: str | None, errors_to: Path | None
    ) -> None:
        super().__init__()
        self.plan = plan
        self.column = column
        self.id_column = id_column
        self.errors_to = str(errors_to) if errors_to is not None else None

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(
        self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
    ) -> list[Any]:
        return [
            ReadTask(
                partial(
                    _read, chunk, self.column, self.id_column, self.plan.id_kind, self.errors_to
                ),
                BlockMetadata(
                    num_rows=chunk.rows, size_bytes=None, input_files=[chunk.path], exec_stats=None
                ),
            )
            for chunk in self.plan.chunks
        ]
