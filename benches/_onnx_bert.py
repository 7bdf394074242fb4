"""A BERT encoder as an ONNX graph, built with the ``onnx`` helper API from HF-named weights.

The ONNX Runtime peer for models that have no ONNX export (BERT-base dimensions with random
weights in ``bench_bert_base.py``, other models in ``bench_memory.py``). The graph mirrors
what ``torch.onnx.export`` wrote for ``../shared/fixtures/minilm/model.onnx`` (opset 17,
standard ops only): MatMul with pre-transposed weights then ``Add(bias, .)``, Reshape +
Transpose into heads, Q K^T then ``Mul`` by 1/sqrt(d), additive mask from ``Where``, Softmax,
``LayerNormalization``, GELU as ``Div`` / ``Erf`` / ``Add`` / ``Mul`` / ``Mul``. So ONNX
Runtime fuses it the same way (FusedMatMul, BiasGelu) and the peer is not handicapped;
``python benches/bench_bert_base.py --check-graph`` shows it on MiniLM.

Inputs ``input_ids``, ``attention_mask``, ``token_type_ids``: int64 (batch, seq); output
``last_hidden_state``: float32 (batch, seq, hidden).
"""

from __future__ import annotations

import collections
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

Array = Any

OPSET = 17
IR_VERSION = 8  # what torch wrote for opset 17; ONNX Runtime reads it
INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# Activation names, ours (oxiformer's normalized config) and Hugging Face's.
GELU_ERF = {"gelu"}
GELU_TANH = {"gelu_tanh", "gelu_new", "gelu_pytorch_tanh", "gelu_fast"}


class GraphBuilder:
    """Nodes and initializers of one graph; every node gets a fresh output name."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.names: set[str] = set()
        self.count = 0

    def constant(self, name: str, value: Array) -> str:
        """An initializer ``name``, added the first time it is asked for."""
        from onnx import numpy_helper

        if name not in self.names:
            self.names.add(name)
            self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def scalar(self, name: str, value: float) -> str:
        return self.constant(name, np.array(value, dtype=np.float32))

    def node(self, op: str, *inputs: str, output: str | None = None, **attributes: Any) -> str:
        from onnx import helper

        self.count += 1
        out = output or f"{op.lower()}_{self.count}"
        self.nodes.append(helper.make_node(op, list(inputs), [out], **attributes))
        return out


def linear(graph: GraphBuilder, x: str, tensors: Mapping[str, Array], prefix: str) -> str:
    """``Add(bias, MatMul(x, W^T))`` with W^T stored (in, out), as torch exports it."""
    weight_t = np.ascontiguousarray(np.asarray(tensors[f"{prefix}.weight"], np.float32).T)
    weight = graph.constant(f"{prefix}.weight_t", weight_t)
    bias = graph.constant(f"{prefix}.bias", np.asarray(tensors[f"{prefix}.bias"], np.float32))
    return graph.node("Add", bias, graph.node("MatMul", x, weight))


def layer_norm(
    graph: GraphBuilder,
    x: str,
    tensors: Mapping[str, Array],
    prefix: str,
    eps: float,
    output: str | None = None,
) -> str:
    gamma = graph.constant(f"{prefix}.weight", np.asarray(tensors[f"{prefix}.weight"], np.float32))
    beta = graph.constant(f"{prefix}.bias", np.asarray(tensors[f"{prefix}.bias"], np.float32))
    return graph.node("LayerNormalization", x, gamma, beta, output=output, axis=-1, epsilon=eps)


def split_heads(graph: GraphBuilder, projection: str, perm: list[int]) -> str:
    """(batch, seq, hidden) -> (batch, seq, heads, head size), then transposed by ``perm``."""
    return graph.node("Transpose", graph.node("Reshape", projection, "heads_shape"), perm=perm)


def activation(graph: GraphBuilder, x: str, name: str) -> str:
    """The feed-forward activation, written the way torch exports it."""
    one, half = graph.scalar("one", 1.0), graph.scalar("half", 0.5)
    if name in GELU_ERF:  # 0.5 * x * (1 + erf(x / sqrt 2)): ORT fuses it (Bias)Gelu
        sqrt_2 = graph.scalar("sqrt_2", float(np.sqrt(np.float32(2.0))))
        erf = graph.node("Erf", graph.node("Div", x, sqrt_2))
        return graph.node("Mul", graph.node("Mul", x, graph.node("Add", erf, one)), half)
    if name in GELU_TANH:  # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))): FastGelu
        cube = graph.node("Pow", x, graph.scalar("three", 3.0))
        cube = graph.node("Mul", cube, graph.scalar("gelu_tanh_coefficient", 0.044715))
        scale = graph.scalar("sqrt_2_over_pi", float(np.sqrt(2.0 / np.pi)))
        inner = graph.node("Tanh", graph.node("Mul", graph.node("Add", x, cube), scale))
        return graph.node("Mul", graph.node("Mul", x, graph.node("Add", inner, one)), half)
    if name == "relu":
        return graph.node("Relu", x)
    raise ValueError(f"activation {name!r} is not supported (gelu, gelu_tanh, relu)")


def build_model(config: Mapping[str, Any], tensors: Mapping[str, Array]) -> Any:
    """The encoder as an ``onnx.ModelProto`` from a config (HF ``config.json`` fields or
    oxiformer's normalized config) and ``{HF name: float32 array}``
    (``oxiformer.Encoder.state_dict()``); pooler tensors, if any, are ignored."""
    from onnx import TensorProto, checker, helper

    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_size = hidden // heads
    eps = float(config.get("layer_norm_eps", 1e-12))
    act = str(config.get("hidden_act", "gelu"))
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("only learned ('absolute') position embeddings are supported")

    graph = GraphBuilder()
    graph.scalar("attention_scale", 1.0 / float(np.sqrt(head_size)))
    graph.scalar("masked", float(np.finfo(np.float32).min))
    graph.scalar("kept", 0.0)
    graph.constant("heads_shape", np.array([0, 0, heads, head_size], np.int64))
    graph.constant("hidden_shape", np.array([0, 0, hidden], np.int64))
    graph.constant("mask_axes", np.array([1, 2], np.int64))
    graph.constant("zero_1d", np.array([0], np.int64))
    graph.constant("one_1d", np.array([1], np.int64))
    max_positions = int(config.get("max_position_embeddings", 512))
    graph.constant("position_ids", np.arange(max_positions, dtype=np.int64)[None, :])

    # Embeddings: word + token type + position, LayerNorm (HF BertEmbeddings).
    def table(name: str) -> str:
        return graph.constant(name, np.asarray(tensors[name], np.float32))

    x = graph.node("Gather", table("embeddings.word_embeddings.weight"), "input_ids")
    if int(config.get("type_vocab_size", 2)) > 0:
        types = graph.node(
            "Gather", table("embeddings.token_type_embeddings.weight"), "token_type_ids"
        )
        x = graph.node("Add", x, types)
    seq = graph.node("Shape", "input_ids", start=1, end=2)  # [seq]
    positions = graph.node("Slice", "position_ids", "zero_1d", seq, "one_1d")  # (1, seq)
    x = graph.node(
        "Add", x, graph.node("Gather", table("embeddings.position_embeddings.weight"), positions)
    )
    x = layer_norm(graph, x, tensors, "embeddings.LayerNorm", eps)

    # (batch, 1, 1, seq): 0 where attended, the lowest float32 where masked (as HF).
    keep = graph.node(
        "Cast", graph.node("Unsqueeze", "attention_mask", "mask_axes"), to=TensorProto.BOOL
    )
    mask = graph.node("Where", keep, "kept", "masked")

    layers = int(config["num_hidden_layers"])
    for index in range(layers):
        prefix = f"encoder.layer.{index}"
        query = linear(graph, x, tensors, f"{prefix}.attention.self.query")
        key = linear(graph, x, tensors, f"{prefix}.attention.self.key")
        value = linear(graph, x, tensors, f"{prefix}.attention.self.value")
        query = split_heads(graph, query, [0, 2, 1, 3])  # (B, heads, T, d)
        key_t = split_heads(graph, key, [0, 2, 3, 1])  # (B, heads, d, T)
        value = split_heads(graph, value, [0, 2, 1, 3])  # (B, heads, T, d)
        scores = graph.node("Mul", graph.node("MatMul", query, key_t), "attention_scale")
        probs = graph.node("Softmax", graph.node("Add", scores, mask), axis=-1)  # (B, heads, T, T)
        context = graph.node("Transpose", graph.node("MatMul", probs, value), perm=[0, 2, 1, 3])
        context = graph.node("Reshape", context, "hidden_shape")  # (B, T, hidden)
        attended = linear(graph, context, tensors, f"{prefix}.attention.output.dense")
        norm = f"{prefix}.attention.output.LayerNorm"
        x = layer_norm(graph, graph.node("Add", attended, x), tensors, norm, eps)
        inner = activation(graph, linear(graph, x, tensors, f"{prefix}.intermediate.dense"), act)
        out = graph.node("Add", linear(graph, inner, tensors, f"{prefix}.output.dense"), x)
        last = "last_hidden_state" if index == layers - 1 else None
        x = layer_norm(graph, out, tensors, f"{prefix}.output.LayerNorm", eps, output=last)

    ids = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in INPUTS]
    out = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch", "seq", hidden]
    )
    onnx_graph = helper.make_graph(graph.nodes, "bert", ids, [out], graph.initializers)
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="oxiformer benches/_onnx_bert.py",
    )
    model.ir_version = IR_VERSION
    checker.check_model(model)  # the whole model is under 2 GB: no external data needed
    return model


def save_model(config: Mapping[str, Any], tensors: Mapping[str, Array], path: Path) -> Path:
    """Build the graph and write it to ``path``."""
    import onnx

    onnx.save(build_model(config, tensors), str(path))
    return path


def fused_ops(path: Path, threads: int) -> collections.Counter[str]:
    """Op types of the graph ONNX Runtime runs after its optimizations (default level)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # no warning about saving a hardware-specific graph
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        optimized = onnx.load(options.optimized_model_filepath)
    return collections.Counter(f"{n.domain}:{n.op_type}".lstrip(":") for n in optimized.graph.node)


def heavy_ops(counts: collections.Counter[str]) -> str:
    """The ops that do the arithmetic (not shape plumbing), as ``name xcount``."""
    plumbing = {"Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Transpose", "Cast", "Slice"}
    plumbing |= {"Range", "Where", "And", "Equal", "Flatten", "GreaterOrEqual", "Expand"}
    plumbing |= {"ConstantOfShape", "Identity", "Mul", "Add"}
    kept = sorted((op, n) for op, n in counts.items() if op not in plumbing)
    return ", ".join(f"{op} x{n}" for op, n in kept)
