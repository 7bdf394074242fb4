"""oxiformer's tokenizer vs HF ``tokenizers``, same vocabulary, settings and corpus.

The corpus is the multilingual Debian corpus of ``tests/corpus.py`` (fortunes and translated
man pages in 18 languages; the same per-package sample as the parity test, about 7.7 MB),
repeated to at least ``MIN_MB``. Both libraries run ``encode_batch`` on all lines
(bert-base-uncased, lowercasing, special tokens added, no padding) with 1 and 2 threads:
oxiformer through ``oxiformer.set_num_threads``, HF through ``TOKENIZERS_PARALLELISM``
(false: sequential) with ``RAYON_NUM_THREADS=2`` set before ``tokenizers`` is imported.
Best wall time of 3 runs each; also MB per CPU second (all threads of the process), the
steadier number for one thread on a shared machine.

    python benches/bench_tokenizer.py [--rounds 3] [--megabytes 5]
"""

from __future__ import annotations

import os

os.environ["RAYON_NUM_THREADS"] = "2"  # before tokenizers starts its rayon pool

import argparse
import time
from collections.abc import Callable
from typing import Any

import oxiformer
import tokenizers
from _common import SHARED, corpus, machine_header

VOCAB = SHARED / "vocabs" / "bert-base-uncased.txt"
PER_PACKAGE = 12_000


def bench_lines(min_mb: float) -> list[str]:
    lines: list[str] = []
    for package in corpus.PACKAGES:
        package_lines = corpus.package_lines(package)
        step = max(1, len(package_lines) // PER_PACKAGE)
        lines.extend(package_lines[::step][:PER_PACKAGE])
    if not lines:
        return []
    out = list(lines)
    while sum(len(line.encode()) for line in out) < min_mb * 1e6:
        out.extend(lines)
    return out


def encoders(threads: int) -> dict[str, Callable[[list[str]], Any]]:
    """Fresh tokenizers with `threads` threads each."""
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    oxiformer.set_num_threads(threads)
    ours = oxiformer.Tokenizer.from_vocab(VOCAB, lowercase=True)
    theirs = tokenizers.BertWordPieceTokenizer(str(VOCAB), lowercase=True)
    return {"oxiformer": ours.encode_batch, "hf-tokenizers": theirs.encode_batch}


def time_best(
    function: Callable[[list[str]], Any], lines: list[str], rounds: int
) -> tuple[float, float]:
    """Best wall time and best CPU time (all threads of the process) over ``rounds`` runs."""
    best_wall = best_cpu = float("inf")
    for _ in range(rounds):
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--megabytes", type=float, default=5.0, help="least text to encode")
    args = parser.parse_args()
    if not VOCAB.is_file():
        raise SystemExit(f"vocabulary {VOCAB} not found (the shared fixtures)")
    lines = bench_lines(args.megabytes)
    if not lines:
        raise SystemExit("corpus packages not installed: " + corpus.APT_INSTALL)
    megabytes = sum(len(line.encode()) for line in lines) / 1e6
    print(machine_header("1 and 2"))
    print(f"{len(lines)} lines, {megabytes:.1f} MB, best of {args.rounds}")
    results: dict[tuple[str, int], float] = {}
    for threads in (1, 2):
        for library, function in encoders(threads).items():
            wall, cpu = time_best(function, lines, args.rounds)
            results[(library, threads)] = megabytes / wall
            print(
                f"{library:14s} {threads} thread(s): {megabytes / wall:.2f} MB/s wall, "
                f"{megabytes / cpu:.2f} MB per CPU second"
            )
    print(table(results))


if __name__ == "__main__":
    main()
