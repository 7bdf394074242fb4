#!/usr/bin/env bash
# Build the comparison (default RUSTFLAGS: the crates pick AVX2/FMA/AVX-512 at run time),
# then alternate the Rust crates and numpy, 1 and 2 threads, REPS times, and print the table
# of this run (its files in results/ carry its process id).
# Usage: benches/gemm_crates/run.sh [REPS]   (python with numpy + threadpoolctl on PATH)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
reps="${1:-3}"
out="${RESULTS_DIR:-$here/results}"
mkdir -p "$out"
cargo build --release --manifest-path "$here/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$here/target}/release/gemm-compare"
for rep in $(seq 1 "$reps"); do
  for t in 1 2; do
    "$bin" --threads "$t" > "$out/rust-${t}t-$$-$rep.tsv"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS="$t" \
      python "$here/../bench_gemm_numpy.py" > "$out/numpy-${t}t-$$-$rep.tsv"
  done
done
python "$here/../bench_gemm_numpy.py" --combine "$out"/*-$$-*.tsv
