"""sentence-transformers pipelines with ``Dense`` modules (LaBSE, distiluse-base-multilingual:
Transformer, Pooling, Dense, Normalize), built here from MiniLM and random Dense weights.

No golden data from sentence-transformers exists for such a model in ``../shared/fixtures``
(PyTorch is not available here): the Dense step is checked against its definition in float64
NumPy, ``act(x W^T + b)`` on the pooled embedding, then the normalization, the pooled
embedding itself being what the MiniLM parity tests check against sentence-transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import oxiformer
import pytest
from helpers import to_safetensors
from torch_writer import write_checkpoint

TEXTS = ["A man is eating food.", "Ein Mann isst etwas.", "一个男人在吃东西。", ""]
TANH = "torch.nn.modules.activation.Tanh"


def dense_dir(path: Path, weight: np.ndarray, bias: np.ndarray | None, activation: str) -> None:
    path.mkdir(parents=True)
    config = {
        "in_features": weight.shape[1],
        "out_features": weight.shape[0],
        "bias": bias is not None,
        "activation_function": activation,
    }
    (path / "config.json").write_text(json.dumps(config))
    tensors = {"linear.weight": weight}
    if bias is not None:
        tensors["linear.bias"] = bias
    to_safetensors(path / "model.safetensors", tensors)


def random_layer(out: int, inp: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = np.float32(1.0 / np.sqrt(inp))
    return rng.standard_normal((out, inp)).astype(np.float32) * scale, rng.standard_normal(
        out
    ).astype(np.float32) * np.float32(0.1)


def st_model(
    root: Path,
    minilm_dir: Path,
    layers: list[tuple[np.ndarray, np.ndarray | None, str]],
    normalize: bool = True,
) -> Path:
    """MiniLM's files, then the given Dense modules, then Normalize."""
    model = root / "model"
    model.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (model / name).symlink_to(minilm_dir / name)
    (model / "sentence_bert_config.json").write_text('{"max_seq_length": 256}')
    (model / "1_Pooling").mkdir()
    pooling = {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True}
    (model / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    for weight, bias, activation in layers:
        index = len(modules)
        dense_dir(model / f"{index}_Dense", weight, bias, activation)
        modules.append(
            {
                "idx": index,
                "name": str(index),
                "path": f"{index}_Dense",
                "type": "sentence_transformers.models.Dense",
            }
        )
    if normalize:
        index = len(modules)
        modules.append(
            {
                "idx": index,
                "name": str(index),
                "path": f"{index}_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
    (model / "modules.json").write_text(json.dumps(modules))
    return model


@pytest.fixture(scope="module")
def pooled(minilm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """MiniLM's mean-pooled embeddings, not normalized: what the Dense module reads."""
    plain = st_model(tmp_path_factory.mktemp("plain"), minilm_dir, [], normalize=False)
    embeddings: np.ndarray = oxiformer.SentenceEncoder.from_pretrained(plain).encode(TEXTS)
    return embeddings


def reference(
    pooled: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray | None, str]]
) -> np.ndarray:
    x = pooled.astype(np.float64)
    for weight, bias, activation in layers:
        x = x @ weight.T.astype(np.float64) + (0.0 if bias is None else bias)
        x = {TANH: np.tanh, "torch.nn.modules.linear.Identity": lambda v: v}[activation](x)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def test_dense_then_normalize_as_sentence_transformers_defines_it(
    minilm_dir: Path, tmp_path: Path, pooled: np.ndarray
) -> None:
    weight, bias = random_layer(256, 384, 1)
    layers = [(weight, bias, TANH)]
    model = oxiformer.SentenceEncoder.from_pretrained(st_model(tmp_path, minilm_dir, layers))
    assert model.dimension == 256 and len(model.dense) == 1
    got = model.encode(TEXTS)
    assert got.shape == (len(TEXTS), 256) and got.dtype == np.float32
    diff = float(np.abs(got - reference(pooled, layers)).max())
    print(f"pooling + Dense(tanh) + Normalize vs float64: max abs diff {diff:.2e}")
    assert diff < 1e-5
    assert model.encode([]).shape == (0, 256)
    # One sentence alone gives the bits it gives in a batch.
    assert model.encode(TEXTS[1]).tobytes() == got[1].tobytes()


def test_two_dense_modules_and_no_bias(
    minilm_dir: Path, tmp_path: Path, pooled: np.ndarray
) -> None:
    first, _ = random_layer(200, 384, 2)
    second, second_bias = random_layer(64, 200, 3)
    layers = [(first, None, TANH), (second, second_bias, "torch.nn.modules.linear.Identity")]
    model = oxiformer.SentenceEncoder.from_pretrained(st_model(tmp_path, minilm_dir, layers))
    got = model.encode(TEXTS)
    diff = float(np.abs(got - reference(pooled, layers)).max())
    print(f"two Dense modules vs float64: max abs diff {diff:.2e}")
    assert got.shape == (len(TEXTS), 64) and diff < 1e-5


def test_dense_weights_from_pytorch_model_bin(minilm_dir: Path, tmp_path: Path) -> None:
    weight, bias = random_layer(48, 384, 6)
    source = st_model(tmp_path / "a", minilm_dir, [(weight, bias, TANH)])
    pickled = st_model(tmp_path / "b", minilm_dir, [(weight, bias, TANH)])
    (pickled / "2_Dense" / "model.safetensors").unlink()
    write_checkpoint(
        pickled / "2_Dense" / "pytorch_model.bin", {"linear.weight": weight, "linear.bias": bias}
    )
    want = oxiformer.SentenceEncoder.from_pretrained(source).encode(TEXTS)
    got = oxiformer.SentenceEncoder.from_pretrained(pickled).encode(TEXTS)
    assert got.tobytes() == want.tobytes()


def test_save_pretrained_keeps_the_dense_module(minilm_dir: Path, tmp_path: Path) -> None:
    weight, bias = random_layer(128, 384, 4)
    source = st_model(tmp_path / "a", minilm_dir, [(weight, bias, TANH)])
    model = oxiformer.SentenceEncoder.from_pretrained(source)
    out = model.save_pretrained(tmp_path / "saved")
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == [
        "Transformer",
        "Pooling",
        "Dense",
        "Normalize",
    ]
    assert (out / "2_Dense" / "model.safetensors").is_file()
    assert json.loads((out / "2_Dense" / "config.json").read_text())["activation_function"] == TANH
    again = oxiformer.SentenceEncoder.from_pretrained(out)
    assert again.encode(TEXTS).tobytes() == model.encode(TEXTS).tobytes()
    # int8: the encoder quantized, the Dense module kept in float32.
    fast = oxiformer.SentenceEncoder.from_pretrained(source, dtype="int8")
    cosine = np.sum(fast.encode(TEXTS[:3]) * model.encode(TEXTS[:3]), axis=1)
    print(f"int8 vs fp32 with a Dense module: min cosine {cosine.min():.5f}")
    assert cosine.min() > 0.99


def test_bad_dense_modules_name_the_file(minilm_dir: Path, tmp_path: Path) -> None:
    weight, bias = random_layer(32, 384, 5)
    cases = {}
    for case in ("activation", "pickle", "none", "shape", "width", "order", "extra"):
        model = st_model(tmp_path / case, minilm_dir, [(weight, bias, TANH)])
        dense = model / "2_Dense"
        config = json.loads((dense / "config.json").read_text())
        if case == "activation":
            config["activation_function"] = "torch.nn.modules.activation.Sigmoid"
        elif case == "pickle":
            (dense / "model.safetensors").unlink()
            (dense / "pytorch_model.bin").write_bytes(b"PK\x03\x04")
        elif case == "none":
            (dense / "model.safetensors").unlink()
        elif case == "shape":
            to_safetensors(
                dense / "model.safetensors", {"linear.weight": weight[:, :300], "linear.bias": bias}
            )
        elif case == "width":
            config["in_features"] = 300
            to_safetensors(
                dense / "model.safetensors", {"linear.weight": weight[:, :300], "linear.bias": bias}
            )
        elif case == "order":
            modules = json.loads((model / "modules.json").read_text())
            modules[1], modules[2] = modules[2], modules[1]
            (model / "modules.json").write_text(json.dumps(modules))
        else:
            to_safetensors(
                dense / "model.safetensors",
                {"linear.weight": weight, "linear.bias": bias, "x": bias},
            )
        (dense / "config.json").write_text(json.dumps(config))
        with pytest.raises(oxiformer.OxiformerError) as caught:
            oxiformer.SentenceEncoder.from_pretrained(model)
        cases[case] = f"{type(caught.value).__name__}: {caught.value}"
        print(case, "->", cases[case])
    assert "ConfigError" in cases["activation"] and "Sigmoid" in cases["activation"]
    assert "pytorch_model.bin" in cases["pickle"] and "WeightsError" in cases["pickle"]
    assert "no weights (model.safetensors or pytorch_model.bin)" in cases["none"]
    assert "linear.weight" in cases["shape"] and "2_Dense" in cases["shape"]
    assert "2_Dense: Dense module 0 takes 300 features" in cases["width"]
    assert "unsupported pipeline" in cases["order"]
    assert "unexpected tensor(s) x" in cases["extra"]


def test_ray_ships_the_dense_weights(minilm_dir: Path, tmp_path: Path) -> None:
    """The Ray engine sends a model's files to its workers, large ones only when needed: a
    Dense module's weights (over 1 MiB here) are needed."""
    from oxiformer.ray import _load, model_files

    weight, bias = random_layer(768, 384, 6)
    source = st_model(tmp_path, minilm_dir, [(weight, bias, TANH)])
    files = model_files(source)
    assert (source / "2_Dense" / "model.safetensors").stat().st_size > 1 << 20
    assert "2_Dense/model.safetensors" in files and "2_Dense/config.json" in files
    worker = _load(files, None)
    original = oxiformer.SentenceEncoder.from_pretrained(source)
    assert worker.encode(TEXTS).tobytes() == original.encode(TEXTS).tobytes()
