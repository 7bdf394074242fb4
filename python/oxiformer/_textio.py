"""Texts in and results out for the ``oxiformer`` command, as Unix tools do them.

Texts come from the arguments, from ``--file FILE``, or from stdin (``-`` as the only text,
``--file -``, or no texts at all while stdin is not a terminal), one per line. Input is read
as bytes and decoded line by line before any model is loaded, so invalid UTF-8 fails at once,
naming the line and the byte offset. Results go to stdout or to a file written atomically
(``oxiformer._files``): a failure leaves the previous file as it was.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from oxiformer._files import atomic_write, write_npy
from oxiformer.errors import InputError

__all__ = ["STDIN", "read_texts", "refuse_numpy_output", "write_array", "write_json_lines"]

#: The name that means stdin (or stdout), as in every Unix tool.
STDIN = "-"

_NUMPY_SUFFIXES = (".npy", ".npz")


def read_texts(texts: Sequence[str], file: str | None) -> list[str]:
    """The texts of a command: ``texts`` (the arguments), else ``file`` (``-``: stdin), else
    stdin when it is not a terminal. ``-`` as the only argument reads stdin too."""
    if file is not None and texts:
        raise InputError(
            "give texts either as arguments or with --file, not both "
            f"(--file {file} and {len(texts)} argument(s))"
        )
    if list(texts) == [STDIN] or file == STDIN:
        return _read_stdin()
    if STDIN in texts:
        raise InputError("'-' reads the texts from stdin: it cannot be mixed with texts")
    if texts:
        for index, text in enumerate(texts):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise InputError(
                    f"text argument {index + 1} is not valid UTF-8 (at character {err.start + 1})"
                ) from err
        return list(texts)
    if file is not None:
        try:
            with open(file, "rb") as handle:  # a FIFO is fine here: <(command) is one
                return read_lines(handle, file)
        except OSError as err:
            raise InputError(f"{file}: cannot read texts ({err.strerror or err})") from err
    if sys.stdin is None or sys.stdin.isatty():
        raise InputError("no input: give texts as arguments, --file FILE, or lines on stdin")
    return _read_stdin()


def _read_stdin() -> list[str]:
    if sys.stdin is None:
        raise InputError("no input: stdin is closed")
    return read_lines(sys.stdin.buffer, "stdin")


def read_lines(stream: BinaryIO, name: str) -> list[str]:
    """The lines of ``stream`` without their line ends; a line that is not UTF-8 raises an
    ``InputError`` naming ``name``, the line and the byte offset in the stream."""
    lines: list[str] = []
    offset = 0
    for number, raw in enumerate(stream, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            bad = raw[err.start : err.end].hex(" ")
            raise InputError(
                f"{name}: line {number} is not valid UTF-8 (bytes {bad} at byte offset "
                f"{offset + err.start} of the input, column {err.start + 1} of the line)"
            ) from err
        lines.append(text.rstrip("\r\n"))
        offset += len(raw)
    return lines


def refuse_numpy_output(command: str, output: str | None) -> None:
    """A command that writes JSON lines refuses an output named like a NumPy file."""
    if output is not None and Path(output).suffix.lower() in _NUMPY_SUFFIXES:
        raise InputError(
            f"{command} writes JSON lines, not NumPy arrays: give -o a name such as "
            f"{Path(output).with_suffix('.jsonl').name}, or no -o for stdout"
        )


def write_json_lines(rows: Iterable[Any], output: str | None) -> None:
    """One JSON document a line, to stdout (``output`` None or ``-``) or to ``output``."""
    if output in (None, STDIN):
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    with atomic_write(output, text=True) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_array(output: str, array: npt.NDArray[Any]) -> None:
    """``array`` as a ``.npy`` file at ``output``."""
    with atomic_write(output) as handle:
        write_npy(handle, np.asarray(array))
