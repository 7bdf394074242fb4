"""CPU time per call, one thread each, oxiformer vs ONNX Runtime (spinning off) on MiniLM.

On a shared 2-core box wall times swing with the neighbours' load and ORT's spinning thread
pool; CPU time of a single-threaded run is the steadier comparison of the kernels themselves.

    python benches/bench_cpu_time.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from compare import best_time

ONNX_PATH = Path(__file__).resolve().parents[1].parent / "shared/fixtures/minilm/model.onnx"
SHAPES = [(1, 1, 100), (1, 16, 100), (1, 128, 20), (32, 128, 2)]


def cpu_time(run: Callable[[], object], calls: int) -> float:
    """Best CPU seconds per call."""
    return best_time(run, calls, clock=time.process_time)


def main() -> None:
    import onnxruntime as ort
    import oxiformer
    from oxiformer.pretrained import default_model_dir

    oxiformer.set_num_threads(1)
    encoder = oxiformer.Encoder.from_pretrained(default_model_dir())
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(ONNX_PATH), options, providers=["CPUExecutionProvider"])
    print("| batch x seq | oxiformer CPU ms | ORT CPU ms | ORT / oxiformer |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    for batch, seq, calls in SHAPES:
        ids = rng.integers(1000, 30000, (batch, seq))
        mask = np.ones_like(ids)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        ours = cpu_time(lambda ids=ids, mask=mask: encoder(ids, mask), calls)
        peer = cpu_time(lambda feed=feed: session.run(None, feed), calls)
        print(f"| {batch}x{seq} | {ours * 1e3:.2f} | {peer * 1e3:.2f} | {peer / ours:.2f} |")


if __name__ == "__main__":
    main()
