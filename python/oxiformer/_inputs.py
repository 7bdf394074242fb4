"""Input files of ``embed-dataset`` and the plan that cuts them into chunks.

A chunk is up to ``rows_per_shard`` consecutive rows of one file: the unit that becomes one
output shard (local engine) or one Ray read task. Planning scans the files once (records for
``.txt``/``.jsonl``/``.csv``, metadata for ``.parquet``) so that every chunk knows the global
number of its first row, the row ids when no id column is given, and where it starts in its
file. Both engines read the same chunks with :mod:`oxiformer._rows`, so they see the same
rows, the same ids and the same bad rows.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from oxiformer._optional import require
from oxiformer.errors import ConfigError, InputError

__all__ = ["FORMATS", "Chunk", "Plan", "csv_header", "input_files", "make_plan", "records"]

#: File name suffix -> format.
FORMATS = {".txt": "txt", ".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}

#: Id kinds: row numbers and integer ids are stored as int64, text ids as strings.
ID_KINDS = ("int", "str")


@dataclass(frozen=True)
class Chunk:
    """Rows ``[first_row, first_row + rows)`` of the whole input, all in ``path``.

    ``start``/``stop`` are byte offsets for text formats, row offsets in the file for Parquet;
    ``file_row`` is the number of the chunk's first row within its file (0-based)."""

    index: int
    path: str
    kind: str
    first_row: int
    rows: int
    start: int
    stop: int
    file_row: int


@dataclass(frozen=True)
class Plan:
    """Every chunk of the input, in order, and what the output's ``id`` column holds."""

    chunks: tuple[Chunk, ...]
    id_kind: str
    files: tuple[dict[str, Any], ...]

    @property
    def rows(self) -> int:
        return sum(chunk.rows for chunk in self.chunks)


def input_files(path: str | os.PathLike[str]) -> list[Path]:
    """``path`` itself, or the supported files under the directory ``path``, sorted."""
    root = Path(path)
    if root.is_file():
        if root.suffix.lower() not in FORMATS:
            raise ConfigError(f"{root}: unsupported input (use {', '.join(FORMATS)})")
        return [root]
    if not root.is_dir():
        raise ConfigError(f"{root}: no such file or directory")
    found = sorted(
        file
        for file in root.rglob("*")
        if file.is_file()
        and file.suffix.lower() in FORMATS
        and not any(part.startswith((".", "_")) for part in file.relative_to(root).parts)
    )
    if not found:
        raise ConfigError(f"{root}: no {', '.join(FORMATS)} files in this directory")
    return found


def records(handle: BinaryIO, stop: int, quoted: bool) -> Iterator[tuple[int, bytes]]:
    """(offset, record) from the handle's position up to byte ``stop``, line terminators
    included. ``quoted`` (CSV): a record ends at a newline outside double quotes, so a quoted
    field may span lines (RFC 4180; quotes inside a quoted field are doubled)."""
    position = handle.tell()
    while position < stop:
        record = handle.readline()
        if not record:
            return
        if quoted:
            while record.count(b'"') % 2:
                more = handle.readline()
                if not more:
                    break
                record += more
        yield position, record
        position += len(record)


def csv_header(path: Path, handle: BinaryIO) -> list[str]:
    first = next(records(handle, os.fstat(handle.fileno()).st_size, quoted=True), None)
    if first is None:
        return []
    try:
        rows = list(csv.reader(io.StringIO(first[1].decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path}: cannot read the CSV header ({err})") from err
    return rows[0] if rows else []


def _text_chunks(path: Path, kind: str, rows_per_chunk: int) -> Iterator[tuple[int, int, int]]:
    """(start, stop, rows) of each chunk of a text file, cut every ``rows_per_chunk`` records."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if kind == "csv":
            csv_header(path, handle)
        start, count = handle.tell(), 0
        for offset, _ in records(handle, size, quoted=kind == "csv"):
            if count == rows_per_chunk:
                yield start, offset, count
                start, count = offset, 0
            count += 1
        if count:
            yield start, size, count


def _parquet_chunks(path: Path, rows_per_chunk: int) -> Iterator[tuple[int, int, int]]:
    pq = require("pyarrow.parquet", "reading Parquet input")
    total = pq.ParquetFile(path).metadata.num_rows
    for start in range(0, total, rows_per_chunk):
        stop = min(total, start + rows_per_chunk)
        yield start, stop, stop - start


def _check_columns(path: Path, kind: str, column: str, id_column: str | None) -> str | None:
    """Check that a file can hold the columns; return the id kind it fixes, if any."""
    if kind == "txt":
        if id_column is not None:
            raise ConfigError(f"{path}: a .txt file has no columns, so no --id-column")
        return None
    if kind == "jsonl":
        return None  # checked row by row
    if kind == "csv":
        with open(path, "rb") as handle:
            header = csv_header(path, handle)
        names = header
        id_kind = "str"  # CSV has no types: its ids are the text of the field
    else:
        pa = require("pyarrow", "reading Parquet input")
        schema = require("pyarrow.parquet", "reading Parquet input").read_schema(path)
        names = list(schema.names)
        id_kind = None
        if id_column is not None and id_column in names:
            id_type = schema.field(id_column).type
            if pa.types.is_integer(id_type):
                id_kind = "int"
            elif pa.types.is_string(id_type) or pa.types.is_large_string(id_type):
                id_kind = "str"
            else:
                raise ConfigError(f"{path}: id column {id_column!r} is {id_type}, not int/str")
        if column in names:
            text_type = schema.field(column).type
            if not any(
                check(text_type)
                for check in (
                    pa.types.is_string,
                    pa.types.is_large_string,
                    pa.types.is_binary,
                    pa.types.is_large_binary,
                )
            ):
                raise ConfigError(f"{path}: text column {column!r} is {text_type}, not text")
    for wanted in (column, id_column):
        if wanted is not None and names and wanted not in names:
            raise ConfigError(f"{path}: no column {wanted!r} (columns: {', '.join(names)})")
    return id_kind


def _jsonl_id_kind(path: Path, id_column: str) -> str | None:
    """The kind of the first id found in a JSON-lines file (its other rows must match)."""
    with open(path, "rb") as handle:
        for line in handle:
            try:
                value = json.loads(line).get(id_column)
            except (ValueError, AttributeError):
                continue
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                return "int"
            if isinstance(value, str):
                return "str"
    return None


def make_plan(paths: list[Path], column: str, id_column: str | None, rows_per_chunk: int) -> Plan:
    """Scan ``paths`` and cut them into chunks of at most ``rows_per_chunk`` rows."""
    if rows_per_chunk < 1:
        raise ConfigError(f"rows per shard must be >= 1, got {rows_per_chunk}")
    id_kind = None if id_column is not None else "int"
    chunks: list[Chunk] = []
    files: list[dict[str, Any]] = []
    first_row = 0
    for path in paths:
        kind = FORMATS[path.suffix.lower()]
        file_kind = _check_columns(path, kind, column, id_column)
        if id_column is not None and file_kind is None and kind == "jsonl":
            file_kind = _jsonl_id_kind(path, id_column)
        if id_column is not None and file_kind is not None:
            if id_kind is not None and file_kind != id_kind:
                raise ConfigError(
                    f"{path}: its ids are {file_kind}, the ids before it are {id_kind}"
                )
            id_kind = file_kind
        parts = _parquet_chunks(path, rows_per_chunk) if kind == "parquet" else None
        file_row = 0
        for start, stop, rows in parts or _text_chunks(path, kind, rows_per_chunk):
            chunks.append(
                Chunk(len(chunks), str(path), kind, first_row, rows, start, stop, file_row)
            )
            first_row += rows
            file_row += rows
        stat = path.stat()
        files.append(
            {
                "path": str(path.resolve()),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "rows": file_row,
            }
        )
    return Plan(tuple(chunks), id_kind or "int", tuple(files))
