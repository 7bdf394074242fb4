"""oxiformer against its peers, side by side in one run: one markdown table (and a PNG bar
chart when matplotlib is installed).

Peers, all on the same thread count: ONNX Runtime fp32 on ``../shared/fixtures/minilm/
model.onnx``; ONNX Runtime dynamic int8 of it (``quantize_dynamic``, per-tensor and
per-channel weights); HF ``tokenizers`` + ONNX Runtime as the complete text-to-embedding
pipeline. Work: encoder batches 1x16, 1x128, 32x128; 1,000 real sentences of mixed length
end to end (text in, normalized embeddings out, batch size 32); cold start (a fresh process
that imports, loads the default model and embeds one sentence: wall time and peak RSS).
Accuracy: min cosine similarity per token and per sentence against the fp32 golden
(``golden.npz``, made with PyTorch + transformers).

    python benches/compare.py [--threads 2] [--sentences 1000] [--png compare.png]

Needs: onnxruntime, onnx (for quantization), tokenizers; the corpus packages of
``tests/corpus.py`` for the real sentences.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT.parent / "shared" / "fixtures" / "minilm"
sys.path.insert(0, str(ROOT / "tests"))

Array = Any
Row = dict[str, Any]


def minilm_dir() -> Path:
    from oxiformer.pretrained import default_model_dir

    return default_model_dir()


def best_time(
    run: Callable[[], object],
    repeats: int,
    rounds: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Best mean time per call over ``rounds`` rounds of ``repeats`` calls (after one
    warm-up), by ``clock`` (wall time by default; ``time.process_time`` for CPU time)."""
    run()
    best = float("inf")
    for _ in range(rounds):
        start = clock()
        for _ in range(repeats):
            run()
        best = min(best, (clock() - start) / repeats)
    return best


def best_times(
    runs: Mapping[str, Callable[[], object]], repeats: int, rounds: int = 3
) -> dict[str, float]:
    """:func:`best_time` of each run, taking turns round by round (order reversed every other
    round), so a change of load on a shared machine hits every engine alike."""
    best = dict.fromkeys(runs, float("inf"))
    names = list(runs)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            best[name] = min(best[name], best_time(runs[name], repeats, rounds=1))
    return best


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def quantized_models(directory: Path) -> dict[str, Path]:
    """ORT dynamic int8 of the shared model: per-tensor (the default) and per-channel."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    paths = {}
    for name, per_channel in (("int8 per-tensor", False), ("int8 per-channel", True)):
        out = directory / f"minilm-{'channel' if per_channel else 'tensor'}.onnx"
        if not out.exists():
            quantize_dynamic(
                str(FIXTURES / "model.onnx"),
                str(out),
                per_channel=per_channel,
                weight_type=QuantType.QInt8,
            )
        paths[f"ORT {name}"] = out
    return paths


def real_sentences(count: int) -> list[str]:
    """``count`` real sentences of several languages, 5 to 128 tokens, deterministic."""
    import corpus
    from oxiformer import Tokenizer

    lines = [line for line in corpus.corpus_lines() if len(line) >= 20]
    if not lines:
        raise SystemExit("no corpus: install the packages listed in tests/corpus.py")
    tokenizer = Tokenizer.from_pretrained(minilm_dir())
    picked: list[str] = []
    step = max(1, len(lines) // (count * 3))
    for line in lines[::step]:
        if 5 <= len(tokenizer.encode(line).ids) <= 128:
            picked.append(line)
        if len(picked) == count:
            break
    return picked


def ort_pipeline(session: Any, tokenizer: Any, texts: list[str], batch: int) -> Array:
    """HF tokenizers + ORT, as a user writes it: batches in input order, padded to the
    longest, mean pooling over the mask, L2 normalization."""
    out = []
    for start in range(0, len(texts), batch):
        encodings = tokenizer.encode_batch(texts[start : start + batch])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = session.run(None, feed)[0]
        summed = (hidden * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        out.append(summed / np.linalg.norm(summed, axis=1, keepdims=True))
    return np.concatenate(out)


def hf_tokenizer() -> Any:
    from tokenizers import Tokenizer as HFTokenizer

    tokenizer = HFTokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tokenizer.enable_truncation(256)
    tokenizer.enable_padding()
    return tokenizer


def min_cosines(tokens: Array, sentences: Array, golden: dict[str, Array]) -> tuple[float, float]:
    """(min token cosine, min sentence cosine) against the fp32 golden."""
    mask = golden["attention_mask"].astype(bool)
    want = golden["last_hidden_state"][mask]
    got = tokens[mask] if tokens.ndim == 3 else tokens
    token_cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    gold = golden["sentence_embedding"]
    sentence_cos = (sentences * gold).sum(1) / (
        np.linalg.norm(sentences, axis=1) * np.linalg.norm(gold, axis=1)
    )
    return float(token_cos.min()), float(sentence_cos.min())


COLD_OXIFORMER = (
    "import oxiformer; m = oxiformer.SentenceEncoder.from_pretrained(); m.encode('hello world')"
)
COLD_ORT = """
import sys, numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
t = Tokenizer.from_file(sys.argv[1])
s = ort.InferenceSession(sys.argv[2], providers=["CPUExecutionProvider"])
e = t.encode("hello world"); ids = np.array([e.ids], dtype=np.int64); m = np.ones_like(ids)
h = s.run(None, {"input_ids": ids, "attention_mask": m, "token_type_ids": np.zeros_like(ids)})[0]
v = h.mean(1); v / np.linalg.norm(v)
"""


# The child reports its own peak RSS (VmHWM starts afresh at exec, unlike ru_maxrss, which
# a forked child inherits from this large process).
REPORT_PEAK = (
    "\nprint([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
)


def cold_start(code: str, *args: str, runs: int = 3) -> tuple[float, float]:
    """(best wall seconds, peak RSS MiB) of a fresh ``python -c code`` process."""
    best, peak = float("inf"), 0.0
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-c", code + REPORT_PEAK, *args],
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"cold start failed: {result.stderr.strip()[-300:]}")
        peak_kib = float(result.stdout.split()[-1])
        best, peak = min(best, elapsed), max(peak, peak_kib / 1024)
    return best, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--png", default=None, help="write a bar chart (needs matplotlib)")
    args = parser.parse_args()

    import oxiformer

    oxiformer.set_num_threads(args.threads)
    golden = dict(np.load(FIXTURES / "golden.npz"))
    texts = json.loads((FIXTURES / "texts.json").read_text(encoding="utf-8"))
    model = oxiformer.SentenceEncoder.from_pretrained()
    sessions = {"ORT fp32": ort_session(FIXTURES / "model.onnx", args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in quantized_models(Path(tmp)).items():
            sessions[name] = ort_session(path, args.threads)

    rows: list[Row] = []
    rng = np.random.default_rng(0)
    ids_golden, mask_golden = golden["input_ids"], golden["attention_mask"]
    # Accuracy on the golden texts.
    feed = {
        "input_ids": ids_golden,
        "attention_mask": mask_golden,
        "token_type_ids": np.zeros_like(ids_golden),
    }
    ox_tokens = model.encoder(ids_golden, mask_golden).last_hidden_state
    accuracy = {"oxiformer fp32": min_cosines(ox_tokens, model.encode(texts), golden)}
    hf = hf_tokenizer()
    for name, session in sessions.items():
        tokens = session.run(None, feed)[0]
        accuracy[name] = min_cosines(tokens, ort_pipeline(session, hf, texts, 64), golden)

    for batch, seq in ((1, 16), (1, 128), (32, 128)):
        ids = rng.integers(1000, 30000, (batch, seq))
        mask = np.ones_like(ids)
        repeats = 3 if batch > 1 else 30
        run_feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        runs: dict[str, Callable[[], object]] = {
            "oxiformer fp32": lambda ids=ids, mask=mask: model.encoder(ids, mask)
        }
        for name, session in sessions.items():
            runs[name] = lambda s=session, f=run_feed: s.run(None, f)
        # Engines take turns, round by round, so a change of load hits them alike.
        row: Row = {"work": f"encoder {batch}x{seq}", **best_times(runs, repeats, rounds=5)}
        rows.append(row)

    sentences = real_sentences(args.sentences)
    row = {"work": f"{len(sentences)} real sentences, text -> embedding"}
    row["oxiformer fp32"] = best_time(lambda: model.encode(sentences, batch_size=32), 1, rounds=3)
    for name, session in sessions.items():
        row[name] = best_time(lambda s=session: ort_pipeline(s, hf, sentences, 32), 1, rounds=3)
    rows.append(row)

    cold: dict[str, tuple[float, float]] = {"oxiformer fp32": cold_start(COLD_OXIFORMER)}
    cold["ORT fp32"] = cold_start(
        COLD_ORT, str(minilm_dir() / "tokenizer.json"), str(FIXTURES / "model.onnx")
    )

    engines = ["oxiformer fp32", *sessions]
    lines = [
        f"threads: {args.threads}; times are the best of several rounds; "
        "x = peer time / oxiformer time (> 1: oxiformer is faster)",
        "",
        "| work | " + " | ".join(engines) + " |",
        "|---|" + "---|" * len(engines),
    ]
    for row in rows:
        base = row["oxiformer fp32"]
        cells = [f"{row['oxiformer fp32'] * 1e3:.1f} ms"]
        cells += [f"{row[name] * 1e3:.1f} ms ({row[name] / base:.2f}x)" for name in sessions]
        lines.append(f"| {row['work']} | " + " | ".join(cells) + " |")
    cold_cells = [
        f"{cold[name][0]:.2f} s, {cold[name][1]:.0f} MiB" if name in cold else "—"
        for name in engines
    ]
    lines.append(
        "| cold start (import, load, embed 1), peak RSS | " + " | ".join(cold_cells) + " |"
    )
    lines.append(
        "| min cosine to fp32 golden: token / sentence | "
        + " | ".join(f"{accuracy[n][0]:.4f} / {accuracy[n][1]:.4f}" for n in engines)
        + " |"
    )
    print("\n".join(lines))
    if args.png:
        plot(rows, engines, args.png)


def plot(rows: list[Row], engines: list[str], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib is not installed: no chart)", file=sys.stderr)
        return
    figure, axis = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(engines)
    for index, engine in enumerate(engines):
        speed = [row["oxiformer fp32"] / row[engine] for row in rows]
        axis.bar([i + index * width for i in range(len(rows))], speed, width, label=engine)
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))])
    axis.set_xticklabels([row["work"] for row in rows], fontsize=8)
    axis.set_ylabel("speed relative to oxiformer")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
