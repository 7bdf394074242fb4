"""Peak memory of one encoder forward pass (MiniLM 32x128 by default), next to the budget of
issue 6: one copy of the weights + 1.5x the activations a layer needs.

Each engine runs in a fresh process that reports its own ``/proc/self/status`` (VmHWM: peak
RSS; VmRSS, RssAnon, RssFile) after import, after loading the model and after the forward
pass; VmHWM is restarted after loading, so the peaks of load and forward show apart. ONNX
Runtime fp32 is measured the same way, for comparison: on the shared MiniLM export for the
default model, else on a graph built by ``_onnx_bert.py`` from the same weights.

    python benches/bench_memory.py [--model DIR] [--batch 32] [--seq 128] [--threads 2]

Budget, over the RSS after import (python + numpy + the engine's extension):
- weights: the model's float32 parameters, once. A memory-mapped weights file and a
  prepacked copy of it count as two, so the table also shows the file's size and the RSS
  that loading adds (anonymous memory, and file pages still mapped).
- activations of one layer on B*T tokens (H hidden, I intermediate): qkv 3H, context H,
  attention output H, intermediate I, hidden H, plus the attention scores as
  ``rust/attention.rs`` materialises them: one (T, T) buffer per worker thread, reused for
  every (sequence, head) it computes.
It fits when peak RSS - RSS after import <= weights + 1.5 x activations.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from _common import FIXTURES, machine_header, minilm_dir

MIB = 1024 * 1024
STATUS_FIELDS = ("VmHWM", "VmRSS", "RssAnon", "RssFile")
ACTIVATION_SLACK = 1.5
ENGINES = ("oxiformer", "ORT fp32")


def status() -> dict[str, int]:
    """This process's memory counters from ``/proc/self/status``, in bytes."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as file:
        for line in file:
            name, _, rest = line.partition(":")
            if name in STATUS_FIELDS:
                values[name] = int(rest.split()[0]) * 1024  # reported in kB
    return values


def reset_peak() -> bool:
    """Restart VmHWM from the current RSS (Linux >= 4.0), so the next phase's peak shows."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as file:
            file.write("5")
    except OSError:
        return False
    return True


def child(engine: str, model: Path, onnx_path: Path | None, args: argparse.Namespace) -> None:
    """Runs in the fresh process: import, load, one forward; prints the counters as JSON."""
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 30000, (args.batch, args.seq), dtype=np.int64)
    mask = np.ones_like(ids)
    phases: dict[str, dict[str, int]] = {}
    if engine == "oxiformer":
        import oxiformer
        import oxiformer._core  # the extension is part of the baseline

        oxiformer.set_num_threads(args.threads)
        phases["import"] = status()
        encoder = oxiformer.Encoder.from_pretrained(model)
        phases["load"] = status()
        phases["load"]["peak_reset"] = reset_peak()
        out = encoder(ids, mask).last_hidden_state
    else:
        import onnxruntime as ort

        phases["import"] = status()
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        phases["load"] = status()
        phases["load"]["peak_reset"] = reset_peak()
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        out = session.run(None, feed)[0]
    phases["forward"] = status()
    del out
    print(json.dumps(phases))


def measure(engine: str, model: Path, onnx_path: Path | None, args: argparse.Namespace) -> Any:
    command = [sys.executable, __file__, "--child", engine, "--model", str(model)]
    command += ["--batch", str(args.batch), "--seq", str(args.seq)]
    command += ["--threads", str(args.threads)]
    command += ["--onnx", str(onnx_path)] if onnx_path else []
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{engine} run failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout.splitlines()[-1])


def weights_file_bytes(model: Path) -> int:
    from oxiformer.weights import find_weights

    path = find_weights(model)
    files = sorted(path.glob("*.npy")) if path.is_dir() else [path]
    return sum(file.stat().st_size for file in files)


def activation_bytes(config: Mapping[str, Any], batch: int, seq: int, threads: int) -> int:
    """float32 bytes of one layer's activations (see the module docstring)."""
    hidden, inner = int(config["hidden_size"]), int(config["intermediate_size"])
    tokens = batch * seq
    per_token = 3 * hidden + hidden + hidden + inner + hidden  # qkv, context, attn out, I, hidden
    scores = min(threads, batch * int(config["num_attention_heads"])) * seq * seq
    return 4 * (tokens * per_token + scores)


def onnx_graph(model: Path, config: Mapping[str, Any], tensors: Any, directory: Path) -> Path:
    """The shared export for the default model, else a graph built from the weights."""
    shared = FIXTURES / "model.onnx"
    if model.resolve() == minilm_dir().resolve() and shared.is_file():
        return shared
    from _onnx_bert import save_model

    return save_model(config, tensors, directory / "model.onnx")


def mib(value: float) -> str:
    return f"{value / MIB:.0f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model dir (default: MiniLM)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-ort", action="store_true", help="measure oxiformer only")
    parser.add_argument("--onnx", type=Path, default=None, help="ONNX graph for ORT")
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    model = args.model or minilm_dir()
    if args.child:
        child(args.child, model, args.onnx, args)
        return 0

    import oxiformer

    encoder = oxiformer.Encoder.from_pretrained(model)
    tensors = encoder.state_dict()
    weights = sum(int(array.nbytes) for array in tensors.values())
    activations = activation_bytes(encoder.config, args.batch, args.seq, args.threads)
    budget = weights + ACTIVATION_SLACK * activations
    with tempfile.TemporaryDirectory() as tmp:
        engines = ["oxiformer"] if args.no_ort else list(ENGINES)
        onnx_path = args.onnx
        if "ORT fp32" in engines and onnx_path is None:
            onnx_path = onnx_graph(model, encoder.config, tensors, Path(tmp))
        del encoder, tensors
        results = {engine: measure(engine, model, onnx_path, args) for engine in engines}

    print(machine_header(args.threads))
    print(f"model {model}: {args.batch}x{args.seq} forward, {args.threads} threads")
    print(f"weights: {mib(weights)} float32 parameters; file {mib(weights_file_bytes(model))}")
    print(f"activations of one layer: {mib(activations)}; budget = weights + 1.5 x activations")
    print(f"  = {mib(budget)} over the RSS after import\n")
    print("| " + " | ".join(["", *engines]) + " |")
    print("|---|" + "---|" * len(engines))

    def row(label: str, cell: Any) -> None:
        print(f"| {label} | " + " | ".join(cell(results[engine]) for engine in engines) + " |")

    def load_adds(r: Any, field: str) -> str:
        return mib(r["load"][field] - r["import"][field])

    row("peak RSS (VmHWM)", lambda r: mib(peak(r)))
    row("baseline: RSS after import", lambda r: mib(r["import"]["VmRSS"]))
    row("peak RSS during load", lambda r: mib(r["load"]["VmHWM"]))
    row(
        "RSS load adds: anonymous / file-mapped",
        lambda r: " / ".join(load_adds(r, field) for field in ("RssAnon", "RssFile")),
    )
    row("peak RSS during forward", lambda r: mib(r["forward"]["VmHWM"]))
    row("forward peak - RSS after load", lambda r: mib(r["forward"]["VmHWM"] - r["load"]["VmRSS"]))
    row("peak - baseline", lambda r: mib(peak(r) - r["import"]["VmRSS"]))
    row("budget", lambda r: mib(budget))
    row("fits", lambda r: fits(r, budget))
    if not all(result["load"]["peak_reset"] for result in results.values()):
        print("\n(the kernel refused to restart VmHWM: the forward peak includes the load's)")
    return 0


def peak(result: Mapping[str, Any]) -> int:
    """The whole run's peak RSS (VmHWM restarts after loading when the kernel allows it)."""
    return max(result["load"]["VmHWM"], result["forward"]["VmHWM"])


def fits(result: Mapping[str, Any], budget: float) -> str:
    over = peak(result) - result["import"]["VmRSS"] - budget
    return "yes" if over <= 0 else f"no, {mib(over)} over"


if __name__ == "__main__":
    sys.exit(main())
