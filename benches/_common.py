"""Helpers shared by the benchmark scripts (no script imports another): where things are, the
machine header every table starts with, real sentences, ONNX Runtime sessions and int8
models, peak RSS of a fresh process, and :class:`Turns`, which runs each engine in a process
of its own and lets the processes take turns round by round.

Why processes: ONNX Runtime's intra-op threads spin after each run and take a core from
whatever runs next in the same process (oxiformer 1x128 measured 34 ms right after an ORT call,
15 ms alone), and a machine whose speed drifts by 10-30% within minutes must hit every engine
alike. So each engine loads once in its own worker (``benches/_engine.py``); the driver asks
them in turn, round by round (order reversed every other round), for the best time of a few
calls; the result of an engine is the median over rounds of those bests.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENGINE_SCRIPT = Path(__file__).resolve().parent / "_engine.py"
sys.path.insert(0, str(ROOT / "tests"))

import corpus  # noqa: E402  (tests/ is on the path from here on: the corpus, the fixtures)
from fixtures_path import FIXTURES as SHARED  # noqa: E402

#: The MiniLM fixtures: ``model.onnx`` (the ONNX Runtime peer), ``golden.npz``, ``texts.json``.
FIXTURES = SHARED / "minilm"

Array = Any

#: The x86 SIMD flags that decide oxiformer's paths.
# x86 (`flags`), then aarch64 (`Features`: NEON, its dot product, int8 matrix multiply).
SIMD_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "asimd",
    "asimddp",
    "i8mm",
)


def minilm_dir() -> Path:
    from oxiformer.pretrained import default_model_dir

    return default_model_dir()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in SIMD_FLAGS if flag in present] or sorted(present)
    except OSError:
        pass
    return []


def simd_paths(python: str | None = None) -> str:
    """oxiformer's paths as ``oxiformer.simd_info()`` reports them (in ``python``, default
    this interpreter), as ``fp32=avx512 int8=avx512vnni``."""
    code = "import json, oxiformer; print(json.dumps(oxiformer.simd_info()))"
    result = subprocess.run(
        [python or sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return "unknown (this build has no simd_info)"
    info = json.loads(result.stdout)
    return " ".join(f"{key}={value}" for key, value in info.items() if isinstance(value, str))


def machine_header(threads: int | str, python: str | None = None) -> str:
    """One line naming the date, the CPU, its SIMD flags, oxiformer's paths and the threads
    (a count, or words such as ``"1 and 2"``)."""
    try:
        import onnxruntime

        ort = f"; onnxruntime {onnxruntime.__version__}"
    except ImportError:
        ort = ""
    return (
        f"{time.strftime('%Y-%m-%d')}; CPU: {cpu_name()}, {os.cpu_count()} cores, "
        f"SIMD flags: {' '.join(cpu_flags()) or 'none'}; oxiformer paths: "
        f"{simd_paths(python)}; {threads} threads{ort}"
    )


def real_sentences(count: int) -> list[str]:
    """``count`` real sentences of several languages, 5 to 128 MiniLM tokens, deterministic
    (from the corpus packages of ``tests/corpus.py``)."""
    from oxiformer import Tokenizer

    lines = [line for line in corpus.corpus_lines() if len(line) >= 20]
    if not lines:
        raise SystemExit(f"no corpus: install the packages with `{corpus.APT_INSTALL}`")
    tokenizer = Tokenizer.from_pretrained(minilm_dir())
    picked: list[str] = []
    step = max(1, len(lines) // (count * 3))
    for line in lines[::step]:
        if 5 <= len(tokenizer.encode(line).ids) <= 128:
            picked.append(line)
        if len(picked) == count:
            break
    return picked


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_int8_model(source: Path, per_channel: bool = True, directory: Path | None = None) -> Path:
    """ONNX Runtime's dynamic int8 of ``source`` (``quantize_dynamic``, int8 weights per channel
    or per tensor), written to ``directory``, or made once and kept in
    ``~/.cache/oxiformer-bench`` (for a file that stays, such as the shared export)."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    kind = "channel" if per_channel else "tensor"
    if directory is None:
        directory = Path.home() / ".cache" / "oxiformer-bench" / onnxruntime.__version__
        stamp = f"-{source.stat().st_size}-{int(source.stat().st_mtime)}"
    else:
        stamp = ""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{source.stem}{stamp}-int8-{kind}.onnx"
    if not out.exists():
        partial = out.with_suffix(".partial.onnx")
        quantize_dynamic(
            str(source), str(partial), per_channel=per_channel, weight_type=QuantType.QInt8
        )
        partial.rename(out)
    return out


def hf_tokenizer(model_dir: Path, max_length: int = 256) -> Any:
    from tokenizers import Tokenizer as HFTokenizer

    tokenizer = HFTokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    tokenizer.enable_padding()
    return tokenizer


def ort_pipeline(
    session: Any, tokenizer: Any, texts: Sequence[str], batch: int, by_length: bool = False
) -> Array:
    """HF tokenizers + ORT, as a user writes it: batches in input order, padded to the
    longest, mean pooling over the mask, L2 normalization.

    ``by_length``: the peer at its best. All texts are tokenized at once and batched by token
    count, longest first, so each batch pads the least it can; rows come back in input order.
    (sentence-transformers sorts by character count, which pads more than input order on
    multilingual text.)"""
    if by_length:
        return _ort_by_length(session, tokenizer, texts, batch)
    out = []
    for start in range(0, len(texts), batch):
        encodings = tokenizer.encode_batch(list(texts[start : start + batch]))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        out.append(_ort_pooled(session, ids, mask))
    return np.concatenate(out)


def _ort_by_length(session: Any, tokenizer: Any, texts: Sequence[str], batch: int) -> Array:
    encodings = tokenizer.encode_batch(list(texts))  # padded on the right to the longest
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    lengths = mask.sum(1)
    order = np.argsort(-lengths, kind="stable")
    rows = np.empty((len(texts), 0), dtype=np.float32)
    for start in range(0, len(texts), batch):
        chosen = order[start : start + batch]
        width = int(lengths[chosen].max())
        pooled = _ort_pooled(session, ids[chosen, :width], mask[chosen, :width])
        if rows.shape[1] == 0:
            rows = np.empty((len(texts), pooled.shape[1]), dtype=pooled.dtype)
        rows[chosen] = pooled
    return rows


def _ort_pooled(session: Any, ids: Array, mask: Array) -> Array:
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    hidden = session.run(None, feed)[0]
    summed = (hidden * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
    return summed / np.linalg.norm(summed, axis=1, keepdims=True)


# A child's own peak RSS (VmHWM starts afresh at exec, unlike ru_maxrss, which a forked child
# inherits from its parent).
REPORT_PEAK = (
    "\nprint([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
)


def peak_rss(code: str, *args: str) -> float:
    """Peak RSS (MiB) of a fresh ``python -c code *args``."""
    result = subprocess.run(
        [sys.executable, "-c", code + REPORT_PEAK, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"peak RSS run failed: {result.stderr.strip()[-300:]}")
    return float(result.stdout.split()[-1]) / 1024


@dataclass
class Engine:
    """One engine as ``benches/_engine.py`` builds it. ``kind``: ``oxiformer`` (``model``: a
    model directory, default MiniLM; ``dtype``: ``float32`` or ``int8``, quantized at load) or
    ``ort`` (``model``: an ``.onnx`` file; ``tokenizer``: the ``tokenizer.json`` for text work,
    default MiniLM's). ``python``: the interpreter that runs it (another build of oxiformer,
    for A/B runs); ``env``: extra environment (``OXIFORMER_SIMD``, say)."""

    kind: str
    model: str | None = None
    dtype: str = "float32"
    tokenizer: str | None = None
    python: str = sys.executable
    env: dict[str, str] = field(default_factory=dict)


class Turns:
    """Engines in processes of their own, asked in turn to time the same work."""

    def __init__(self, engines: Mapping[str, Engine], threads: int, pause: float = 0.3) -> None:
        self.pause = pause
        self.workers: dict[str, subprocess.Popen[str]] = {}
        for name, engine in engines.items():
            spec = {**engine.__dict__, "threads": threads}
            spec.pop("python"), spec.pop("env")
            self.workers[name] = subprocess.Popen(
                [engine.python, str(ENGINE_SCRIPT), json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**os.environ, **engine.env},
            )
        for name in self.workers:
            self._reply(name)  # "ready", once the model is loaded

    def _reply(self, name: str) -> dict[str, Any]:
        worker = self.workers[name]
        assert worker.stdout is not None
        line = worker.stdout.readline()
        if not line:
            raise SystemExit(f"engine {name!r} died (exit code {worker.wait()})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise SystemExit(f"engine {name!r}: {reply['error']}")
        return reply

    def ask(self, name: str, command: Mapping[str, Any]) -> dict[str, Any]:
        worker = self.workers[name]
        assert worker.stdin is not None
        try:
            worker.stdin.write(json.dumps(command) + "\n")
            worker.stdin.flush()
        except BrokenPipeError:
            raise SystemExit(f"engine {name!r} died (exit code {worker.wait()})") from None
        return self._reply(name)

    def rounds(self, command: Mapping[str, Any], rounds: int) -> dict[str, list[float]]:
        """Each engine's best time (seconds) per round: engines take turns, the order
        reversed every other round; a pause after each turn lets spinning threads settle."""
        names = list(self.workers)
        times: dict[str, list[float]] = {name: [] for name in names}
        for index in range(rounds):
            for name in names if index % 2 == 0 else names[::-1]:
                times[name].append(float(self.ask(name, command)["best"]))
                time.sleep(self.pause)
        return times

    def medians(self, command: Mapping[str, Any], rounds: int) -> dict[str, float]:
        return {
            name: statistics.median(best) for name, best in self.rounds(command, rounds).items()
        }

    def outputs(self, name: str, inputs: Mapping[str, Array], directory: Path) -> Array:
        """``last_hidden_state`` of engine ``name`` on ``inputs`` (``input_ids``,
        ``attention_mask``, ``token_type_ids``), passed through files in ``directory``."""
        source, result = directory / "inputs.npz", directory / "outputs.npy"
        np.savez(source, **inputs)
        self.ask(name, {"op": "outputs", "inputs": str(source), "output": str(result)})
        return np.load(result)

    def close(self) -> None:
        for name, worker in self.workers.items():
            if worker.poll() is None:
                self.ask(name, {"op": "quit"})
                worker.wait()

    def __enter__(self) -> Turns:
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.workers.values():
            if worker.poll() is None:
                worker.kill()
