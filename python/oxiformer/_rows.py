"""Reading one chunk of the plan: the texts to embed, their ids, and the bad rows.

A bad row (bytes that are not UTF-8, a null or non-string text, a missing column, a line
that is not JSON, an id of the wrong kind) is never dropped: it comes back as a
:class:`RowError` with its row number, id, file and reason, and the caller either stops on
it (``--on-error fail``) or lists it in the errors file (``--on-error skip``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oxiformer._inputs import Chunk, csv_header, records
from oxiformer._optional import require
from oxiformer.errors import InputError

__all__ = ["Batch", "RowError", "read_chunk"]


@dataclass(frozen=True)
class RowError:
    """One row that was not embedded, and why."""

    row: int
    id: int | str | None
    file: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"row": self.row, "id": self.id, "file": self.file, "error": self.reason}

    def to_exception(self) -> InputError:
        return InputError(
            f"{self.file}: row {self.row} (id {self.id!r}): {self.reason} "
            "(--on-error skip lists bad rows in an errors file instead)"
        )


@dataclass
class Batch:
    """Consecutive rows of one chunk: the good ones as (id, text), the bad ones as errors."""

    ids: list[int | str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids) + len(self.errors)


class _Rows:
    """Turns raw values into a :class:`Batch`, checking texts and ids."""

    def __init__(self, chunk: Chunk, column: str, id_column: str | None, id_kind: str) -> None:
        self.chunk = chunk
        self.column = column
        self.id_column = id_column
        self.id_type = int if id_kind == "int" else str
        self.batch = Batch()
        self.row = chunk.first_row

    def bad(self, reason: str, row_id: object = None) -> None:
        """A bad row; its id is the row number when there is no id column."""
        key: int | str | None = self.row
        if self.id_column is not None:
            key = row_id if isinstance(row_id, (int, str)) else None
        self.batch.errors.append(RowError(self.row, key, self.chunk.path, reason))
        self.row += 1

    def add(self, text: object, row_id: object = None, missing: str | None = None) -> None:
        """One row (``row_id``: the id column's value); ``missing`` names a column the row
        does not have."""
        if missing is not None:
            return self.bad(f"missing column {missing!r}", row_id)
        key: int | str = self.row
        if self.id_column is not None:
            if row_id is None:
                return self.bad(f"id column {self.id_column!r} is null")
            if isinstance(row_id, bool) or not isinstance(row_id, self.id_type):
                return self.bad(
                    f"id {row_id!r} is {type(row_id).__name__}, the dataset's ids are "
                    f"{self.id_type.__name__}",
                    row_id,
                )
            key = row_id
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as err:
                return self.bad(f"text is not UTF-8 ({err})", key)
        if text is None:
            return self.bad("text is null", key)
        if not isinstance(text, str):
            return self.bad(f"text is {type(text).__name__}, not str", key)
        self.batch.ids.append(key)
        self.batch.texts.append(text)
        self.row += 1
        return None

    def missing(self, present: Any) -> str | None:
        """The first of the id and text columns that ``present`` lacks."""
        wanted = (self.id_column, self.column)
        return next((name for name in wanted if name is not None and name not in present), None)

    def take(self) -> Batch:
        batch, self.batch = self.batch, Batch()
        return batch


def _text_lines(chunk: Chunk, rows: _Rows, size: int) -> Iterator[Batch]:
    with open(chunk.path, "rb") as handle:
        handle.seek(chunk.start)
        for _, record in records(handle, chunk.stop, quoted=False):
            line = record.removesuffix(b"\n").removesuffix(b"\r")
            if chunk.kind == "txt":
                rows.add(line)
            else:
                _json_row(line, rows)
            if len(rows.batch) == size:
                yield rows.take()
    yield rows.take()


def _json_row(line: bytes, rows: _Rows) -> None:
    try:
        value = json.loads(line)
    except UnicodeDecodeError as err:
        return rows.bad(f"line is not UTF-8 ({err})")
    except ValueError as err:
        return rows.bad(f"line is not JSON ({err})" if line.strip() else "empty line")
    if not isinstance(value, dict):
        return rows.bad(f"line is a JSON {type(value).__name__}, not an object")
    row_id = value.get(rows.id_column) if rows.id_column is not None else None
    return rows.add(value.get(rows.column), row_id, rows.missing(value))


def _csv_lines(chunk: Chunk, rows: _Rows, size: int) -> Iterator[Batch]:
    with open(chunk.path, "rb") as handle:
        header = csv_header(Path(chunk.path), handle)
        handle.seek(chunk.start)
        for _, record in records(handle, chunk.stop, quoted=True):
            _csv_row(record, header, rows)
            if len(rows.batch) == size:
                yield rows.take()
    yield rows.take()


def _csv_row(record: bytes, header: list[str], rows: _Rows) -> None:
    try:
        text = record.decode("utf-8")
    except UnicodeDecodeError as err:
        return rows.bad(f"row is not UTF-8 ({err})")
    try:
        parsed = list(csv.reader(io.StringIO(text)))
    except csv.Error as err:
        return rows.bad(f"row is not valid CSV ({err})")
    if len(parsed) != 1:
        return rows.bad("empty row" if not parsed else "row is not valid CSV (unbalanced quotes)")
    values = dict(zip(header, parsed[0]))
    row_id = values.get(rows.id_column) if rows.id_column is not None else None
    missing = rows.missing(values)
    if missing is None and len(parsed[0]) != len(header):
        return rows.bad(f"row has {len(parsed[0])} fields, the header {len(header)}", row_id)
    return rows.add(values.get(rows.column), row_id, missing)


def _parquet_rows(chunk: Chunk, rows: _Rows, size: int) -> Iterator[Batch]:
    pq = require("pyarrow.parquet", "reading Parquet input")
    columns = [rows.column] + ([rows.id_column] if rows.id_column is not None else [])
    parquet = pq.ParquetFile(chunk.path)
    groups: list[int] = []  # the row groups that hold the chunk (only those are read)
    position = offset = 0  # rows of the file before the first of them; before this group
    for index in range(parquet.metadata.num_row_groups):
        count = parquet.metadata.row_group(index).num_rows
        if offset + count > chunk.start and offset < chunk.stop:
            position = offset if not groups else position
            groups.append(index)
        offset += count
    for record_batch in parquet.iter_batches(batch_size=size, row_groups=groups, columns=columns):
        begin, end = position, position + record_batch.num_rows
        position = end
        first, last = max(begin, chunk.start), min(end, chunk.stop)
        if last <= first:
            continue
        part = record_batch.slice(first - begin, last - first)
        texts = part.column(rows.column).to_pylist()
        ids = part.column(rows.id_column).to_pylist() if rows.id_column else [None] * len(texts)
        for text, row_id in zip(texts, ids):
            rows.add(text, row_id)
        yield rows.take()


def read_chunk(
    chunk: Chunk, column: str, id_column: str | None, id_kind: str, batch_rows: int
) -> Iterator[Batch]:
    """The rows of ``chunk`` in batches of about ``batch_rows`` (every row exactly once)."""
    rows = _Rows(chunk, column, id_column, id_kind)
    if chunk.kind in ("txt", "jsonl"):
        batches = _text_lines(chunk, rows, batch_rows)
    elif chunk.kind == "csv":
        batches = _csv_lines(chunk, rows, batch_rows)
    else:
        batches = _parquet_rows(chunk, rows, batch_rows)
    seen = 0
    for batch in batches:
        seen += len(batch)
        if len(batch):
            yield batch
    if seen != chunk.rows:
        raise InputError(
            f"{chunk.path}: changed while it was read ({chunk.rows} rows planned from row "
            f"{chunk.file_row} of the file, {seen} read)"
        )
