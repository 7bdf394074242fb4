"""The GEMM comparison table of benches/gemm_crates, and numpy's sgemm from Python.

`benches/gemm_crates/run.sh` measures every library in one process, numpy's sgemm
included (its OpenBLAS library, called there as `numpy.matmul` calls it), and combines
the TSV files into markdown tables (best time over all files for each library, shape
and thread count; and oxiformer's ratio to numpy from the medians of the same rounds)::

    python benches/bench_gemm_numpy.py --combine all-*.tsv

Measure `numpy.matmul` itself, in a process of its own (a cross-check of the in-process
column: Python's call overhead included; thread count from OPENBLAS_NUM_THREADS, checked
with threadpoolctl)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
        python benches/bench_gemm_numpy.py > numpy-1t.tsv

Every linear shape is C = A @ W.T with A (M, K) and W (N, K) float32 row-major; the
attention shapes are per-head views of a fused QKV buffer (seq, 1152): Q @ K.T and P @ V.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from typing import Any, Callable

import numpy as np

HEADER = (
    "lib\tshape\tthreads\tm\tn\tk\tmin_s\tmedian_s\tgflops_best\tgflops_median"
    "\thash\trel_err\tsame_bits_1t"
)
LIBS = ["numpy", "oxiformer", "gemm", "matrixmultiply", "faer"]


def shapes() -> list[tuple[str, int, int, int, bool]]:
    """(name, m, n, k, single_only), in the order and with the names of gemm_crates."""
    out = []
    linear = [(1152, 384, "qkv"), (384, 384, "attn-out"), (1536, 384, "ffn-up")]
    linear.append((384, 1536, "ffn-down"))
    for m in (16, 128, 768, 4096):
        for n, k, what in linear:
            out.append((f"MiniLM {what} M={m} N={n} K={k}", m, n, k, False))
    base = [(2304, 768, "qkv"), (768, 768, "attn-out"), (3072, 768, "ffn-up")]
    base.append((768, 3072, "ffn-down"))
    for n, k, what in base:
        for m in (128, 4096):
            out.append((f"BERT-base {what} M={m} N={n} K={k}", m, n, k, False))
    out.append(("attn QK^T M=128 N=128 K=32", 128, 128, 32, True))
    out.append(("attn PV M=128 N=32 K=128", 128, 32, 128, True))
    return out


def operands(name: str, m: int, n: int, k: int) -> Callable[[np.ndarray], np.ndarray]:
    """A closure computing the product into `out`, with the layout of the Rust side."""
    rng = np.random.default_rng(m * 31 + n * 17 + k)
    if name.startswith("attn QK"):
        qkv = rng.uniform(-1, 1, size=(m, 1152)).astype(np.float32)
        q, key = qkv[:, 0:k], qkv[:, 384 : 384 + k]
        return lambda out: np.matmul(q, key.T, out=out)
    if name.startswith("attn PV"):
        probs = rng.uniform(-1, 1, size=(m, k)).astype(np.float32)
        qkv = rng.uniform(-1, 1, size=(k, 1152)).astype(np.float32)
        value = qkv[:, 768 : 768 + n]
        return lambda out: np.matmul(probs, value, out=out)
    a = rng.uniform(-1, 1, size=(m, k)).astype(np.float32)
    w = rng.uniform(-1, 1, size=(n, k)).astype(np.float32)
    return lambda out: np.matmul(a, w.T, out=out)


def blas_info() -> dict[str, Any]:
    from threadpoolctl import threadpool_info

    blas = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    if not blas:
        raise SystemExit("threadpoolctl finds no BLAS under numpy")
    return blas[0]


def measure(reps: int, min_ms: float) -> None:
    threads = int(os.environ.get("OPENBLAS_NUM_THREADS", "0") or 0)
    info = blas_info()
    print(
        f"numpy {np.__version__}: {info.get('internal_api')} {info.get('version')} "
        f"kernel={info.get('architecture')} threads={info.get('num_threads')} "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')} "
        f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE')}",
        file=sys.stderr,
    )
    if threads and info.get("num_threads") != threads:
        raise SystemExit(f"OpenBLAS runs {info.get('num_threads')} threads, not {threads}")
    threads = int(info["num_threads"])
    print(HEADER)
    for name, m, n, k, single_only in shapes():
        if single_only and threads != 1:
            continue
        run = operands(name, m, n, k)
        out = np.empty((m, n), dtype=np.float32)
        run(out)
        start = time.perf_counter()
        run(out)
        once = max(time.perf_counter() - start, 1e-7)
        iters = max(1, int(np.ceil(min_ms / 1e3 / once)))
        samples = []
        for _ in range(reps):
            start = time.perf_counter()
            for _ in range(iters):
                run(out)
            samples.append((time.perf_counter() - start) / iters)
        best, med = min(samples), statistics.median(samples)
        flops = 2.0 * m * n * k
        print(
            f"numpy\t{name}\t{threads}\t{m}\t{n}\t{k}\t{best:.6e}\t{med:.6e}"
            f"\t{flops / best / 1e9:.2f}\t{flops / med / 1e9:.2f}\t-\t-\t-"
        )
        sys.stdout.flush()
        print(f"{name:<44} numpy {threads}t best {flops / best / 1e9:7.2f} GFLOPS", file=sys.stderr)


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
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--min-ms", type=float, default=40.0)
    parser.add_argument("--combine", nargs="+", metavar="TSV")
    args = parser.parse_args()
    if args.combine:
        combine(args.combine)
    else:
        measure(args.reps, args.min_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
