"""The tables of ``run.sh``: the TSV files of ``gemm-compare`` (one per thread count and
process) as markdown, GFLOPS of each library's best time per shape and thread count, the
ratio to numpy's sgemm, and oxiformer's ratio from the medians of the same rounds.

    python benches/gemm_crates/tables.py results/all-*.tsv

Every linear shape is C = A @ W.T with A (M, K) and W (N, K) float32 row-major; the
attention shapes are per-head views of a fused QKV buffer (seq, 1152): Q @ K.T and P @ V.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine_header

LIBS = ["numpy", "oxiformer", "gemm", "matrixmultiply", "faer"]


def combine(paths: list[str]) -> None:
    best: dict[tuple[str, str, int], float] = {}
    hashes: dict[tuple[str, str], set[str]] = defaultdict(set)
    same_bits: dict[tuple[str, str], set[str]] = defaultdict(set)
    dims: dict[str, tuple[int, int, int]] = {}
    order: list[str] = []
    medians: dict[tuple[str, str, str, int], float] = {}
    for path in paths:
        with open(path) as handle:
            for line in handle:
                fields = line.rstrip("\n").split("\t")
                if len(fields) != 13 or fields[0] == "lib":
                    continue
                lib, shape, threads = fields[0], fields[1], int(fields[2])
                m, n, k = int(fields[3]), int(fields[4]), int(fields[5])
                dims[shape] = (m, n, k)
                if shape not in order:
                    order.append(shape)
                key = (lib, shape, threads)
                best[key] = min(best.get(key, float("inf")), float(fields[6]))
                medians[(path, lib, shape, threads)] = float(fields[7])
                if fields[10] != "-":
                    hashes[(lib, shape)].add(fields[10])
                if fields[12] != "-":
                    same_bits[(lib, shape)].add(fields[12])
    for threads in (1, 2):
        rows = [s for s in order if ("numpy", s, threads) in best]
        if not rows:
            continue
        print(f"\n### {threads} thread{'s' if threads > 1 else ''}: GFLOPS (ratio to numpy)\n")
        print("| shape | " + " | ".join(LIBS) + " | oxiformer, ratio of medians |")
        print("| --- |" + " ---: |" * (len(LIBS) + 1))
        for shape in rows:
            m, n, k = dims[shape]
            flops = 2.0 * m * n * k
            ref = flops / best[("numpy", shape, threads)] / 1e9
            cells = [f"{ref:.1f}"]
            for lib in LIBS[1:]:
                seconds = best.get((lib, shape, threads))
                if seconds is None:
                    cells.append("-")
                    continue
                gflops = flops / seconds / 1e9
                cells.append(f"{gflops:.1f} ({gflops / ref:.2f})")
            # numpy's median over oxiformer's, each file's rounds (in one process).
            ratios = []
            for path in paths:
                numpy_median = medians.get((path, "numpy", shape, threads))
                ours = medians.get((path, "oxiformer", shape, threads))
                if numpy_median and ours:
                    ratios.append(numpy_median / ours)
            cells.append(f"{statistics.median(ratios):.2f}" if ratios else "-")
            print(f"| {shape} | " + " | ".join(cells) + " |")
    print("\n### Bitwise: 1 vs 2 threads\n")
    for lib in LIBS[1:]:
        across = [s for s in order if len(hashes.get((lib, s), ())) > 1]
        inproc = sorted({v for s in order for v in same_bits.get((lib, s), ())})
        print(
            f"- {lib}: shapes whose output hash differs between runs/thread counts: "
            f"{len(across)}{' ' + str(across) if across else ''}; "
            f"in-process 1t==2t bitwise: {inproc or 'n/a'}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tsv", nargs="+", help="files written by gemm-compare")
    args = parser.parse_args()
    print(machine_header("1 and 2"))
    combine(args.tsv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
