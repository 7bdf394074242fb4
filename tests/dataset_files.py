"""Helpers of the ``embed-dataset`` tests: input files of every format, the output read back,
and the command run as a subprocess."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from helpers import FIXTURES

TINY_MODEL = FIXTURES / "tiny-bert" / "seqcls"


def sample_texts(count: int, one_line: bool = False) -> list[str]:
    """``count`` texts: the golden texts (CJK, emoji, the empty string, a long text, ...;
    ``one_line``: those without line breaks, for .txt) then numbered sentences."""
    golden = json.loads((FIXTURES / "minilm" / "texts.json").read_text(encoding="utf-8"))
    texts = [str(t) for t in golden if not (one_line and ("\n" in t or "\r" in t))][:count]
    texts += [f"Passage {i}: the corpus has {i % 7} more lines." for i in range(count - len(texts))]
    return texts


def write_input(path: Path, texts: Sequence[str], ids: Sequence[Any] | None = None) -> Path:
    """``texts`` (and ``ids`` as the ``key`` column) as a file of the format of ``path``."""
    keys = list(ids) if ids is not None else [f"k{i}" for i in range(len(texts))]
    kind = path.suffix
    if kind == ".txt":
        path.write_text("".join(text + "\n" for text in texts), encoding="utf-8")
    elif kind == ".jsonl":
        with open(path, "w", encoding="utf-8") as handle:
            for key, text in zip(keys, texts):
                handle.write(json.dumps({"key": key, "text": text}, ensure_ascii=False) + "\n")
    elif kind == ".csv":
        with open(path, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["key", "text"])
            writer.writerows(zip(keys, texts))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({"key": keys, "text": list(texts)})
        pq.write_table(table, path, row_group_size=7)
    return path


def read_output(output: Path) -> tuple[list[Any], npt.NDArray[np.float32], Any]:
    """(ids, embeddings (rows, dim), table) of an output dataset, sorted by id."""
    import pyarrow.parquet as pq

    table = pq.read_table(output).sort_by("id")
    ids = table.column("id").to_pylist()
    column = table.column("embedding").combine_chunks()
    dimension = column.type.list_size
    values = column.flatten().to_numpy().astype(np.float32, copy=False)
    return ids, values.reshape(len(ids), dimension), table


def same_bits(got: npt.NDArray[np.float32], expected: npt.NDArray[np.float32]) -> bool:
    diff = float(np.max(np.abs(got - expected))) if got.size and got.shape == expected.shape else 0
    print(f"shape {got.shape} vs {expected.shape}, max abs diff {diff:.3e}")
    return got.shape == expected.shape and got.tobytes() == expected.tobytes()


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oxiformer", "embed-dataset", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
