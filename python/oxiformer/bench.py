"""``oxiformer bench``: oxiformer on this machine, and ONNX Runtime on the same model when it
is installed, each engine in its own process (the full peer comparison, with HF tokenizers and
ORT's int8, is ``benches/compare.py`` in the source tree).

Work: the encoder on batches of random ids (1x16, 1x128, 32x128) and ``sentences`` generated
sentences end to end (text in, sentence embeddings out, batches of 32). Every round starts one
fresh process per engine (``python -m oxiformer.bench --worker SPEC``), the order alternating
round by round, so neither engine's threads or caches touch the other's timings. A time is the
median over the rounds of each round's mean; ratio = ONNX Runtime time / oxiformer time
(above 1, oxiformer is faster).

ONNX Runtime needs an ONNX export of the model (``onnx``, else ``model.onnx`` or
``onnx/model.onnx`` in the model directory). Its sentence pipeline is what a user of ORT
writes: HF ``tokenizers`` when installed (else oxiformer's tokenizer), the model's pooling in
NumPy. Before any timing both engines run the same ids, and an ONNX file that does not compute
what the oxiformer model computes is refused.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer.errors import InputError, OxiformerError

__all__ = ["run_bench"]

_WORDS = [
    "the",
    "model",
    "reads",
    "every",
    "sentence",
    "and",
    "turns",
    "it",
    "into",
    "one",
    "vector",
    "that",
    "keeps",
    "its",
    "meaning",
    "across",
    "languages",
    "numbers",
    "dates",
    "and",
    "names",
    "while",
    "staying",
    "fast",
    "on",
    "a",
    "small",
    "laptop",
]

SHAPES = ((1, 16), (1, 128), (32, 128))
#: ``quick``: a smoke run (does it work, roughly how fast), not a measurement.
QUICK_SHAPES = ((1, 16), (1, 128), (4, 128))
ORT = "ONNX Runtime"
#: Largest max abs diff between the engines' outputs on the same ids: float32 engines agree
#: to about 1e-5; oxiformer int8 against ORT float32 to about 0.1. A different model is off
#: by about 1.
PARITY_LIMIT = {"float32": 1e-3, "int8": 0.5}
_CHECK_IDS = np.random.default_rng(7).integers(1000, 20000, size=(2, 16))


def _sentences(count: int, seed: int = 0) -> list[str]:
    """Deterministic sentences of 4 to 60 words."""
    rng = np.random.default_rng(seed)
    return [
        " ".join(rng.choice(_WORDS, size=int(rng.integers(4, 61)))).capitalize() + "."
        for _ in range(count)
    ]


def run_bench(
    model: str | None = None,
    sentences: int = 256,
    threads: int | None = None,
    quiet: bool = False,
    dtype: str | None = None,
    against: str = "auto",
    onnx: str | None = None,
    rounds: int = 3,
    plot: str | None = None,
    quick: bool = False,
    revision: str | None = None,
) -> str:
    """Time the engines (see the module docstring); a markdown table, and a bar chart in
    ``plot`` when given (needs matplotlib). ``quick``: smaller batches, fewer runs;
    ``revision``: of a model id ``model`` in the Hugging Face cache."""
    from oxiformer import get_num_threads, set_num_threads
    from oxiformer.pretrained import model_dir

    directory = model_dir(model, revision)
    if threads is not None:
        set_num_threads(threads)
    threads = get_num_threads()
    if plot is not None:
        _pyplot()  # before any timing: a missing matplotlib is an error at once
    onnx_path = _onnx_model(against, directory, onnx, quiet)
    engines = ["oxiformer"] + ([ORT] if onnx_path else [])
    spec = {
        "model": str(directory),
        "onnx": str(onnx_path) if onnx_path else None,
        "threads": threads,
        "dtype": dtype,
        "sentences": sentences,
        "quick": quick,
    }
    times: dict[str, list[dict[str, float]]] = {engine: [] for engine in engines}
    diff = None
    if onnx_path is not None:
        # Both engines on the same ids first: no timing of an ONNX file of another model.
        with tempfile.TemporaryDirectory() as scratch:
            outputs = {
                engine: Path(scratch) / f"{index}.npy" for index, engine in enumerate(engines)
            }
            for engine, output in outputs.items():
                _run_worker({**spec, "engine": engine, "check": output})
            diff = _parity(outputs, dtype or "float32")
    for index in range(rounds):
        for engine in engines if index % 2 == 0 else engines[::-1]:
            times[engine].append(_run_worker({**spec, "engine": engine, "check": None}))
        if not quiet and sys.stderr is not None and sys.stderr.isatty():
            print(f"oxiformer bench: round {index + 1} of {rounds} done", file=sys.stderr)
    rows = _rows(times, sentences, QUICK_SHAPES if quick else SHAPES)
    table = _table(rows, engines, threads, dtype, rounds, onnx_path, diff)
    if plot is not None:
        _plot(rows, engines, plot, threads, dtype)
    return table


# ---- the parent: what to run, then the table ---------------------------------------------------


def _onnx_model(against: str, directory: Path, onnx: str | None, quiet: bool) -> Path | None:
    """The ONNX file to time ONNX Runtime on, or None when ORT is not part of this run."""
    if against not in ("auto", "ort", "none"):
        raise InputError(f"--against must be auto, ort or none, got {against!r}")
    if against == "none":
        return None
    if importlib.util.find_spec("onnxruntime") is None:
        if against == "ort":
            raise InputError(
                "--against ort needs ONNX Runtime, which is not installed (pip install onnxruntime)"
            )
        return None
    candidates = (
        [Path(onnx)] if onnx else [directory / "model.onnx", directory / "onnx" / "model.onnx"]
    )
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        message = (
            f"no ONNX file for {directory} (looked for {', '.join(map(str, candidates))}): "
            "give one with --onnx FILE"
        )
        if against == "ort" or onnx:
            raise InputError(message)
        if not quiet:
            print(f"oxiformer bench: {message}; timing oxiformer alone", file=sys.stderr)
        return None
    return found


def _run_worker(spec: dict[str, Any]) -> dict[str, float]:
    """Run one engine in a fresh process: its timings (with ``check``, only its output on the
    check ids, saved there)."""
    document = json.dumps({**spec, "check": str(spec["check"]) if spec["check"] else None})
    result = subprocess.run(
        [sys.executable, "-m", "oxiformer.bench", "--worker", document],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or [f"exit status {result.returncode}"]
        raise OxiformerError(f"the {spec['engine']} process failed: {lines[-1]}")
    timings: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return timings


def _parity(outputs: dict[str, Path], dtype: str) -> float:
    ours, theirs = (np.load(outputs[engine]) for engine in ("oxiformer", ORT))
    if ours.shape != theirs.shape:
        raise InputError(
            f"the ONNX model's output has shape {theirs.shape}, oxiformer's {ours.shape}: "
            "is it an export of this model?"
        )
    diff = float(np.max(np.abs(ours.astype(np.float64) - theirs)))
    if not diff <= PARITY_LIMIT[dtype]:
        raise InputError(
            f"the ONNX model does not compute what this model computes (max abs diff {diff:.3g} "
            "on the same ids): is it an export of this model?"
        )
    return diff


def _rows(
    times: dict[str, list[dict[str, float]]], sentences: int, shapes: tuple[tuple[int, int], ...]
) -> list[dict[str, Any]]:
    works = [f"encoder {batch}x{seq}" for batch, seq in shapes]
    works.append(f"{sentences} sentences end to end")
    return [
        {
            "work": work,
            **{
                engine: statistics.median(run[work] for run in runs)
                for engine, runs in times.items()
            },
        }
        for work in works
    ]


def _duration(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _machine() -> str:
    """The CPU and the SIMD paths oxiformer runs on it (``oxiformer.simd_info()``)."""
    from oxiformer import simd_info

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith(("model name", "Model")):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    paths = simd_info()
    return f"CPU: {cpu}; oxiformer paths: fp32 {paths['fp32']}, int8 {paths['int8']}"


def _table(
    rows: list[dict[str, Any]],
    engines: list[str],
    threads: int,
    dtype: str | None,
    rounds: int,
    onnx: Path | None,
    diff: float | None,
) -> str:
    kind = "int8" if dtype == "int8" else "float32"
    header = (
        f"{_machine()}\nthreads: {threads}, dtype: {kind}, {rounds} round(s), each engine in "
        "its own process; median times"
    )
    if onnx is None:
        lines = [header, "", "| work | time | throughput |", "|---|---|---|"]
        for row in rows:
            rate = ""
            if row["work"].endswith("end to end"):
                count = int(row["work"].split()[0])
                rate = f"{count / row['oxiformer']:.0f} sentences/s"
            lines.append(f"| {row['work']} | {_duration(row['oxiformer'])} | {rate} |")
        return "\n".join(lines)
    import onnxruntime

    header += (
        f"; oxiformer {kind} vs ONNX Runtime {onnxruntime.__version__} float32 ({onnx}); "
        f"max abs diff on the same ids {diff:.1e}; ratio = ONNX Runtime time / oxiformer time "
        f"(> 1: oxiformer is faster); ORT's sentences tokenized with {_tokenizer_name()}"
    )
    lines = [header, "", "| work | oxiformer | ONNX Runtime | ratio |", "|---|---|---|---|"]
    for row in rows:
        ratio = row[ORT] / row["oxiformer"]
        lines.append(
            f"| {row['work']} | {_duration(row['oxiformer'])} | {_duration(row[ORT])} "
            f"| {ratio:.2f}x |"
        )
    return "\n".join(lines)


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as pyplot
    except ImportError:
        raise InputError(
            "--plot needs matplotlib, which is not installed: pip install 'oxiformer[plot]'"
        ) from None
    return pyplot


def _plot(
    rows: list[dict[str, Any]], engines: list[str], path: str, threads: int, dtype: str | None
) -> None:
    """The table as grouped bars (milliseconds, log scale), ratios written over ORT's bars."""
    from oxiformer._files import atomic_write

    pyplot = _pyplot()
    figure, axis = pyplot.subplots(figsize=(9, 4.5))
    width = 0.8 / len(engines)
    positions = np.arange(len(rows))
    for index, engine in enumerate(engines):
        millis = [row[engine] * 1e3 for row in rows]
        label = f"oxiformer {dtype or 'float32'}" if engine == "oxiformer" else f"{ORT} float32"
        bars = axis.bar(positions + index * width, millis, width, label=label)
        if engine == ORT:
            ratios = [f"{row[ORT] / row['oxiformer']:.2f}x" for row in rows]
            axis.bar_label(bars, labels=ratios, fontsize=8)
    axis.set_yscale("log")
    axis.set_ylabel("time (ms, log scale)")
    axis.set_xticks(positions + width * (len(engines) - 1) / 2)
    axis.set_xticklabels([row["work"] for row in rows], fontsize=8)
    axis.set_title(f"oxiformer bench, {threads} thread(s)", fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    suffix = Path(path).suffix.lstrip(".").lower() or "png"
    if suffix not in figure.canvas.get_supported_filetypes():
        raise InputError(f"--plot {path}: matplotlib cannot write .{suffix} files (use .png)")
    with atomic_write(path) as handle:
        figure.savefig(handle, format=suffix)
    pyplot.close(figure)


def _tokenizer_name() -> str:
    if importlib.util.find_spec("tokenizers") is None:
        return "oxiformer's tokenizer (HF tokenizers is not installed)"
    import tokenizers

    return f"HF tokenizers {tokenizers.__version__}"


# ---- the worker: one engine, in its own process -------------------------------------------------


class _Engine:
    """What the worker times: ``ids`` -> last hidden state, texts -> sentence embeddings."""

    encode_ids: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float32]]
    embed: Callable[[list[str]], Any]


def _oxiformer(spec: dict[str, Any]) -> _Engine:
    from oxiformer import set_num_threads
    from oxiformer.sentence import SentenceEncoder

    set_num_threads(spec["threads"])
    model = SentenceEncoder.from_pretrained(spec["model"], dtype=spec["dtype"])
    engine = _Engine()
    engine.encode_ids = lambda ids: model.encoder(ids).last_hidden_state
    engine.embed = lambda texts: model.encode(texts, batch_size=32)
    return engine


def _onnx_runtime(spec: dict[str, Any]) -> _Engine:
    import onnxruntime

    from oxiformer.pooling import normalize
    from oxiformer.sentence import SentenceEncoder

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = spec["threads"]
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        spec["onnx"], options, providers=["CPUExecutionProvider"]
    )
    names = {node.name for node in session.get_inputs()}
    # The pipeline's settings (pooling, normalization, maximum length) as oxiformer reads them.
    reference = SentenceEncoder.from_pretrained(spec["model"])
    tokenize = _hf_tokenizer(Path(spec["model"]), reference.max_seq_length)

    def encode_ids(ids: Any, mask: Any = None) -> Any:
        mask = np.ones_like(ids) if mask is None else mask
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return session.run(None, {name: value for name, value in feed.items() if name in names})[0]

    def embed(texts: list[str]) -> Any:
        out = []
        for start in range(0, len(texts), 32):
            ids, mask = tokenize(texts[start : start + 32])
            pooled = reference.pooling(encode_ids(ids, mask), mask)
            out.append(normalize(pooled) if reference.normalize else pooled)
        return np.concatenate(out)

    engine = _Engine()
    engine.encode_ids = encode_ids
    engine.embed = embed
    return engine


def _hf_tokenizer(directory: Path, max_length: int) -> Callable[[list[str]], tuple[Any, Any]]:
    """texts -> (ids, mask), padded to the longest: HF tokenizers if installed."""
    if (
        importlib.util.find_spec("tokenizers") is not None
        and (directory / "tokenizer.json").is_file()
    ):
        from tokenizers import Tokenizer as HFTokenizer

        tokenizer = HFTokenizer.from_file(str(directory / "tokenizer.json"))
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding()

        def hf(texts: list[str]) -> tuple[Any, Any]:
            encodings = tokenizer.encode_batch(texts)
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            return ids, np.array([e.attention_mask for e in encodings], dtype=np.int64)

        return hf
    from oxiformer.tokenizer import Tokenizer

    ours = Tokenizer.from_pretrained(directory)

    def fallback(texts: list[str]) -> tuple[Any, Any]:
        batch = ours(texts, padding=True, truncation=True, max_length=max_length)
        return batch["input_ids"], batch["attention_mask"]

    return fallback


def _worker(spec: dict[str, Any]) -> dict[str, float]:
    engine = _oxiformer(spec) if spec["engine"] == "oxiformer" else _onnx_runtime(spec)
    if spec["check"]:
        np.save(spec["check"], engine.encode_ids(_CHECK_IDS))
        return {}
    rng = np.random.default_rng(1)
    timings: dict[str, float] = {}
    for batch, seq in QUICK_SHAPES if spec["quick"] else SHAPES:
        ids = rng.integers(1000, 20000, size=(batch, seq))
        runs = 3 if batch > 1 or spec["quick"] else 20
        engine.encode_ids(ids)  # warm-up
        start = time.perf_counter()
        for _ in range(runs):
            engine.encode_ids(ids)
        timings[f"encoder {batch}x{seq}"] = (time.perf_counter() - start) / runs
    texts = _sentences(spec["sentences"])
    engine.embed(texts[:8])  # warm-up
    start = time.perf_counter()
    engine.embed(texts)
    timings[f"{spec['sentences']} sentences end to end"] = time.perf_counter() - start
    return timings


if __name__ == "__main__":
    if sys.argv[1:2] != ["--worker"] or len(sys.argv) != 3:
        raise SystemExit("usage: python -m oxiformer.bench --worker SPEC (run by oxiformer bench)")
    print(json.dumps(_worker(json.loads(sys.argv[2]))))
