"""Model API over the Rust encoder.

``Encoder`` is HF ``BertModel`` without PyTorch: load an HF model directory
(``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``) or an oxiformer one
(``config.json`` + ``weights.npz``), call it on id arrays, get numpy arrays back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer import _core
from oxiformer._checks import flag, optional_flag
from oxiformer._types import FloatArray, IntArray, PathLike
from oxiformer.config import config_path, read_config_json
from oxiformer.errors import ConfigError, InputError, WeightsError
from oxiformer.pretrained import model_dir
from oxiformer.quantize import (
    DEFAULT_ATTENTION,
    calibrate,
    default_activation_bits,
    parse_quantization_config,
    quantize_tensors,
    quantized_weight_names,
)
from oxiformer.quantize import quantization_config as make_quantization_config
from oxiformer.weight_files import check_unchanged, file_stamp
from oxiformer.weights import (
    find_weights,
    has_pooler,
    owned,
    read_tensors,
    release_pages,
    select_encoder_tensors,
)

__all__ = ["MAX_BATCH_TOKENS", "Encoder", "EncoderOutput", "PackedEncoderOutput", "pack"]


#: Most tokens the text APIs (``SentenceEncoder.encode``, ``predict``) tokenize and run at
#: once, whatever the ``batch_size``: a huge batch runs in pieces of this size, with the same
#: results (every sequence is computed on its own), so its memory stays bounded. The Rust
#: encoder bounds its scratch space the same way (``rust/bert.rs``, ``WORKSPACE_BYTES``).
MAX_BATCH_TOKENS = 1 << 16


@dataclass(frozen=True)
class EncoderOutput:
    """What the encoder returns (HF ``BaseModelOutputWithPooling`` names)."""

    last_hidden_state: FloatArray
    """(batch, seq, hidden) float32."""
    pooler_output: FloatArray | None = None
    """(batch, hidden): dense + tanh on the first token, when the model has a pooler."""
    hidden_states: tuple[FloatArray, ...] | None = None
    """The embeddings output, then each layer's output, when asked for."""


@dataclass(frozen=True)
class PackedEncoderOutput:
    """The encoder's output on packed sequences: every sequence's tokens back to back."""

    last_hidden_state: FloatArray
    """(total tokens, hidden) float32."""
    lengths: IntArray
    """(sequences,) tokens of each sequence."""
    pooler_output: FloatArray | None = None
    """(sequences, hidden), when the model has a pooler."""
    hidden_states: tuple[FloatArray, ...] | None = None
    """(total tokens, hidden) each: the embeddings output, then each layer's output."""

    @property
    def offsets(self) -> IntArray:
        """(sequences,) index of each sequence's first token."""
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def split(self) -> list[FloatArray]:
        """One (length, hidden) view per sequence."""
        return np.split(self.last_hidden_state, np.cumsum(self.lengths)[:-1])


def pack(
    input_ids: IntArray, attention_mask: IntArray, token_type_ids: IntArray
) -> tuple[IntArray, IntArray, IntArray]:
    """Right-padded (batch, seq) arrays -> (ids, token types, lengths) of packed sequences.

    Every mask row must be ones then zeros (right padding): positions would differ otherwise.
    """
    lengths = attention_mask.sum(axis=1).astype(np.int64)
    prefix = np.arange(attention_mask.shape[1])[None, :] < lengths[:, None]
    if not np.array_equal(attention_mask.astype(bool), prefix):
        raise InputError("packing needs right-padded rows (each mask row ones, then zeros)")
    return input_ids[prefix], token_type_ids[prefix], lengths


def _as_ids(name: str, value: Any, shape: tuple[int, ...] | None = None) -> IntArray:
    """An int64 C-contiguous (batch, seq) array from any integer array-like."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as err:  # ragged nested lists, odd objects
        raise InputError(f"{name} is not an array of integers ({err})") from err
    if array.dtype == np.bool_ and name == "attention_mask":
        array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise InputError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise InputError(f"{name} must be 2-D (batch, sequence), got shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise InputError(f"{name} has shape {array.shape}, input_ids has {shape}")
    if array.dtype.kind == "u" and array.size and int(array.max()) > np.iinfo(np.int64).max:
        raise InputError(f"{name} holds values too large for int64")
    return np.ascontiguousarray(array, dtype=np.int64)


def _as_ids_1d(name: str, value: Any, size: int | None = None) -> IntArray:
    """:func:`_as_ids` for a 1-D array (packed sequences)."""
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise InputError(f"{name} is not an array of integers ({err})") from err
    if array.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {array.shape}")
    shape = None if size is None else (1, size)
    return np.ascontiguousarray(_as_ids(name, array[None, :], shape)[0])


class Encoder:
    """A BERT-family encoder whose forward pass runs in Rust, with the GIL released."""

    def __init__(
        self,
        core: _core.Encoder,
        config: Mapping[str, Any],
        source: str,
        tensors: Mapping[str, npt.NDArray[Any]] | None = None,
    ) -> None:
        self._core = core
        self.config: dict[str, Any] = dict(config)
        self.source = source
        # In-memory tensors are kept for `state_dict`; file-backed ones are read again, if the
        # file is the one loaded (`_source_stamp`).
        self._tensors = tensors
        self._quantized_at_load = False
        self._source_stamp: tuple[Any, ...] | None = None
        # The names of `source` start with this (an encoder-decoder's `encoder.`).
        self._source_prefix = ""

    @classmethod
    def from_pretrained(
        cls,
        path: PathLike,
        *,
        with_pooler: bool | None = None,
        dtype: str | None = None,
        revision: str | None = None,
    ) -> Encoder:
        """Load a model directory: ``config.json`` plus ``weights.npz``, ``model.safetensors``,
        a ``weights/`` directory of ``.npy`` files or ``pytorch_model.bin``.

        ``with_pooler``: keep the pooler (``None``: when the checkpoint has one).
        ``dtype``: ``"int8"`` quantizes a float model at load (the same result as loading
        what ``oxiformer quantize`` writes); ``None`` runs the model as stored.
        ``revision``: a branch, tag or commit of a model id in the Hugging Face cache.
        """
        directory = model_dir(path, revision)
        with_pooler = optional_flag("with_pooler", with_pooler)
        config_source = str(config_path(directory))
        raw = read_config_json(directory)
        config = _core.EncoderConfig(raw, config_source)  # its errors first, before the weights'
        weights_path = find_weights(directory)
        stamp = file_stamp(weights_path)
        tensors = read_tensors(weights_path)
        if with_pooler is None:
            with_pooler = has_pooler(tensors)
        encoder = cls.from_tensors(
            config,
            tensors,
            with_pooler=with_pooler,
            source=str(weights_path),
            config_source=config_source,
            dtype=dtype,
            quantization_config=raw.get("quantization_config"),
        )
        encoder.release_tensors(stamp)
        return encoder

    @classmethod
    def from_tensors(
        cls,
        config: Mapping[str, Any] | _core.EncoderConfig,
        tensors: Mapping[str, npt.NDArray[Any]],
        *,
        with_pooler: bool = False,
        source: str = "<tensors>",
        config_source: str = "config",
        dtype: str | None = None,
        quantization_config: Mapping[str, Any] | None = None,
        activation_bits: Mapping[str, int] | None = None,
        word_embeddings: bool = True,
        outlier_channels: Mapping[str, int] | None = None,
        attention: str = DEFAULT_ATTENTION,
    ) -> Encoder:
        """Build from a configuration and ``{HF name: array}``; names and shapes are checked.

        ``config``: a ``config.json`` dict (any family), or one the core parsed already
        (:class:`oxiformer._core.EncoderConfig`). A ``quantization_config`` (in the dict, or
        given for a parsed configuration) describes an int8 model (int8 weights with their
        ``weight_scale``); ``dtype="int8"`` quantizes float tensors first, with
        ``activation_bits`` (``{layer: bits}``, default
        :data:`oxiformer.quantize.DEFAULT_ACTIVATION_BITS`; unlisted layers stay float32),
        ``outlier_channels`` (``{layer: count}``, default
        :data:`oxiformer.quantize.DEFAULT_OUTLIER_CHANNELS`), the word embeddings in int8
        unless ``word_embeddings`` is false, and attention's two products in int8 unless
        ``attention="float32"``.
        """
        if isinstance(config, _core.EncoderConfig):
            core_config = config
        elif isinstance(config, Mapping):
            core_config = _core.EncoderConfig(dict(config), config_source)
            if quantization_config is None:
                quantization_config = config.get("quantization_config")
        else:
            raise ConfigError(f"{config_source}: the configuration must be a mapping (a dict)")
        if not isinstance(tensors, Mapping):
            raise WeightsError(f"{source}: the tensors must be a mapping {{name: array}}")
        if activation_bits is not None and not isinstance(activation_bits, Mapping):
            raise ConfigError("activation_bits must be a mapping {layer name: bits}")
        with_pooler = flag("with_pooler", with_pooler)
        word_embeddings = flag("word_embeddings", word_embeddings)
        if dtype not in (None, "float32", "int8"):
            raise ConfigError(f"dtype must be 'float32' or 'int8', got {dtype!r}")
        normalized: dict[str, Any] = core_config.to_dict()
        layers = core_config.num_hidden_layers
        quantization: dict[str, Any] | None = None
        if quantization_config is not None:
            quantization = parse_quantization_config(quantization_config, config_source)
            if dtype == "float32":
                raise ConfigError(
                    f"{config_source}: this model is quantized to int8 (quantization_config); "
                    "load it with dtype='int8' or dtype=None"
                )
        elif dtype == "int8":
            if activation_bits is None:
                activation_bits = default_activation_bits(normalized)
            quantization = make_quantization_config(
                activation_bits, word_embeddings, outlier_channels, attention
            )
            float_expected = _core.expected_tensors(core_config, with_pooler)
            floats = select_encoder_tensors(tensors, float_expected, source)
            peaks = None
            if any(quantization["outlier_channels"].values()):
                float_core = _core.Encoder(core_config, floats, with_pooler)
                peaks = calibrate(float_core, normalized)
                del float_core
            tensors = quantize_tensors(floats, layers, quantization, peaks)
        expected = _core.expected_tensors(core_config, with_pooler, quantization)
        int8_names = quantized_weight_names(layers, quantization)
        selected = select_encoder_tensors(tensors, expected, source, int8=int8_names)
        core = _core.Encoder(core_config, selected, with_pooler, quantization, release_pages)
        if quantization is not None:
            normalized["quantization_config"] = quantization
        encoder = cls(core, normalized, source, selected)
        encoder._quantized_at_load = dtype == "int8" and quantization_config is None
        if encoder._quantized_at_load:  # kept for state_dict: no view of the file
            encoder._tensors = {name: owned(array) for name, array in selected.items()}
        return encoder

    def release_tensors(self, stamp: tuple[Any, ...] | None = None, prefix: str = "") -> None:
        """Drop the Python copy of the tensors when ``source`` holds them (``state_dict``
        reads them again from there, under ``prefix``, if ``file_stamp(source)`` still equals
        ``stamp``, taken before loading); tensors quantized at load are kept."""
        if not self._quantized_at_load:
            self._tensors = None
            self._source_stamp = stamp
            self._source_prefix = prefix

    def quantize(
        self,
        activation_bits: Mapping[str, int] | None = None,
        word_embeddings: bool = True,
        outlier_channels: Mapping[str, int] | None = None,
        attention: str = DEFAULT_ATTENTION,
    ) -> Encoder:
        """This model with its dense layers in int8 (see :mod:`oxiformer.quantize`);
        ``activation_bits``: ``{layer: bits}`` of the layers to quantize (default
        :data:`oxiformer.quantize.DEFAULT_ACTIVATION_BITS`); ``outlier_channels``:
        ``{layer: count}`` of float32 input channels (default
        :data:`oxiformer.quantize.DEFAULT_OUTLIER_CHANNELS`); ``attention``: ``"int8"``
        (attention's two products in int8 too) or ``"float32"``."""
        if self.dtype == "int8":
            raise ConfigError("this model is already quantized to int8")
        return Encoder.from_tensors(
            self.core_config,
            self.state_dict(),
            with_pooler=self.has_pooler,
            source=self.source,
            dtype="int8",
            activation_bits=activation_bits,
            word_embeddings=word_embeddings,
            outlier_channels=outlier_channels,
            attention=attention,
        )

    @property
    def dtype(self) -> str:
        """``"int8"`` when the dense layers run in int8, else ``"float32"``."""
        return "int8" if "quantization_config" in self.config else "float32"

    def state_dict(self) -> dict[str, npt.NDArray[Any]]:
        """The tensors by HF name (read again from the weights file when loaded from one);
        an int8 model's quantized weights are int8 with a float32 ``weight_scale``."""
        if self._tensors is not None:
            return dict(self._tensors)
        check_unchanged(self.source, self._source_stamp, "its tensors")
        quantization = self.config.get("quantization_config")
        expected = _core.expected_tensors(self.core_config, self.has_pooler, quantization)
        int8_names = quantized_weight_names(int(self.config["num_hidden_layers"]), quantization)
        stored: Mapping[str, npt.NDArray[Any]] = read_tensors(self.source)
        prefix = self._source_prefix
        if prefix:
            stored = {n[len(prefix) :]: a for n, a in stored.items() if n.startswith(prefix)}
        return select_encoder_tensors(stored, expected, self.source, int8=int8_names)

    @property
    def core_config(self) -> _core.EncoderConfig:
        """The configuration as the core parsed it."""
        return self._core.config

    @property
    def hidden_size(self) -> int:
        return self.core_config.hidden_size

    @property
    def has_pooler(self) -> bool:
        return self._core.has_pooler

    def __call__(
        self,
        input_ids: npt.ArrayLike,
        attention_mask: npt.ArrayLike | None = None,
        token_type_ids: npt.ArrayLike | None = None,
        output_hidden_states: bool = False,
    ) -> EncoderOutput:
        """Run the encoder on ``input_ids`` (batch, seq), int32 or int64.

        ``attention_mask`` defaults to all ones, ``token_type_ids`` to zeros. Ids outside the
        vocabulary, sequences longer than ``max_position_embeddings`` and mismatched shapes
        raise :class:`oxiformer.InputError`.
        """
        ids = _as_ids("input_ids", input_ids)
        mask = (
            np.ones_like(ids)
            if attention_mask is None
            else _as_ids("attention_mask", attention_mask, ids.shape)
        )
        types = (
            np.zeros_like(ids)
            if token_type_ids is None
            else _as_ids("token_type_ids", token_type_ids, ids.shape)
        )
        hidden_states = flag("output_hidden_states", output_hidden_states)
        last, pooled, states = self._core.forward(ids, mask, types, hidden_states)
        return EncoderOutput(
            last_hidden_state=last,
            pooler_output=pooled,
            hidden_states=None if states is None else tuple(states),
        )

    def encode_packed(
        self,
        input_ids: npt.ArrayLike,
        lengths: npt.ArrayLike,
        token_type_ids: npt.ArrayLike | None = None,
        output_hidden_states: bool = False,
    ) -> PackedEncoderOutput:
        """Run packed sequences: ``input_ids`` (total,) holds every sequence's tokens back to
        back, ``lengths`` (sequences,) their lengths. No padding is computed: attention runs
        per sequence, everything else on all tokens at once. Equals calling the encoder on the
        padded batch, at the unpadded positions (float sums may be ordered differently)."""
        ids = _as_ids_1d("input_ids", input_ids)
        sizes = _as_ids_1d("lengths", lengths)
        types = (
            np.zeros_like(ids)
            if token_type_ids is None
            else _as_ids_1d("token_type_ids", token_type_ids, ids.size)
        )
        hidden_states = flag("output_hidden_states", output_hidden_states)
        hidden, pooled, states = self._core.forward_packed(ids, types, sizes, hidden_states)
        return PackedEncoderOutput(
            last_hidden_state=hidden,
            lengths=sizes,
            pooler_output=pooled,
            hidden_states=None if states is None else tuple(states),
        )

    def __repr__(self) -> str:
        config = self.config
        return (
            f"Encoder(layers={config['num_hidden_layers']}, hidden={config['hidden_size']}, "
            f"heads={config['num_attention_heads']}, source={self.source!r})"
        )
