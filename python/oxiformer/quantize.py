"""int8 quantization: what is stored, how it is described in ``config.json``.

The scheme (``format`` 2): the dense layers of every encoder layer run with int8 weights and
8-bit activations, except a few **outlier input channels** per layer that stay in float32.

- Weights become int8 per output channel, symmetric: ``scale = max|w_row| / 127``,
  ``q = clip(rint(w / scale), -127, 127)``, stored as ``{layer}.weight`` (int8, HF's
  ``(out, in)`` layout) and ``{layer}.weight_scale`` (float32, ``(out,)``). The word embeddings
  are int8 per row (token) the same way (``word_embeddings``: true, the default); biases,
  LayerNorms, the other embeddings and the pooler stay float32.
- Activations are quantized by the engine on every call, per token, to unsigned 8 bits with a
  zero point: what VNNI's ``vpdpbusd`` multiplies at full rate.
- Outlier channels: in BERT-family models a few input channels of every layer carry values
  hundreds of times larger than the rest (MiniLM: one GELU channel reaches 200-1000 in every
  layer). In 8 bits per token they would set the scale of every other channel. So each layer
  keeps its ``outlier_channels`` largest input channels (4 by default) out of the 8-bit
  activations: their weights are stored in float32 (``{layer}.outlier_index`` int64 ``(o,)``,
  ``{layer}.outlier_weight`` float32 ``(out, o)``), their int8 weights are zero, and the
  weight scales are taken without them. Which channels: the largest ``max |x_j|`` over a fixed
  calibration run of the float model on random token ids (:func:`calibrate`, no data needed,
  deterministic), so ``from_pretrained(dtype="int8")`` and ``oxiformer quantize`` agree.
- Attention (``attention``: ``"int8"`` by default): the encoder's two attention products run
  in int8 too (queries as activations, keys per key and values per column symmetric int8,
  the softmax's weights as u8; ``rust/nn/attend_int8.rs``). ``"float32"``, and a config
  without the entry (written before int8 attention existed), keep them in float32.

Accuracy against fp32 and against ONNX Runtime's int8: the README's int8 section
(``benches/bench_int8.py``); the other schemes measured: ``benches/RESULTS.md``
(``benches/research/int8_accuracy.py``). The scheme is written into
``config.json`` as ``quantization_config`` (:func:`quantization_config`), which is how a
quantized model is recognised at load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer import _core
from oxiformer.errors import ConfigError

__all__ = [
    "ATTENTION",
    "CALIBRATION",
    "DEFAULT_ACTIVATION_BITS",
    "DEFAULT_ATTENTION",
    "DEFAULT_OUTLIER_CHANNELS",
    "FORMAT",
    "QUANTIZABLE",
    "calibrate",
    "checked_bits",
    "default_activation_bits",
    "max_activation_bits",
    "parse_quantization_config",
    "quantization_config",
    "quantize_tensors",
    "quantize_weight",
    "quantized_weight_names",
]

#: The dense layers of a BERT layer that can run in int8 (HF names inside ``encoder.layer.N``).
QUANTIZABLE: tuple[str, ...] = _core.QUANTIZABLE

#: Bits per activation of each int8 layer: 8, what ``vpdpbusd`` takes.
DEFAULT_ACTIVATION_BITS: dict[str, int] = dict.fromkeys(QUANTIZABLE, 8)

#: Input channels per layer kept in float32. With none, MiniLM's sentence cosine to fp32 on the
#: golden texts falls to 0.9925 at worst; with 4 it is 0.9985 (the README's int8 section).
DEFAULT_OUTLIER_CHANNELS: dict[str, int] = dict.fromkeys(QUANTIZABLE, 4)

#: The calibration run that picks outlier channels: sequences, tokens each, random seed.
CALIBRATION: tuple[int, int, int] = (16, 128, 0)

#: How attention's two products (``Q K^T`` and the weights times ``V``) can run in an int8 model.
ATTENTION: tuple[str, ...] = ("int8", "float32")

#: What :func:`quantization_config` writes: attention in int8 (the README's int8 section has
#: its cost in accuracy). A ``quantization_config`` without ``attention`` (written before it
#: existed) means ``"float32"``.
DEFAULT_ATTENTION = "int8"

#: The version of the int8 format this module writes and reads.
FORMAT = 2

_METHOD = "oxiformer"
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
_MAX_BITS = _core.MAX_ACTIVATION_BITS
# The dense layers that read the same input as query (their outlier channels are query's).
_SHARED_INPUT = {
    "attention.self.key": "attention.self.query",
    "attention.self.value": "attention.self.query",
}


def max_activation_bits(in_features: int) -> int:
    """The most activation bits a layer with ``in_features`` inputs takes: 8, or 0 beyond
    the inputs whose int32 sums could overflow (the core's own bound)."""
    return _core.max_activation_bits(in_features)


def default_activation_bits(config: Mapping[str, Any]) -> dict[str, int]:
    """:data:`DEFAULT_ACTIVATION_BITS`, for the layer sizes of ``config`` (checked against
    :func:`max_activation_bits`)."""
    hidden, inner = int(config["hidden_size"]), int(config["intermediate_size"])
    for name in DEFAULT_ACTIVATION_BITS:
        inputs = inner if name == "output.dense" else hidden
        if max_activation_bits(inputs) == 0:
            raise ConfigError(
                f"{name} has {inputs} inputs: too many for exact int32 sums of 8-bit products"
            )
    return dict(DEFAULT_ACTIVATION_BITS)


def quantize_weight(
    weight: npt.ArrayLike,
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """``(out, in)`` float weights -> int8 values and float32 per-row scales (symmetric)."""
    w = np.asarray(weight, dtype=np.float32)
    scale = (np.max(np.abs(w), axis=1) / np.float32(127.0)).astype(np.float32)
    scale[scale == 0] = np.float32(1.0)
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


def quantized_weight_names(num_layers: int, quantization: Mapping[str, Any] | None) -> list[str]:
    """HF names of the int8 tensors of a model with ``num_layers`` layers quantized as
    ``quantization`` (a ``quantization_config``; ``None``: a float model, no names)."""
    if quantization is None:
        return []
    names = [
        f"encoder.layer.{index}.{module}.weight"
        for index in range(num_layers)
        for module in quantization["activation_bits"]
    ]
    if quantization.get("word_embeddings", False):
        names.append(WORD_EMBEDDINGS)
    return names


#: The order of :meth:`_core.Encoder.input_peaks`: the dense layers by their input.
_PEAK_ORDER = (
    "attention.self.query",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


def calibrate(
    core: _core.Encoder,
    config: Mapping[str, Any],
    calibration: tuple[int, int, int] = CALIBRATION,
) -> dict[tuple[int, str], npt.NDArray[np.float32]]:
    """``max |x_j|`` of every input channel of each dense layer (query standing for query,
    key and value, which share their input) of the float encoder ``core``, over
    ``calibration = (sequences, tokens, seed)`` of random token ids (drawn from the upper
    97% of the vocabulary, past BERT's ``[unused]`` rows)."""
    sequences, length, seed = calibration
    vocab = int(config["vocab_size"])
    length = min(length, int(config["max_position_embeddings"]))
    rng = np.random.default_rng(seed)
    ids = rng.integers(vocab // 32, vocab, size=sequences * length, dtype=np.int64)
    lengths = np.full(sequences, length, dtype=np.int64)
    peaks = core.input_peaks(ids, np.zeros_like(ids), lengths)
    return {
        (index // len(_PEAK_ORDER), _PEAK_ORDER[index % len(_PEAK_ORDER)]): peak
        for index, peak in enumerate(peaks)
    }


def quantize_tensors(
    tensors: Mapping[str, npt.NDArray[Any]],
    num_layers: int,
    quantization: Mapping[str, Any],
    peaks: Mapping[tuple[int, str], npt.NDArray[np.float32]] | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """``tensors`` (HF names, float) with what ``quantization`` makes int8 replaced: int8
    values plus a ``weight_scale`` each (per row: per output channel of a weight, per token of
    the word embeddings), and, for the layers with outlier channels, their ``outlier_index``
    and float32 ``outlier_weight``: the channels with the largest ``peaks`` (from
    :func:`calibrate`). Every other tensor is passed through."""
    out = dict(tensors)
    outliers: Mapping[str, int] = quantization.get("outlier_channels", {})
    if any(outliers.values()) and peaks is None:
        raise ValueError("outlier channels need the calibration peaks")
    maxima = peaks or {}
    for index in range(num_layers):
        for module in quantization["activation_bits"]:
            name = f"encoder.layer.{index}.{module}"
            weight = np.asarray(tensors[name + ".weight"], dtype=np.float32)
            count = outliers.get(module, 0)
            if count:
                peak = maxima[(index, _SHARED_INPUT.get(module, module))]
                channels = np.sort(np.argsort(-peak, kind="stable")[:count]).astype(np.int64)
                out[name + ".outlier_index"] = channels
                out[name + ".outlier_weight"] = np.ascontiguousarray(weight[:, channels])
                weight = weight.copy()
                weight[:, channels] = 0
            out[name + ".weight"], out[name + ".weight_scale"] = quantize_weight(weight)
    if quantization.get("word_embeddings", False):
        out[WORD_EMBEDDINGS], out[WORD_EMBEDDINGS.removesuffix("weight") + "weight_scale"] = (
            quantize_weight(tensors[WORD_EMBEDDINGS])
        )
    return out


def quantization_config(
    activation_bits: Mapping[str, int],
    word_embeddings: bool = True,
    outlier_channels: Mapping[str, int] | None = None,
    attention: str = DEFAULT_ATTENTION,
) -> dict[str, Any]:
    """The ``quantization_config`` entry of ``config.json`` for an int8 model:
    ``activation_bits`` of the int8 layers, their ``outlier_channels`` (default
    :data:`DEFAULT_OUTLIER_CHANNELS`), whether the word embeddings are int8, and how attention's
    two products run (``attention``: ``"int8"`` or ``"float32"``)."""
    if outlier_channels is None:
        outlier_channels = {name: DEFAULT_OUTLIER_CHANNELS.get(name, 0) for name in activation_bits}
    return parse_quantization_config(
        {
            "quant_method": _METHOD,
            "format": FORMAT,
            "weights": "int8, symmetric, per output channel",
            "activations": "dynamic, per token, unsigned 8-bit with a zero point; "
            "outlier input channels in float32",
            "activation_bits": dict(activation_bits),
            "outlier_channels": {name: outlier_channels.get(name, 0) for name in activation_bits},
            "word_embeddings": word_embeddings,
            "attention": attention,
        },
        "quantization_config",
    )


def parse_quantization_config(value: Any, source: str) -> dict[str, Any]:
    """Validate a ``quantization_config`` entry; return it with ``activation_bits`` and
    ``outlier_channels`` in canonical order. ``source`` names the file in errors."""
    where = f"{source}: quantization_config"
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object, got {type(value).__name__}")
    method = value.get("quant_method")
    if method != _METHOD:
        raise ConfigError(
            f"{where}: unsupported quant_method {method!r} (oxiformer reads its own int8 "
            f"format, {_METHOD!r}; quantize an fp32 model with `oxiformer quantize`)"
        )
    if value.get("format") != FORMAT:
        raise ConfigError(
            f"{where}: this int8 model was written by an older oxiformer (format "
            f"{value.get('format', 1)!r}; this version reads format {FORMAT}: 8-bit activations "
            "with float32 outlier channels). Quantize the float model again with "
            "`oxiformer quantize`"
        )
    bits = value.get("activation_bits")
    if not isinstance(bits, dict) or not bits:
        raise ConfigError(f"{where}: 'activation_bits' must be a non-empty object")
    for name, count in bits.items():
        _check_layer(where, "activation_bits", name)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= _MAX_BITS:
            raise ConfigError(
                f"{where}: activation_bits[{name!r}] must be an integer from 1 to {_MAX_BITS}, "
                f"got {count!r}"
            )
    outliers = value.get("outlier_channels", {})
    if not isinstance(outliers, dict):
        raise ConfigError(f"{where}: 'outlier_channels' must be an object")
    for name, count in outliers.items():
        _check_layer(where, "outlier_channels", name)
        if name not in bits:
            raise ConfigError(f"{where}: outlier_channels names {name!r}, not an int8 layer")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 64:
            raise ConfigError(
                f"{where}: outlier_channels[{name!r}] must be an integer from 0 to 64, "
                f"got {count!r}"
            )
    for key, table in (("activation bits", bits), ("outlier channels", outliers)):
        if len({table.get(name) for name in QUANTIZABLE[:3]}) != 1:
            raise ConfigError(
                f"{where}: attention.self.query, key and value share one input and must have "
                f"the same {key} (or all stay float32)"
            )
    word_embeddings = value.get("word_embeddings", False)
    if not isinstance(word_embeddings, bool):
        raise ConfigError(f"{where}: 'word_embeddings' must be true or false")
    # Absent in models quantized before int8 attention existed: they keep float32 attention,
    # so their outputs stay what they were.
    attention = value.get("attention", "float32")
    if attention not in ATTENTION:
        raise ConfigError(
            f"{where}: 'attention' must be one of {', '.join(map(repr, ATTENTION))}, "
            f"got {attention!r}"
        )
    canonical = dict(value)
    canonical["word_embeddings"] = word_embeddings
    canonical["attention"] = attention
    canonical["activation_bits"] = {name: bits[name] for name in QUANTIZABLE if name in bits}
    canonical["outlier_channels"] = {
        name: outliers.get(name, 0) for name in QUANTIZABLE if name in bits
    }
    return canonical


def checked_bits(bits: Any, allowed: Sequence[str], where: str) -> dict[str, int]:
    """``bits`` (``{module: activation bits}`` read from a config), checked: a non-empty
    object of modules in ``allowed``, each 1 to ``MAX_ACTIVATION_BITS``; in ``allowed``'s
    order. ``where`` starts the errors."""
    if not isinstance(bits, Mapping) or not bits:
        raise ConfigError(f"{where} must be a non-empty object {{module: bits}}")
    for module, count in bits.items():
        if module not in allowed:
            raise ConfigError(f"{where}: unknown module {module!r} (known: {', '.join(allowed)})")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= _MAX_BITS:
            raise ConfigError(f"{where}[{module!r}] must be an integer from 1 to {_MAX_BITS}")
    return {module: int(bits[module]) for module in allowed if module in bits}


def _check_layer(where: str, key: str, name: str) -> None:
    if name not in QUANTIZABLE:
        raise ConfigError(
            f"{where}: unknown layer {name!r} in {key!r} (quantizable: {', '.join(QUANTIZABLE)})"
        )
