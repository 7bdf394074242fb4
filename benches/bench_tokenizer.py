"""oxiformer's tokenizer vs HF ``tokenizers``, same vocabulary, settings and corpus.

The corpus is the multilingual Debian corpus of ``tests/corpus.py`` (fortunes and translated
man pages in 18 languages; the same per-package sample as the parity test, about 7.7 MB),
repeated to at least ``MIN_MB``. Both libraries run ``encode_batch`` on all lines
(bert-base-uncased, lowercasing, special tokens added, no padding) with 1 and 2 threads:
oxiformer through ``oxiformer.set_num_threads``, HF through ``TOKENIZERS_PARALLELISM``
(false: sequential) with ``RAYON_NUM_THREADS=2`` set before ``tokenizers`` is imported.

    pytest benches/bench_tokenizer.py -s          # pytest-benchmark, then the table
    python benches/bench_tokenizer.py             # just the table
"""

from __future__ import annotations

import os

os.environ["RAYON_NUM_THREADS"] = "2"  # before tokenizers starts its rayon pool

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import corpus  # noqa: E402
import oxiformer  # noqa: E402

tokenizers = pytest.importorskip("tokenizers")

VOCAB = HERE.parent / ".." / "shared" / "fixtures" / "vocabs" / "bert-base-uncased.txt"
PER_PACKAGE = 12_000
MIN_MB = 5.0
ROUNDS = 3


def bench_lines() -> list[str]:
    lines: list[str] = []
    for package in corpus.PACKAGES:
        package_lines = corpus.package_lines(package)
        step = max(1, len(package_lines) // PER_PACKAGE)
        lines.extend(package_lines[::step][:PER_PACKAGE])
    if not lines:
        return []
    out = list(lines)
    while sum(len(line.encode()) for line in out) < MIN_MB * 1e6:
        out.extend(lines)
    return out


def encoders(threads: int) -> dict[str, Callable[[list[str]], Any]]:
    """Fresh tokenizers with `threads` threads each."""
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    oxiformer.set_num_threads(threads)
    ours = oxiformer.Tokenizer.from_vocab(VOCAB, lowercase=True)
    theirs = tokenizers.BertWordPieceTokenizer(str(VOCAB), lowercase=True)
    return {"oxiformer": ours.encode_batch, "hf-tokenizers": theirs.encode_batch}


def time_best(function: Callable[[list[str]], Any], lines: list[str]) -> tuple[float, float]:
    """Best wall time and best CPU time (all threads of the process) over ROUNDS runs.

    On a shared machine the CPU time of a 1-thread run is the steadier number.
    """
    best_wall = best_cpu = float("inf")
    for _ in range(ROUNDS):
        wall, cpu = time.perf_counter(), time.process_time()
        function(lines)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def table(results: dict[tuple[str, int], float]) -> str:
    rows = ["| threads | oxiformer MB/s | HF tokenizers MB/s | ratio |", "|---|---|---|---|"]
    for threads in sorted({threads for _, threads in results}):
        ours = results.get(("oxiformer", threads))
        theirs = results.get(("hf-tokenizers", threads))
        if ours is None or theirs is None:
            continue
        rows.append(f"| {threads} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f}x |")
    return "\n".join(rows)


RESULTS: dict[tuple[str, int], float] = {}


@pytest.fixture(scope="module")
def lines() -> Iterator[list[str]]:
    if not VOCAB.is_file():
        pytest.skip(f"vocabulary {VOCAB} not found")
    if corpus.missing_packages():
        pytest.skip("corpus packages not installed: " + corpus.APT_INSTALL)
    yield bench_lines()
    print("\n" + table(RESULTS))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("library", ["oxiformer", "hf-tokenizers"])
def test_encode_batch(benchmark: Any, lines: list[str], library: str, threads: int) -> None:
    function = encoders(threads)[library]
    megabytes = sum(len(line.encode()) for line in lines) / 1e6
    benchmark.group = f"encode_batch, {threads} thread(s), {megabytes:.1f} MB"
    result = benchmark.pedantic(function, args=(lines,), rounds=ROUNDS, iterations=1)
    assert len(result) == len(lines)
    RESULTS[(library, threads)] = megabytes / benchmark.stats.stats.min
    benchmark.extra_info["MB/s"] = RESULTS[(library, threads)]


def main() -> None:
    lines = bench_lines()
    if not lines:
        raise SystemExit("corpus packages not installed: " + corpus.APT_INSTALL)
    megabytes = sum(len(line.encode()) for line in lines) / 1e6
    print(f"{len(lines)} lines, {megabytes:.1f} MB")
    results: dict[tuple[str, int], float] = {}
    for threads in (1, 2):
        for library, function in encoders(threads).items():
            wall, cpu = time_best(function, lines)
            results[(library, threads)] = megabytes / wall
            print(
                f"{library:14s} {threads} thread(s): {megabytes / wall:.2f} MB/s wall, "
                f"{megabytes / cpu:.2f} MB per CPU second"
            )
    print(table(results))


if __name__ == "__main__":
    main()
