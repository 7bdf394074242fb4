"""oxiformer vs ONNX Runtime at BERT-base dimensions, random weights, side by side in one run.

Generates random weights of BERT-base size (hidden 768, 12 layers, 12 heads, intermediate
3072, vocab 30522, 512 positions, 2 token types: about 440 MB) into a temporary directory
that is deleted at the end, as an oxiformer model directory (``config.json``, ``weights.npz``,
MiniLM's ``vocab.txt``); builds the ONNX graph of the same weights with ``onnx_bert.py``;
prints the max abs difference of the two engines' outputs, then their times at 1x128 and
32x128 with the same threads, and ratio = ORT time / oxiformer time (> 1: oxiformer faster).

    python benches/bench_bert_base.py [--threads 2] [--rounds 3] [--int8]

``--int8`` adds ORT dynamic int8 (``quantize_dynamic``, per-channel weights) of that graph
and oxiformer's int8 (``Encoder.quantize()``, default scheme); further oxiformer engines are
registered in ``OXIFORMER_ENGINES`` below, and are checked and timed next to fp32.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from compare import best_times, minilm_dir, ort_session
from onnx_bert import feed, save_model

Array = Any
Feed = dict[str, Array]
Runner = Callable[[Feed], Array]

BERT_BASE = {
    "architectures": ["BertModel"],
    "model_type": "bert",
    "vocab_size": 30522,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "position_embedding_type": "absolute",
    "pad_token_id": 0,
}
SHAPES = ((1, 128), (32, 128))
INIT_STD = 0.02  # HF BertPreTrainedModel._init_weights: normal(0, initializer_range)
PERTURBATION = 0.02  # biases, LayerNorm gamma - 1 and beta: small, so every parameter counts


def random_weights(config: Mapping[str, Any], seed: int = 0) -> dict[str, Array]:
    """HF-named float32 tensors initialized like HF (normal std 0.02, the padding row of the
    word embeddings zero), with biases and LayerNorm gamma / beta perturbed slightly."""
    rng = np.random.default_rng(seed)
    hidden, inner = config["hidden_size"], config["intermediate_size"]

    def normal(*shape: int, std: float = INIT_STD) -> Array:
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32)

    def norm(prefix: str) -> dict[str, Array]:
        gamma = 1.0 + normal(hidden, std=PERTURBATION)
        return {f"{prefix}.weight": gamma, f"{prefix}.bias": normal(hidden, std=PERTURBATION)}

    def dense(prefix: str, out_features: int, in_features: int) -> dict[str, Array]:
        return {
            f"{prefix}.weight": normal(out_features, in_features),
            f"{prefix}.bias": normal(out_features, std=PERTURBATION),
        }

    word = normal(config["vocab_size"], hidden)
    word[config["pad_token_id"]] = 0.0
    tensors = {
        "embeddings.word_embeddings.weight": word,
        "embeddings.position_embeddings.weight": normal(config["max_position_embeddings"], hidden),
        "embeddings.token_type_embeddings.weight": normal(config["type_vocab_size"], hidden),
        **norm("embeddings.LayerNorm"),
    }
    for index in range(config["num_hidden_layers"]):
        prefix = f"encoder.layer.{index}"
        for name in ("query", "key", "value"):
            tensors.update(dense(f"{prefix}.attention.self.{name}", hidden, hidden))
        tensors.update(dense(f"{prefix}.attention.output.dense", hidden, hidden))
        tensors.update(norm(f"{prefix}.attention.output.LayerNorm"))
        tensors.update(dense(f"{prefix}.intermediate.dense", inner, hidden))
        tensors.update(dense(f"{prefix}.output.dense", hidden, inner))
        tensors.update(norm(f"{prefix}.output.LayerNorm"))
    return tensors


def write_model_dir(
    directory: Path, config: Mapping[str, Any], tensors: Mapping[str, Array]
) -> Path:
    """An oxiformer model directory: config.json, weights.npz, MiniLM's tokenizer files."""
    from oxiformer.weights import save_npz

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(dict(config), indent=2) + "\n")
    save_npz(directory / "weights.npz", tensors)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if (minilm_dir() / name).is_file():
            shutil.copy(minilm_dir() / name, directory / name)
    return directory


def encoder_runner(encoder: Any) -> Runner:
    """A runner over anything called like ``oxiformer.Encoder``."""

    def run(inputs: Feed) -> Array:
        ids, mask, types = inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]
        return encoder(ids, mask, types).last_hidden_state

    return run


# oxiformer engines beyond fp32 (run with ``--int8``), each made from the loaded fp32
# ``oxiformer.Encoder``; this bench checks each against ORT fp32 and times it with the others.
OXIFORMER_ENGINES: list[tuple[str, Callable[[Any], Runner]]] = [
    ("oxiformer int8", lambda encoder: encoder_runner(encoder.quantize())),
]


def oxiformer_engines(encoder: Any, int8: bool) -> dict[str, Runner]:
    """fp32, then (with ``int8``) every engine of ``OXIFORMER_ENGINES``."""
    engines = {"oxiformer fp32": encoder_runner(encoder)}
    if int8:
        engines.update({name: make(encoder) for name, make in OXIFORMER_ENGINES})
    return engines


def session_runner(session: Any) -> Runner:
    def run(inputs: Feed) -> Array:
        return session.run(None, inputs)[0]

    return run


def ort_engines(onnx_path: Path, threads: int, int8: bool) -> dict[str, Runner]:
    """ORT fp32 on the graph, and (with ``int8``) its dynamic int8, per-channel weights."""
    engines = {"ORT fp32": session_runner(ort_session(onnx_path, threads))}
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = onnx_path.with_name("int8-per-channel.onnx")
        quantize_dynamic(
            str(onnx_path), str(quantized), per_channel=True, weight_type=QuantType.QInt8
        )
        engines["ORT int8 per-channel"] = session_runner(ort_session(quantized, threads))
    return engines


def parity_inputs(rng: np.random.Generator) -> Feed:
    """Two sequences of 128, the second padded after 77 tokens, token types 0 then 1."""
    ids = rng.integers(1000, 30000, (2, 128))
    mask = np.ones_like(ids)
    mask[1, 77:] = 0
    types = np.zeros_like(ids)
    types[:, 64:] = 1
    return feed(ids, mask, types)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds per engine")
    parser.add_argument("--int8", action="store_true", help="also time int8 engines")
    parser.add_argument("--layers", type=int, default=12, help="fewer layers for a quick try")
    args = parser.parse_args()
    config = {**BERT_BASE, "num_hidden_layers": args.layers}

    import oxiformer

    oxiformer.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="oxiformer-bert-base-") as tmp:
        model_dir = write_model_dir(Path(tmp) / "model", config, random_weights(config))
        size = (model_dir / "weights.npz").stat().st_size
        print(f"BERT-base dimensions ({args.layers} layers), random weights: {size / 1e6:.0f} MB")
        print(f"in {model_dir} (deleted at exit)")
        encoder = oxiformer.Encoder.from_pretrained(model_dir)
        onnx_path = save_model(encoder.config, encoder.state_dict(), Path(tmp) / "bert-base.onnx")
        engines = oxiformer_engines(encoder, args.int8)
        engines.update(ort_engines(onnx_path, args.threads, args.int8))

        rng = np.random.default_rng(0)
        check = parity_inputs(rng)
        reference = engines["ORT fp32"](check)
        for name, run in engines.items():
            if name != "ORT fp32":
                diff = float(np.abs(run(check) - reference).max())
                print(f"max abs diff {name} vs ORT fp32 (2x128, one row padded): {diff:.2e}")

        print(f"\nthreads: {args.threads}; best of {args.rounds} rounds, engines taking turns;")
        print("x = engine time / oxiformer fp32 time (> 1: oxiformer fp32 is faster)\n")
        print("| BERT-base | " + " | ".join(engines) + " |")
        print("|---|" + "---|" * len(engines))
        for batch, seq in SHAPES:
            inputs = feed(rng.integers(1000, 30000, (batch, seq)), np.ones((batch, seq)))
            runs = {name: lambda r=run, f=inputs: r(f) for name, run in engines.items()}
            times = best_times(runs, repeats=1 if batch > 1 else 5, rounds=args.rounds)
            base = times["oxiformer fp32"]
            cells = [f"{base * 1e3:.1f} ms"]
            cells += [
                f"{times[n] * 1e3:.1f} ms ({times[n] / base:.2f}x)" for n in list(engines)[1:]
            ]
            print(f"| {batch}x{seq} | " + " | ".join(cells) + " |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
