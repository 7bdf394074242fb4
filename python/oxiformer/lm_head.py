"""The language-model head (HF ``BertLMPredictionHead``) of masked LMs and decoders.

Checkpoints store the decoder matrix's bias as ``cls.predictions.bias`` (HF ties it to
``cls.predictions.decoder.bias``) and may leave the matrix itself out: with
``tie_word_embeddings`` (the default) it is the word embeddings. :func:`select_lm_head_tensors`
resolves both by the family table's names and returns exactly what ``_core.LmHead`` (and the
Rust decoder) take; :func:`quantize_lm_head` makes its two dense layers int8.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer import _core
from oxiformer.errors import ConfigError, WeightsError
from oxiformer.quantize import checked_bits, max_activation_bits, quantize_weight
from oxiformer.weights import select_encoder_tensors

__all__ = [
    "LM_HEAD_BITS",
    "default_lm_head_bits",
    "quantize_lm_head",
    "select_lm_head_tensors",
    "stored_lm_head_bits",
]

#: Activation bits of the head's int8 layers, as the encoder's (capped by the input width).
_DEFAULT_BITS = 8
#: The head's dense layers that can be int8 (keys of the family table's ``lm_head``).
_LAYERS = ("transform", "decoder")
#: The ``quantization_config`` entry of a saved int8 head.
LM_HEAD_BITS = "lm_head_activation_bits"


def select_lm_head_tensors(
    tensors: Mapping[str, npt.NDArray[Any]],
    names: Mapping[str, str],
    config: _core.EncoderConfig,
    word_embeddings: npt.NDArray[Any] | None,
    source: str,
    tie_word_embeddings: bool = True,
    bits: Mapping[str, int] | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """The head's tensors by the core's names, checked like the encoder's: float32, or, for
    the layers in ``bits`` (a stored int8 head), int8 weights with a ``weight_scale``.

    ``tensors``: the checkpoint's, base prefix stripped; ``names``: the table's ``lm_head``
    entry; ``word_embeddings``: the word embeddings, which are the decoder matrix when
    ``tie_word_embeddings`` is true (as in HF, whatever the checkpoint stores under the
    matrix's name); else the checkpoint's matrix (always so for an int8 one).
    """
    expected = _core.lm_head_tensors(config, dict(bits) if bits else None)
    decoder_weight, decoder_bias = f"{names['decoder']}.weight", f"{names['decoder']}.bias"
    found = {name: tensors[name] for name in expected if name in tensors}
    if names["bias"] in tensors:  # the parameter HF ties the decoder's bias to
        found[decoder_bias] = tensors[names["bias"]]
    if not found:
        prefix = names["decoder"].rsplit(".", 1)[0]
        raise WeightsError(
            f"{source}: no masked-LM head (no '{prefix}.*' tensors): this checkpoint is not a "
            "BertForMaskedLM (a base model or a sentence encoder has no LM head)"
        )
    int8 = [f"{names[layer]}.weight" for layer in bits or {}]
    if tie_word_embeddings and decoder_weight in int8:
        raise ConfigError(
            f"{source}: the LM head's decoder matrix is stored in int8 "
            "(quantization_config's lm_head_activation_bits), so it cannot be tied to the word "
            "embeddings: tie_word_embeddings must be false"
        )
    if tie_word_embeddings and word_embeddings is not None:
        # HF ties the matrix to the word embeddings after loading: they win over a stored copy.
        found[decoder_weight] = word_embeddings
    if decoder_weight not in found:
        raise WeightsError(
            f"{source}: missing tensor '{decoder_weight}' (the LM head's decoder matrix; "
            "tie_word_embeddings is false)"
        )
    return select_encoder_tensors(found, expected, source, int8=int8)


def stored_lm_head_bits(quantization_config: Any, source: str) -> dict[str, int] | None:
    """The activation bits of an int8 model's stored int8 LM head
    (``quantization_config["lm_head_activation_bits"]``, written by ``save_pretrained``), or
    None (a float head)."""
    if not isinstance(quantization_config, Mapping):
        return None
    bits = quantization_config.get(LM_HEAD_BITS)
    if bits is None:
        return None
    return checked_bits(bits, _LAYERS, f"{source}: quantization_config's {LM_HEAD_BITS!r}")


def default_lm_head_bits(config: _core.EncoderConfig) -> dict[str, int]:
    """Activation bits of the head's int8 layers: both read ``hidden_size`` inputs."""
    bits = min(_DEFAULT_BITS, max_activation_bits(config.hidden_size))
    return {"transform": bits, "decoder": bits}


def quantize_lm_head(
    selected: Mapping[str, npt.NDArray[np.float32]],
    names: Mapping[str, str],
    bits: Mapping[str, int],
) -> dict[str, npt.NDArray[Any]]:
    """``selected`` with the dense layers named in ``bits`` (``transform``, ``decoder``) as
    int8 weights plus a ``weight_scale`` each (per output channel, symmetric)."""
    out: dict[str, npt.NDArray[Any]] = dict(selected)
    for layer in bits:
        weight = f"{names[layer]}.weight"
        out[weight], out[f"{names[layer]}.weight_scale"] = quantize_weight(selected[weight])
    return out
