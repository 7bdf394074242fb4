"""How exact oxiformer int8 is, against fp32 and against ONNX Runtime's dynamic int8, and
how large (its speed is timed by ``compare.py``, with the other engines).

Engines: oxiformer fp32; oxiformer int8 (the default scheme: int8 per-channel weights, 8-bit
per-token activations, 4 float32 outlier input channels per layer); oxiformer int8 without
outlier channels (the plain u8 x s8 scheme); ONNX Runtime fp32 on ``../shared/fixtures/minilm/
model.onnx`` and ``quantize_dynamic`` of it (per-channel and per-tensor int8 weights).

Prints two markdown tables:
- accuracy: min and mean cosine to fp32 per sentence (mean pooling, normalized) and per
  token, on the 36 golden texts (against PyTorch's fp32 output) and on ``--sentences`` real
  multilingual sentences (against oxiformer fp32, which equals the golden to 1e-5);
- size: weights on disk, and peak RSS of a fresh process that loads the model and runs one
  32x128 batch.

    python benches/bench_int8.py [--threads 2] [--sentences 1000]

Needs: onnxruntime, onnx, tokenizers; the corpus packages of ``tests/corpus.py``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    FIXTURES,
    hf_tokenizer,
    machine_header,
    minilm_dir,
    ort_int8_model,
    ort_pipeline,
    ort_session,
    peak_rss,
)

Array = Any


def cosines(a: Array, b: Array) -> Array:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a64 * b64, -1) / (np.linalg.norm(a64, axis=-1) * np.linalg.norm(b64, axis=-1))


def encoders(threads: int) -> dict[str, Any]:
    """The oxiformer engines: SentenceEncoder objects by name."""
    import oxiformer
    from oxiformer.quantize import QUANTIZABLE

    oxiformer.set_num_threads(threads)
    fp32 = oxiformer.SentenceEncoder.from_pretrained()
    no_outliers = dict.fromkeys(QUANTIZABLE, 0)
    return {
        "oxiformer fp32": fp32,
        "oxiformer int8": fp32.quantize(),
        "oxiformer int8, no outlier channels": fp32.quantize(outlier_channels=no_outliers),
    }


def accuracy_table(models: dict[str, Any], sessions: dict[str, Any], count: int) -> list[str]:
    import multilingual

    golden = dict(np.load(FIXTURES / "golden.npz"))
    golden_texts = json.loads((FIXTURES / "texts.json").read_text(encoding="utf-8"))
    sentences = multilingual.multilingual_sentences(count)
    hf = hf_tokenizer(minilm_dir())
    fp32 = models["oxiformer fp32"]
    mask = golden["attention_mask"]
    valid = mask.astype(bool)
    golden_feed = {
        "input_ids": golden["input_ids"],
        "attention_mask": mask,
        "token_type_ids": golden["token_type_ids"],
    }
    # Token vectors of the real sentences, in the padded batches ORT is fed.
    encodings = hf.encode_batch(sentences)

    def real_tokens(run: Callable[[dict[str, Array]], Array]) -> Array:
        out = []
        for start in range(0, len(encodings), 64):
            part = encodings[start : start + 64]
            ids = np.array([e.ids for e in part], np.int64)
            part_mask = np.array([e.attention_mask for e in part], np.int64)
            hidden = run({"input_ids": ids, "attention_mask": part_mask, "token_type_ids": 0 * ids})
            out.append(hidden[part_mask.astype(bool)])
        return np.concatenate(out)

    def ox(model: Any) -> Callable[[dict[str, Array]], Array]:
        return lambda feed: (
            model.encoder(feed["input_ids"], feed["attention_mask"]).last_hidden_state
        )

    reference_tokens = real_tokens(ox(fp32))
    reference_sentences = fp32.encode(sentences, batch_size=32)
    engines: dict[str, tuple[Callable[[dict[str, Array]], Array], Callable[[list[str]], Array]]]
    engines = {
        name: (ox(model), lambda texts, m=model: m.encode(texts, batch_size=32))
        for name, model in models.items()
    }
    for name, session in sessions.items():
        engines[name] = (
            lambda feed, s=session: s.run(None, feed)[0],
            lambda texts, s=session: ort_pipeline(s, hf, texts, 32),
        )
    lines = [
        f"| engine | golden texts: sentence min | token min | {len(sentences)} real sentences: "
        "sentence min / mean | token min / mean |",
        "|---|---|---|---|---|",
    ]
    for name, (tokens_of, sentences_of) in engines.items():
        tokens = tokens_of(golden_feed)
        token_cos = cosines(tokens[valid], golden["last_hidden_state"][valid])
        sentence_cos = cosines(sentences_of(golden_texts), golden["sentence_embedding"])
        real_sentence = cosines(sentences_of(sentences), reference_sentences)
        real_token = cosines(real_tokens(tokens_of), reference_tokens)
        lines.append(
            f"| {name} | {sentence_cos.min():.4f} | {token_cos.min():.4f} | "
            f"{real_sentence.min():.4f} / {real_sentence.mean():.5f} | "
            f"{real_token.min():.4f} / {real_token.mean():.5f} |"
        )
    return lines


PEAK_OXIFORMER = """
import sys, numpy as np, oxiformer
oxiformer.set_num_threads(int(sys.argv[2]))
e = oxiformer.Encoder.from_pretrained(sys.argv[1])
e(np.random.default_rng(0).integers(1000, 30000, (32, 128)))
"""
PEAK_ORT = """
import sys, numpy as np, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = int(sys.argv[2])
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
ids = np.random.default_rng(0).integers(1000, 30000, (32, 128))
s.run(None, {"input_ids": ids, "attention_mask": 1 + 0 * ids, "token_type_ids": 0 * ids})
"""


def size_table(ort_paths: dict[str, Path], threads: int, tmp: Path) -> list[str]:
    from oxiformer.convert import convert

    int8_dir = convert(minilm_dir(), tmp / "minilm-int8", dtype="int8")[1]
    rows = [
        ("oxiformer fp32", minilm_dir() / "model.safetensors", PEAK_OXIFORMER, minilm_dir()),
        ("oxiformer int8", int8_dir / "weights.npz", PEAK_OXIFORMER, int8_dir),
        ("ORT fp32", FIXTURES / "model.onnx", PEAK_ORT, FIXTURES / "model.onnx"),
        *[(name, path, PEAK_ORT, path) for name, path in ort_paths.items()],
    ]
    lines = ["| engine | weights on disk | peak RSS, load + one 32x128 batch |", "|---|---|---|"]
    for name, weights, code, target in rows:
        size = weights.stat().st_size / 2**20
        lines.append(
            f"| {name} | {size:.1f} MiB | {peak_rss(code, str(target), str(threads)):.0f} MiB |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=1000)
    args = parser.parse_args()

    models = encoders(args.threads)
    source = FIXTURES / "model.onnx"
    ort_paths = {
        "ORT int8 per-channel": ort_int8_model(source, per_channel=True),
        "ORT int8 per-tensor": ort_int8_model(source, per_channel=False),
    }
    sessions = {"ORT fp32": ort_session(source, args.threads)}
    sessions.update({name: ort_session(path, args.threads) for name, path in ort_paths.items()})
    print(machine_header(args.threads) + "\n")
    print("\n".join(accuracy_table(models, sessions, args.sentences)) + "\n")
    with tempfile.TemporaryDirectory() as tmp:
        print("\n".join(size_table(ort_paths, args.threads, Path(tmp))))


if __name__ == "__main__":
    main()
