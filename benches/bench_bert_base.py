"""oxiformer against ONNX Runtime at BERT-base dimensions, random weights.

Writes random weights of BERT-base size (hidden 768, 12 layers, 12 heads, intermediate 3072,
vocab 30522, 512 positions, 2 token types: about 440 MB) to a temporary directory, deleted at
the end, as an oxiformer model directory (``config.json``, ``weights.npz``, MiniLM's
``vocab.txt``), and the ONNX graph of the same weights (``_onnx_bert.py``). Each engine runs
in a process of its own, taking turns round by round (``_common.Turns``); the table gives the
median over rounds of each round's best, and x = engine time / oxiformer fp32 time (> 1:
oxiformer fp32 is faster). First it prints each engine's max abs difference to ORT fp32 on
two sequences of 128 (one padded after 77 tokens, token types 0 then 1).

    python benches/bench_bert_base.py [--threads 2] [--rounds 3] [--int8] [--layers 12]
    python benches/bench_bert_base.py --check-graph     # is the ONNX peer a fair one?

``--int8`` adds oxiformer int8 (quantized at load, the default scheme) and ONNX Runtime's
``quantize_dynamic`` of the graph (int8 weights per channel). ``--check-graph`` builds the
graph from the MiniLM weights and compares it with the shared MiniLM export (made by
``torch.onnx.export``): outputs on the golden inputs (max abs diff <= 1e-4, else exit status
1), the ops ONNX Runtime runs after fusing, and speed (ratio = export time / graph time;
>= 0.90 is within 10%).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    FIXTURES,
    Engine,
    Turns,
    machine_header,
    minilm_dir,
    ort_int8_model,
)
from _onnx_bert import fused_ops, heavy_ops, save_model

Array = Any

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
SHAPES = ((1, 128, 5), (32, 128, 1))  # batch, seq, calls per turn
CHECK_SHAPES = ((1, 16, 20), (1, 128, 10), (32, 128, 2))
INIT_STD = 0.02  # HF BertPreTrainedModel._init_weights: normal(0, initializer_range)
PERTURBATION = 0.02  # biases, LayerNorm gamma - 1 and beta: small, so every parameter counts
PARITY_LIMIT = 1e-4
SPEED_LIMIT = 0.90
REFERENCE = "ORT fp32"


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


def parity_inputs(rng: np.random.Generator) -> dict[str, Array]:
    """Two sequences of 128, the second padded after 77 tokens, token types 0 then 1."""
    ids = rng.integers(1000, 30000, (2, 128))
    mask = np.ones_like(ids)
    mask[1, 77:] = 0
    types = np.zeros_like(ids)
    types[:, 64:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def engines(model_dir: Path, onnx_path: Path, int8: bool) -> dict[str, Engine]:
    table = {
        "oxiformer fp32": Engine("oxiformer", str(model_dir)),
        REFERENCE: Engine("ort", str(onnx_path)),
    }
    if int8:
        table["oxiformer int8"] = Engine("oxiformer", str(model_dir), dtype="int8")
        quantized = ort_int8_model(onnx_path, directory=onnx_path.parent)
        table["ORT int8 per-channel"] = Engine("ort", str(quantized))
    return table


def bert_base(args: argparse.Namespace) -> int:
    config = {**BERT_BASE, "num_hidden_layers": args.layers}
    print(machine_header(args.threads))
    with tempfile.TemporaryDirectory(prefix="oxiformer-bert-base-") as tmp:
        tensors = random_weights(config)
        model_dir = write_model_dir(Path(tmp) / "model", config, tensors)
        onnx_path = save_model(config, tensors, Path(tmp) / "bert-base.onnx")
        del tensors
        size = (model_dir / "weights.npz").stat().st_size
        print(f"BERT-base dimensions ({args.layers} layers), random weights: {size / 1e6:.0f} MB")
        table = engines(model_dir, onnx_path, args.int8)
        with Turns(table, args.threads) as turns:
            check = parity_inputs(np.random.default_rng(0))
            outputs = {name: turns.outputs(name, check, Path(tmp)) for name in table}
            for name, output in outputs.items():
                if name != REFERENCE:
                    diff = float(np.abs(output - outputs[REFERENCE]).max())
                    print(f"max abs diff {name} vs {REFERENCE} (2x128, one row padded): {diff:.2e}")
            print(
                f"\nmedian over {args.rounds} rounds of each round's best; every engine in its "
                "own process, taking turns; x = engine time / oxiformer fp32 time\n"
            )
            names = list(table)
            print("| BERT-base | " + " | ".join(names) + " |")
            print("|---|" + "---|" * len(names))
            for batch, seq, repeats in SHAPES:
                command = {"op": "encoder", "batch": batch, "seq": seq, "repeats": repeats}
                times = turns.medians(command, args.rounds)
                base = times["oxiformer fp32"]
                cells = [f"{base * 1e3:.1f} ms"]
                cells += [f"{times[n] * 1e3:.1f} ms ({times[n] / base:.2f}x)" for n in names[1:]]
                print(f"| {batch}x{seq} | " + " | ".join(cells) + " |")
                sys.stdout.flush()
            turns.close()
    return 0


def check_graph(args: argparse.Namespace) -> int:
    """The graph on the MiniLM weights against the shared export: parity, fusions, speed."""
    import oxiformer

    print(machine_header(args.threads))
    shared = FIXTURES / "model.onnx"
    encoder = oxiformer.Encoder.from_pretrained(minilm_dir())
    with np.load(FIXTURES / "golden.npz") as golden:
        inputs = {name: golden[name] for name in ("input_ids", "attention_mask")}
        reference = golden["last_hidden_state"]
    inputs["token_type_ids"] = np.zeros_like(inputs["input_ids"])
    with tempfile.TemporaryDirectory() as tmp:
        ours = save_model(encoder.config, encoder.state_dict(), Path(tmp) / "minilm.onnx")
        table = {"shared export": Engine("ort", str(shared)), "graph": Engine("ort", str(ours))}
        for name, path in (("shared export", shared), ("graph", ours)):
            print(f"ops ONNX Runtime runs, {name}: {heavy_ops(fused_ops(path, args.threads))}")
        with Turns(table, args.threads) as turns:
            outputs = {name: turns.outputs(name, inputs, Path(tmp)) for name in table}
            diff = float(np.abs(outputs["graph"] - outputs["shared export"]).max())
            attended = inputs["attention_mask"].astype(bool)
            to_golden = float(np.abs(outputs["graph"] - reference)[attended].max())
            shape = "x".join(map(str, inputs["input_ids"].shape))
            print(
                f"golden inputs ({shape}, padded): max abs diff to the shared export {diff:.2e} "
                f"(limit {PARITY_LIMIT:g}); to PyTorch's golden on attended tokens "
                f"{to_golden:.2e}"
            )
            print(f"\nratio = export time / graph time (>= {SPEED_LIMIT:.2f}: within 10%)")
            print("| batch x seq | shared export | graph | ratio |")
            print("|---|---|---|---|")
            ratios = []
            for batch, seq, repeats in CHECK_SHAPES:
                command = {"op": "encoder", "batch": batch, "seq": seq, "repeats": repeats}
                times = turns.medians(command, args.rounds)
                ratio = times["shared export"] / times["graph"]
                ratios.append(ratio)
                export_ms, graph_ms = times["shared export"] * 1e3, times["graph"] * 1e3
                print(f"| {batch}x{seq} | {export_ms:.2f} ms | {graph_ms:.2f} ms | {ratio:.2f} |")
            turns.close()
    print(f"\nparity: {'ok' if diff <= PARITY_LIMIT else 'FAILED'}; speed within 10%: ", end="")
    print("yes" if min(ratios) >= SPEED_LIMIT else "no (timing noise on a busy machine? run again)")
    return 0 if diff <= PARITY_LIMIT else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of turns")
    parser.add_argument("--int8", action="store_true", help="also time int8 engines")
    parser.add_argument("--layers", type=int, default=12, help="fewer layers for a quick try")
    parser.add_argument("--check-graph", action="store_true", help="the ONNX peer vs the export")
    args = parser.parse_args()
    return check_graph(args) if args.check_graph else bert_base(args)


if __name__ == "__main__":
    sys.exit(main())
