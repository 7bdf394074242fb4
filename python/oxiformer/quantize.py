"""int8 quantization: what is stored, how it is described in ``config.json``.

Weights of the dense layers of every encoder layer become int8 per output channel,
symmetric: ``scale = max|w_row| / 127``, ``q = clip(rint(w / scale), -127, 127)``, stored as
``{layer}.weight`` (int8, HF's ``(out, in)`` layout) and ``{layer}.weight_scale`` (float32,
``(out,)``); the word embeddings are int8 per row (token) the same way (``word_embeddings``:
true, the default); biases, LayerNorms, the other embeddings and the pooler stay float32.
Activations are quantized by the engine on every call, per token, unsigned with a zero point,
to ``activation_bits`` bits (12 by default: see ``DEFAULT_ACTIVATION_BITS``). The scheme is
written into ``config.json`` as ``quantization_config`` (:func:`quantization_config`), which
is how a quantized model is recognised at load.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer import _core
from oxiformer.errors import ConfigError

__all__ = [
    "DEFAULT_ACTIVATION_BITS",
    "QUANTIZABLE",
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

#: Bits per activation of each int8 layer. With 8 bits per token (the "plain" scheme, what
#: VNNI's u8 x s8 instruction takes) MiniLM's sentence cosine to fp32 falls to 0.993 on the
#: golden texts; 12 bits bring it to 0.9966 (``benches/int8_accuracy.py``). The AVX2 kernel
#: multiplies 16-bit activations by int8 weights with ``vpmaddwd`` whatever the bits, so the
#: extra bits cost no speed. Layers with more than 4128 inputs get fewer bits, so that no
#: int32 sum can overflow (:func:`max_activation_bits`).
DEFAULT_ACTIVATION_BITS: dict[str, int] = dict.fromkeys(QUANTIZABLE, 12)

_METHOD = "oxiformer"
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
_MAX_BITS = _core.MAX_ACTIVATION_BITS


def max_activation_bits(in_features: int) -> int:
    """The most activation bits a layer with ``in_features`` inputs takes: its int32 sums
    ``in_features * 127 * (2^bits - 1)`` must stay below 2^31 (the core's own bound)."""
    return _core.max_activation_bits(in_features)


def default_activation_bits(config: Mapping[str, Any]) -> dict[str, int]:
    """:data:`DEFAULT_ACTIVATION_BITS`, capped by :func:`max_activation_bits` for the
    layer sizes of ``config``."""
    hidden, inner = int(config["hidden_size"]), int(config["intermediate_size"])
    return {
        name: min(bits, max_activation_bits(inner if name == "output.dense" else hidden))
        for name, bits in DEFAULT_ACTIVATION_BITS.items()
    }


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


def quantize_tensors(
    tensors: Mapping[str, npt.NDArray[Any]],
    num_layers: int,
    quantization: Mapping[str, Any],
) -> dict[str, npt.NDArray[Any]]:
    """``tensors`` (HF names, float) with the tensors ``quantization`` makes int8 replaced by
    int8 values plus a ``weight_scale`` each (per row: per output channel of a weight, per
    token of the word embeddings); every other tensor is passed through."""
    out = dict(tensors)
    for name in quantized_weight_names(num_layers, quantization):
        values, scale = quantize_weight(tensors[name])
        out[name] = values
        out[name.removesuffix("weight") + "weight_scale"] = scale
    return out


def quantization_config(
    activation_bits: Mapping[str, int], word_embeddings: bool = True
) -> dict[str, Any]:
    """The ``quantization_config`` entry of ``config.json`` for an int8 model:
    ``activation_bits`` of the int8 layers, and whether the word embeddings are int8."""
    return parse_quantization_config(
        {
            "quant_method": _METHOD,
            "weights": "int8, symmetric, per output channel",
            "activations": "dynamic, per token, unsigned with a zero point",
            "activation_bits": dict(activation_bits),
            "word_embeddings": word_embeddings,
        },
        "quantization_config",
    )


def parse_quantization_config(value: Any, source: str) -> dict[str, Any]:
    """Validate a ``quantization_config`` entry; return it with ``activation_bits`` in
    canonical order. ``source`` names the file in errors."""
    where = f"{source}: quantization_config"
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object, got {type(value).__name__}")
    method = value.get("quant_method")
    if method != _METHOD:
        raise ConfigError(
            f"{where}: unsupported quant_method {method!r} (oxiformer reads its own int8 "
            f"format, {_METHOD!r}; quantize an fp32 model with `oxiformer quantize`)"
        )
    bits = value.get("activation_bits")
    if not isinstance(bits, dict) or not bits:
        raise ConfigError(f"{where}: 'activation_bits' must be a non-empty object")
    for name, count in bits.items():
        if name not in QUANTIZABLE:
            raise ConfigError(
                f"{where}: unknown layer {name!r} in 'activation_bits' "
                f"(quantizable: {', '.join(QUANTIZABLE)})"
            )
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= _MAX_BITS:
            raise ConfigError(
                f"{where}: activation_bits[{name!r}] must be an integer from 1 to {_MAX_BITS}, "
                f"got {count!r}"
            )
    qkv = {bits.get(name) for name in QUANTIZABLE[:3]}
    if len(qkv) != 1:
        raise ConfigError(
            f"{where}: attention.self.query, key and value share one input and must have "
            "the same activation bits (or all stay float32)"
        )
    word_embeddings = value.get("word_embeddings", False)
    if not isinstance(word_embeddings, bool):
        raise ConfigError(f"{where}: 'word_embeddings' must be true or false")
    canonical = dict(value)
    canonical["word_embeddings"] = word_embeddings
    canonical["activation_bits"] = {name: bits[name] for name in QUANTIZABLE if name in bits}
    return canonical
