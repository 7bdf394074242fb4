"""int8 for the decoder and its LM head (``dtype="int8"`` on ``EncoderDecoder``).

Kept apart from :mod:`oxiformer.quantize` (the encoder's scheme) so the two can evolve
separately; it reuses that module's weight quantizer. Every dense layer of the decoder runs
in int8 by default: self-attention, cross-attention, feed-forward, the LM head's transform and
its decoder matrix (tied to the word embeddings, which stay float32 for the lookup). Weights
are int8 per output channel; activations are quantized per token on every call, to 8 bits
(what VNNI multiplies), without the float32 outlier channels of the encoder's scheme: the
decoder is not calibrated, so it needs no calibration statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy.typing as npt

from oxiformer import _core
from oxiformer.quantize import max_activation_bits, quantize_weight

__all__ = ["DECODER_QUANTIZABLE", "default_decoder_bits", "quantize_decoder_tensors"]

#: The decoder's modules that can run in int8 (the family table's names).
DECODER_QUANTIZABLE: tuple[str, ...] = _core.DECODER_QUANTIZABLE

_DEFAULT_BITS = 8


def default_decoder_bits(config: _core.DecoderConfig) -> dict[str, int]:
    """Activation bits of every quantizable module: 8 (0 where the input is too wide for
    exact int32 sums)."""
    hidden, inner = config.model.hidden_size, config.model.intermediate_size
    ffn_output = _core.families()["encoders"][0]["layer"]["output"]
    return {
        module: min(_DEFAULT_BITS, max_activation_bits(inner if module == ffn_output else hidden))
        for module in DECODER_QUANTIZABLE
    }


def quantize_decoder_tensors(
    tensors: Mapping[str, npt.NDArray[Any]],
    decoder_config: _core.DecoderConfig,
    memory_size: int,
    bits: Mapping[str, int],
) -> dict[str, npt.NDArray[Any]]:
    """``tensors`` (the decoder's, by the core's names, float32) with the weights of the
    modules in ``bits`` as int8 plus a ``weight_scale`` each."""
    expected = _core.decoder_tensors(decoder_config, memory_size, dict(bits))
    out = dict(tensors)
    for name in expected:
        if name.endswith(".weight_scale"):
            weight = name.removesuffix("_scale")
            out[weight], out[name] = quantize_weight(tensors[weight])
    return out
