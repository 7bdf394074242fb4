#!/usr/bin/env bash
# Build the comparison (default RUSTFLAGS: the crates pick AVX2/FMA/AVX-512 at run time),
# then run every library in one process per thread count (1 and 2), round-robin: the Rust
# crates, oxiformer's kernel and numpy's sgemm (the OpenBLAS library in numpy's wheel, loaded
# by the binary, with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset). REPS processes per
# thread count (default 1; each already takes 7 rounds); prints the table of this run (its
# files in results/ carry its process id).
# Usage: benches/gemm_crates/run.sh [REPS]   (python with numpy >= 2 on PATH)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
reps="${1:-1}"
out="${RESULTS_DIR:-$here/results}"
mkdir -p "$out"
openblas="$(python -c 'import glob, os, numpy
print(min(glob.glob(os.path.dirname(numpy.__file__) + ".libs/libscipy_openblas*.so*"), default=""))')"
if [ -z "$openblas" ]; then
  echo "numpy's OpenBLAS (numpy.libs/libscipy_openblas*.so, numpy >= 2 wheels) not found" >&2
  exit 1
fi
cargo build --release --manifest-path "$here/Cargo.toml"
bin="${CARGO_TARGET_DIR:-$here/target}/release/gemm-compare"
for rep in $(seq 1 "$reps"); do
  for t in 1 2; do
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
      "$bin" --threads "$t" --openblas "$openblas" > "$out/all-${t}t-$$-$rep.tsv"
  done
done
python "$here/tables.py" "$out"/*-$$-*.tsv
