"""The BERT encoder, decoder and LM head in plain NumPy: the oracle the Rust core is tested
against.

Slow and readable on purpose. It mirrors Hugging Face ``transformers``' ``BertModel`` with eager
attention (``modeling_bert.py``): embeddings, then ``num_hidden_layers`` post-LayerNorm layers,
then the optional pooler; :func:`decoder_forward` is ``BertLMHeadModel`` as the decoder of an
``EncoderDecoderModel`` (causal self-attention, cross-attention over the encoder's output, the
LM head), recomputed from scratch for every prefix: no cache. Shapes are written as
``# (B, T, H)``: batch, sequence, hidden; S is the encoder's (source) length.
Everything runs in the ``dtype`` asked for (float32 or float64); only erf and the sinusoidal
table are evaluated in float64 and rounded.

``tensors`` are the encoder's tensors under their HF names without the ``bert.`` prefix, as
returned by :func:`oxiformer.weights.select_encoder_tensors`; ``config`` is the normalized
configuration of :func:`oxiformer.config.load_config`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import numpy.typing as npt

from oxiformer.errors import InputError

__all__ = [
    "attention",
    "attention_block",
    "causal_mask_bias",
    "decoder_forward",
    "decoder_layer",
    "embeddings",
    "encoder_layer",
    "erf",
    "feed_forward",
    "forward",
    "gelu",
    "gelu_tanh",
    "layer_norm",
    "linear",
    "lm_head",
    "relu",
    "sinusoidal_positions",
    "softmax",
]

Array = npt.NDArray[np.floating[Any]]
Tensors = Mapping[str, npt.NDArray[Any]]

# W. J. Cody, "Rational Chebyshev approximations for the error function", Math. Comp. 23
# (1969), as implemented in his SPECFUN routine CALERF: erf on |x| <= 0.46875, erfc beyond.
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)  # fmt: skip
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)  # fmt: skip
_ERFC_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
           2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
           2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)  # fmt: skip
_ERFC_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
           1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
           3.43936767414372164e03, 1.23033935480374942e03)  # fmt: skip
_ERFC_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
           1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)  # fmt: skip
_ERFC_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
           6.05183413124413191e-2, 2.33520497626869185e-3)  # fmt: skip
_ONE_OVER_SQRT_PI = 5.6418958354775628695e-1
_ERFC_XBIG = 26.543


def erf(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The error function, elementwise, in float64 (Cody's rational approximations)."""
    values = np.asarray(x, dtype=np.float64)
    y = np.abs(values)
    result: npt.NDArray[np.float64] = values.copy()  # NaN stays NaN
    small = y <= 0.46875
    result[small] = _erf_small(values[small])
    middle = (y > 0.46875) & (y <= 4.0)
    result[middle] = np.copysign(0.5 - _erfc_middle(y[middle]) + 0.5, values[middle])
    large = y > 4.0
    result[large] = np.copysign(0.5 - _erfc_large(y[large]) + 0.5, values[large])
    return result


def _erf_small(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """erf(x) = x * R(x^2) for |x| <= 0.46875."""
    ysq = x * x
    num, den = _ERF_A[4] * ysq, ysq
    for a, b in zip(_ERF_A[:3], _ERF_B[:3]):
        num, den = (num + a) * ysq, (den + b) * ysq
    return x * (num + _ERF_A[3]) / (den + _ERF_B[3])


def _erfc_middle(y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """erfc(y) = exp(-y^2) * R(y) for 0.46875 < y <= 4."""
    num, den = _ERFC_C[8] * y, y
    for c, d in zip(_ERFC_C[:7], _ERFC_D[:7]):
        num, den = (num + c) * y, (den + d) * y
    return _exp_minus_square(y) * (num + _ERFC_C[7]) / (den + _ERFC_D[7])


def _erfc_large(y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """erfc(y) = exp(-y^2) / y * (1/sqrt(pi) + R(1/y^2) / y^2) for y > 4.

    Beyond Cody's XBIG = 26.543 erfc(y) underflows: it is 0 there (and y^2 may overflow).
    """
    y = np.minimum(y, _ERFC_XBIG)  # the values past XBIG are replaced by 0 below
    inv_sq = 1.0 / (y * y)
    num, den = _ERFC_P[5] * inv_sq, inv_sq
    for p, q in zip(_ERFC_P[:4], _ERFC_Q[:4]):
        num, den = (num + p) * inv_sq, (den + q) * inv_sq
    tail = (_ONE_OVER_SQRT_PI - inv_sq * (num + _ERFC_P[4]) / (den + _ERFC_Q[4])) / y
    return np.where(y < _ERFC_XBIG, _exp_minus_square(y) * tail, 0.0)


def _exp_minus_square(y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """exp(-y^2) as exp(-r^2) * exp(-(y - r)(y + r)), r = y rounded down to 1/16.

    The split keeps y^2 from being rounded before the exponential (Cody's trick).
    """
    rounded = np.floor(y * 16.0) / 16.0
    with np.errstate(under="ignore"):
        return np.exp(-rounded * rounded) * np.exp(-(y - rounded) * (y + rounded))


def gelu(x: Array) -> Array:
    """GELU with the exact erf: x * Phi(x) (HF ``gelu``)."""
    phi = 0.5 * (1.0 + erf(x.astype(np.float64) / math.sqrt(2.0)))
    return x * phi.astype(x.dtype)


def gelu_tanh(x: Array) -> Array:
    """GELU, tanh approximation (HF ``gelu_new`` / ``gelu_pytorch_tanh``)."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def relu(x: Array) -> Array:
    return np.maximum(x, 0)


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "gelu": gelu,
    "gelu_tanh": gelu_tanh,
    "relu": relu,
}


def linear(x: Array, weight: Array, bias: Array) -> Array:
    """``x @ weight.T + bias``; ``weight`` is (out, in) as in ``torch.nn.Linear``."""
    rows = x.reshape(-1, x.shape[-1])  # (N, in): one 2-D matmul is much faster than a stack
    out: Array = (rows @ weight.T + bias).reshape(*x.shape[:-1], weight.shape[0])  # (..., out)
    return out


def layer_norm(x: Array, weight: Array, bias: Array, eps: float) -> Array:
    """LayerNorm over the last axis, with the biased variance as ``torch.nn.LayerNorm``."""
    mean = x.mean(axis=-1, keepdims=True)  # (..., 1)
    centered = x - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)  # (..., 1)
    normalized: Array = centered / np.sqrt(variance + x.dtype.type(eps))
    return normalized * weight + bias


def softmax(x: Array, axis: int = -1) -> Array:
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    probs: Array = shifted / shifted.sum(axis=axis, keepdims=True)
    return probs


def attention(q: Array, k: Array, v: Array, mask_bias: Array, num_heads: int) -> Array:
    """Multi-head scaled dot-product attention.

    ``q``: (B, T, H); ``k``, ``v``: (B, S, H) (S = T for self-attention, the encoder's length
    for cross-attention); ``mask_bias``: (B, S), added to every query's scores over the keys
    (0 to attend, a huge negative number to ignore), or (B, T, S), one row per query (causal).
    """
    batch, seq, hidden = q.shape
    head_size = hidden // num_heads

    def split_heads(x: Array) -> Array:
        heads: Array = x.reshape(batch, x.shape[1], num_heads, head_size).transpose(0, 2, 1, 3)
        return heads  # (B, N, T, D)

    # einsum rather than a stack of small matmuls: same sums, and no BLAS threads to stall.
    scale = q.dtype.type(head_size**-0.5)
    scores = np.einsum("bntd,bnsd->bnts", split_heads(q), split_heads(k)) * scale  # (B, N, T, S)
    bias = mask_bias[:, None, None, :] if mask_bias.ndim == 2 else mask_bias[:, None, :, :]
    scores = scores + bias
    probs = softmax(scores, axis=-1)  # (B, N, T, S)
    context = np.einsum("bnts,bnsd->bntd", probs, split_heads(v))  # (B, N, T, D)
    merged: Array = context.transpose(0, 2, 1, 3).reshape(batch, seq, hidden)  # (B, T, H)
    return merged


def sinusoidal_positions(num_positions: int, dim: int) -> npt.NDArray[np.float64]:
    """The fixed encoding of "Attention Is All You Need": sin at even, cos at odd columns."""
    positions = np.arange(num_positions, dtype=np.float64)[:, None]  # (P, 1)
    columns = np.arange(dim)
    angles = positions / np.power(10000.0, 2 * (columns // 2) / dim)  # (P, dim)
    table = np.empty((num_positions, dim), dtype=np.float64)
    table[:, 0::2] = np.sin(angles[:, 0::2])
    table[:, 1::2] = np.cos(angles[:, 1::2])
    return table


def embeddings(
    tensors: Tensors,
    config: Mapping[str, Any],
    input_ids: npt.NDArray[np.integer[Any]],
    token_type_ids: npt.NDArray[np.integer[Any]],
    dtype: type[np.floating[Any]],
    positions_start: int = 0,
) -> Array:
    """Word + token type + position embeddings, then LayerNorm (HF ``BertEmbeddings``); then
    ``embeddings_project`` when the tables are narrower than the hidden size (ELECTRA).

    ``positions_start``: the position of the first token (a decoder's cached prefix)."""
    seq = input_ids.shape[1]
    words = tensors["embeddings.word_embeddings.weight"]  # (V, H)
    hidden = words[input_ids].astype(dtype)  # (B, T, H); look up first, then convert
    if config["type_vocab_size"] > 0:
        token_types = _param(tensors, "embeddings.token_type_embeddings.weight", dtype)
        hidden = hidden + token_types[token_type_ids]  # (B, T, H)
    width = config.get("embedding_size", config["hidden_size"])
    end = positions_start + seq
    if config["position_embedding_type"] == "sinusoidal":
        positions = sinusoidal_positions(end, width).astype(dtype)[positions_start:]  # (T, E)
    else:
        positions = _param(tensors, "embeddings.position_embeddings.weight", dtype)
        positions = positions[positions_start:end]  # (T, E)
    hidden = hidden + positions  # (B, T, E)
    hidden = _layer_norm_named(tensors, "embeddings.LayerNorm", hidden, config)
    if width != config["hidden_size"]:
        weight = _param(tensors, "embeddings_project.weight", dtype)  # (H, E)
        hidden = linear(hidden, weight, _param(tensors, "embeddings_project.bias", dtype))
    return hidden  # (B, T, H)


def _dense(tensors: Tensors, name: str, x: Array) -> Array:
    """The linear layer ``name`` (``.weight`` (out, in), ``.bias``) applied to ``x``."""
    dtype = x.dtype.type
    return linear(
        x, _param(tensors, name + ".weight", dtype), _param(tensors, name + ".bias", dtype)
    )


def attention_block(
    tensors: Tensors,
    config: Mapping[str, Any],
    prefix: str,
    x: Array,
    keys_from: Array,
    mask_bias: Array,
) -> Array:
    """HF ``BertAttention`` ``{prefix}``: queries from ``x`` (B, T, H), keys and values from
    ``keys_from`` (``x`` itself, or the encoder's output (B, S, H) for cross-attention), then
    the output dense layer, the residual and LayerNorm."""
    q = _dense(tensors, prefix + ".self.query", x)  # (B, T, H)
    k = _dense(tensors, prefix + ".self.key", keys_from)  # (B, T or S, H)
    v = _dense(tensors, prefix + ".self.value", keys_from)  # (B, T or S, H)
    context = attention(q, k, v, mask_bias, config["num_attention_heads"])  # (B, T, H)
    out: Array = _dense(tensors, prefix + ".output.dense", context) + x  # (B, T, H)
    return _layer_norm_named(tensors, prefix + ".output.LayerNorm", out, config)


def feed_forward(tensors: Tensors, config: Mapping[str, Any], prefix: str, x: Array) -> Array:
    """HF ``BertIntermediate`` + ``BertOutput`` of layer ``prefix``, residual, LayerNorm."""
    activation = ACTIVATIONS[config["hidden_act"]]
    intermediate = activation(_dense(tensors, prefix + ".intermediate.dense", x))  # (B, T, I)
    output = _dense(tensors, prefix + ".output.dense", intermediate) + x  # (B, T, H)
    return _layer_norm_named(tensors, prefix + ".output.LayerNorm", output, config)


def encoder_layer(
    tensors: Tensors,
    config: Mapping[str, Any],
    index: int,
    hidden: Array,
    mask_bias: Array,
) -> Array:
    """One post-LayerNorm layer (HF ``BertLayer``): attention block, then feed-forward block."""
    prefix = f"encoder.layer.{index}"
    attended = attention_block(tensors, config, prefix + ".attention", hidden, hidden, mask_bias)
    return feed_forward(tensors, config, prefix, attended)  # (B, T, H)


def forward(
    tensors: Tensors,
    config: Mapping[str, Any],
    input_ids: npt.ArrayLike,
    attention_mask: npt.ArrayLike | None = None,
    token_type_ids: npt.ArrayLike | None = None,
    *,
    dtype: type[np.floating[Any]] = np.float32,
    with_pooler: bool = False,
) -> dict[str, Any]:
    """Run the encoder on ``input_ids`` (B, T).

    Returns ``last_hidden_state`` (B, T, H), ``hidden_states`` (the embeddings output, then
    the output of each layer) and, with ``with_pooler``, ``pooler_output`` (B, H).
    The mask defaults to all ones and token types to zeros. Padding is masked as in HF eager
    attention: ``(1 - mask) * finfo(dtype).min`` is added to the scores, so a row with no
    position to attend to attends uniformly to all of them.
    """
    ids = _ids(input_ids, "input_ids", None)
    mask = _ids(attention_mask, "attention_mask", ids) if attention_mask is not None else None
    types = _ids(token_type_ids, "token_type_ids", ids) if token_type_ids is not None else None
    if ids.min(initial=0) < 0 or ids.max(initial=0) >= config["vocab_size"]:
        raise InputError(f"input_ids must lie in [0, {config['vocab_size']})")
    if ids.shape[1] > config["max_position_embeddings"]:
        raise InputError(
            f"sequence length {ids.shape[1]} exceeds max_position_embeddings "
            f"{config['max_position_embeddings']}"
        )
    if types is None:
        types = np.zeros_like(ids)
    elif config["type_vocab_size"] > 0 and (
        types.min(initial=0) < 0 or types.max(initial=0) >= config["type_vocab_size"]
    ):
        raise InputError(f"token_type_ids must lie in [0, {config['type_vocab_size']})")
    if mask is None:
        mask = np.ones_like(ids)
    mask_bias = (1 - mask.astype(dtype)) * np.finfo(dtype).min  # (B, T)

    hidden = embeddings(tensors, config, ids, types, dtype)  # (B, T, H)
    hidden_states = [hidden]
    for index in range(config["num_hidden_layers"]):
        hidden = encoder_layer(tensors, config, index, hidden, mask_bias)  # (B, T, H)
        hidden_states.append(hidden)
    outputs: dict[str, Any] = {"last_hidden_state": hidden, "hidden_states": hidden_states}
    if with_pooler:
        first = hidden[:, 0]  # (B, H)
        weight = _param(tensors, "pooler.dense.weight", dtype)
        outputs["pooler_output"] = np.tanh(
            linear(first, weight, _param(tensors, "pooler.dense.bias", dtype))
        )  # (B, H)
    return outputs


def lm_head(tensors: Tensors, config: Mapping[str, Any], hidden: Array) -> Array:
    """HF ``BertOnlyMLMHead``: dense, activation, LayerNorm, then the decoder matrix plus the
    bias ``cls.predictions.bias``. The matrix is ``cls.predictions.decoder.weight``, or the
    word embeddings when a checkpoint leaves it out (HF ties the two)."""
    dtype = hidden.dtype.type
    prefix = "cls.predictions."
    weight = _param(tensors, prefix + "transform.dense.weight", dtype)
    x = linear(hidden, weight, _param(tensors, prefix + "transform.dense.bias", dtype))
    x = ACTIVATIONS[config["hidden_act"]](x)  # (..., H)
    x = _layer_norm_named(tensors, prefix + "transform.LayerNorm", x, config)
    matrix_name = prefix + "decoder.weight"
    if matrix_name not in tensors:
        matrix_name = "embeddings.word_embeddings.weight"
    bias = tensors.get(prefix + "bias", tensors.get(prefix + "decoder.bias"))
    if bias is None:
        raise InputError(f"no bias for the LM head ('{prefix}bias')")
    return linear(x, _param(tensors, matrix_name, dtype), bias.astype(dtype))  # (..., V)


def causal_mask_bias(
    decoder_mask: npt.NDArray[np.integer[Any]], dtype: type[np.floating[Any]]
) -> Array:
    """(B, T, T): 0 where query i may see key j (j <= i and the key is not padding), the
    dtype's most negative value elsewhere, as HF's eager attention adds it."""
    seq = decoder_mask.shape[1]
    causal = np.tril(np.ones((seq, seq), dtype=bool))  # (T, T)
    visible = causal[None, :, :] & (decoder_mask[:, None, :] == 1)  # (B, T, T)
    bias: Array = np.where(visible, dtype(0), np.finfo(dtype).min).astype(dtype)
    return bias


def decoder_layer(
    tensors: Tensors,
    config: Mapping[str, Any],
    index: int,
    hidden: Array,
    self_bias: Array,
    memory: Array,
    cross_bias: Array,
) -> Array:
    """HF ``BertLayer`` with ``is_decoder`` and ``add_cross_attention``: causal
    self-attention block, cross-attention block over ``memory`` (B, S, H), feed-forward."""
    prefix = f"encoder.layer.{index}"
    attended = attention_block(tensors, config, prefix + ".attention", hidden, hidden, self_bias)
    crossed = attention_block(
        tensors, config, prefix + ".crossattention", attended, memory, cross_bias
    )  # (B, T, H)
    return feed_forward(tensors, config, prefix, crossed)  # (B, T, H)


def decoder_forward(
    tensors: Tensors,
    config: Mapping[str, Any],
    decoder_input_ids: npt.ArrayLike,
    encoder_hidden_states: npt.ArrayLike,
    encoder_attention_mask: npt.ArrayLike | None = None,
    decoder_attention_mask: npt.ArrayLike | None = None,
    *,
    dtype: type[np.floating[Any]] = np.float32,
) -> dict[str, Any]:
    """The decoder of an ``EncoderDecoderModel`` on ``decoder_input_ids`` (B, T), attending
    to ``encoder_hidden_states`` (B, S, H_enc). ``tensors``: the decoder's, by the core's
    names (``decoder.bert.`` and ``decoder.`` stripped: ``embeddings.*``,
    ``encoder.layer.*``, ``cls.predictions.*``, and ``enc_to_dec_proj.*`` when the
    encoder's width differs). Returns ``logits`` (B, T, V) and ``last_hidden_state``.
    Positions start at 0; token types are 0 (HF's decoder passes none)."""
    ids = _ids(decoder_input_ids, "decoder_input_ids", None)
    memory = np.asarray(encoder_hidden_states).astype(dtype)  # (B, S, H_enc)
    if memory.ndim != 3 or memory.shape[0] != ids.shape[0]:
        raise InputError(f"encoder_hidden_states must be (B, S, H), got {memory.shape}")
    source_mask = (
        np.ones(memory.shape[:2], dtype=np.int64)
        if encoder_attention_mask is None
        else np.asarray(encoder_attention_mask)
    )
    target_mask = (
        np.ones_like(ids)
        if decoder_attention_mask is None
        else _ids(decoder_attention_mask, "decoder_attention_mask", ids)
    )
    if ids.min(initial=0) < 0 or ids.max(initial=0) >= config["vocab_size"]:
        raise InputError(f"decoder_input_ids must lie in [0, {config['vocab_size']})")
    if ids.shape[1] > config["max_position_embeddings"]:
        raise InputError("decoder_input_ids are longer than max_position_embeddings")
    if "enc_to_dec_proj.weight" in tensors:
        weight = _param(tensors, "enc_to_dec_proj.weight", dtype)
        memory = linear(memory, weight, _param(tensors, "enc_to_dec_proj.bias", dtype))
    cross_bias = (1 - source_mask.astype(dtype)) * np.finfo(dtype).min  # (B, S)
    self_bias = causal_mask_bias(target_mask, dtype)  # (B, T, T)
    hidden = embeddings(tensors, config, ids, np.zeros_like(ids), dtype)  # (B, T, H)
    for index in range(config["num_hidden_layers"]):
        hidden = decoder_layer(tensors, config, index, hidden, self_bias, memory, cross_bias)
    return {"logits": lm_head(tensors, config, hidden), "last_hidden_state": hidden}


def _param(tensors: Tensors, name: str, dtype: type[np.floating[Any]]) -> Array:
    return tensors[name].astype(dtype, copy=False)


def _layer_norm_named(tensors: Tensors, prefix: str, x: Array, config: Mapping[str, Any]) -> Array:
    weight = _param(tensors, prefix + ".weight", x.dtype.type)
    bias = _param(tensors, prefix + ".bias", x.dtype.type)
    return layer_norm(x, weight, bias, config["layer_norm_eps"])


def _ids(
    values: npt.ArrayLike, name: str, like: npt.NDArray[np.integer[Any]] | None
) -> npt.NDArray[np.int64]:
    array = np.asarray(values)
    if array.dtype.kind not in "iub":
        raise InputError(f"{name} must be an integer array, got dtype {array.dtype}")
    if array.ndim != 2:
        raise InputError(f"{name} must be 2-D (batch, seq), got shape {array.shape}")
    if like is not None and array.shape != like.shape:
        raise InputError(f"{name} has shape {array.shape}, input_ids {like.shape}")
    return array.astype(np.int64)
