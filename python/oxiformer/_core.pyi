# Hand-written stubs of the Rust extension (rust/py/), checked against it by
# `python -m mypy.stubtest oxiformer._core` (.ci/run). PyO3 classes take their arguments in
# `__new__`.

from collections.abc import Callable, Mapping
from typing import Any, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Self

__all__ = [
    "DECODER_QUANTIZABLE",
    "MAX_ACTIVATION_BITS",
    "QUANTIZABLE",
    "Decoder",
    "DecoderConfig",
    "DecoderMemory",
    "DecoderState",
    "Dense",
    "EncodeOptions",
    "Encoder",
    "EncoderConfig",
    "Encoding",
    "LmHead",
    "NormalizerOptions",
    "SpecialTokens",
    "Tokenizer",
    "canonical_config",
    "canonical_tensor_name",
    "decoder_tensors",
    "expected_tensors",
    "families",
    "get_num_threads",
    "lm_head_tensors",
    "max_activation_bits",
    "max_num_threads",
    "set_num_threads",
    "simd_info",
    "sinusoidal_positions",
]
# (last_hidden_state, pooler_output, hidden_states)
_ForwardOutput = tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.float32] | None,
    list[npt.NDArray[np.float32]] | None,
]

def set_num_threads(num_threads: int) -> None: ...
def get_num_threads() -> int: ...
def max_num_threads() -> int: ...
def simd_info() -> dict[str, Any]:
    """The SIMD paths in use (``fp32``: portable, avx2, avx512 or neon; ``int8``: portable,
    avx2, avxvnni, avx512vnni, neon or neondot), the CPU's ``features``, the ``available``
    paths and the ``forced`` value of ``OXIFORMER_SIMD``. Raises ConfigError when
    ``OXIFORMER_SIMD`` asks for a path this CPU lacks."""

@final
class EncoderConfig:
    """An encoder's configuration (``config.json`` text or dict, any family), validated;
    BERT's field names."""

    def __new__(cls, config: str | Mapping[str, Any], source: str = "config.json") -> Self: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def hidden_size(self) -> int: ...
    @property
    def num_hidden_layers(self) -> int: ...
    @property
    def num_attention_heads(self) -> int: ...
    @property
    def intermediate_size(self) -> int: ...
    @property
    def max_position_embeddings(self) -> int: ...
    def to_dict(self) -> dict[str, Any]: ...

@final
class DecoderConfig:
    """The ``decoder`` section of an ``EncoderDecoderModel``'s configuration, validated."""

    def __new__(cls, config: str | Mapping[str, Any], source: str = "config.json") -> Self: ...
    @property
    def model(self) -> EncoderConfig: ...
    @property
    def tie_word_embeddings(self) -> bool: ...

def expected_tensors(
    config: EncoderConfig,
    with_pooler: bool = False,
    quantization: Mapping[str, Any] | None = None,
) -> dict[str, tuple[int, ...]]: ...
def max_activation_bits(in_features: int) -> int: ...

QUANTIZABLE: tuple[str, ...]
MAX_ACTIVATION_BITS: int

def sinusoidal_positions(num_positions: int, dim: int) -> npt.NDArray[np.float32]: ...
def families() -> dict[str, Any]: ...
def canonical_config(config: Mapping[str, Any], source: str = "config.json") -> dict[str, Any]: ...
def canonical_tensor_name(name: str) -> str: ...
def lm_head_tensors(
    config: EncoderConfig, bits: Mapping[str, int] | None = None
) -> dict[str, tuple[int, ...]]: ...

@final
class Dense:
    def __new__(
        cls,
        weight: npt.NDArray[np.float32],
        bias: npt.NDArray[np.float32],
        activation: str | None = None,
        name: str = "dense",
    ) -> Self: ...
    @property
    def in_features(self) -> int: ...
    @property
    def out_features(self) -> int: ...
    def forward(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...

@final
class LmHead:
    def __new__(
        cls,
        config: EncoderConfig,
        tensors: Mapping[str, npt.NDArray[Any]],
        bits: Mapping[str, int] | None = None,
        copied: Callable[[npt.NDArray[Any]], object] | None = None,
    ) -> Self: ...
    def forward(self, hidden: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...

@final
class Encoder:
    def __new__(
        cls,
        config: EncoderConfig,
        tensors: Mapping[str, npt.NDArray[Any]],
        with_pooler: bool = False,
        quantization: Mapping[str, Any] | None = None,
        copied: Callable[[npt.NDArray[Any]], object] | None = None,
    ) -> Self: ...
    @property
    def config(self) -> EncoderConfig: ...
    @property
    def has_pooler(self) -> bool: ...
    def forward(
        self,
        input_ids: npt.NDArray[np.int64],
        attention_mask: npt.NDArray[np.int64],
        token_type_ids: npt.NDArray[np.int64],
        output_hidden_states: bool = False,
    ) -> _ForwardOutput: ...
    def forward_packed(
        self,
        input_ids: npt.NDArray[np.int64],
        token_type_ids: npt.NDArray[np.int64],
        lengths: npt.NDArray[np.int64],
        output_hidden_states: bool = False,
    ) -> _ForwardOutput: ...
    def input_peaks(
        self,
        input_ids: npt.NDArray[np.int64],
        token_type_ids: npt.NDArray[np.int64],
        lengths: npt.NDArray[np.int64],
    ) -> list[npt.NDArray[np.float32]]: ...

def decoder_tensors(
    config: DecoderConfig,
    memory_size: int,
    quantization: Mapping[str, int] | None = None,
) -> dict[str, tuple[int, ...]]: ...

DECODER_QUANTIZABLE: tuple[str, ...]

@final
class DecoderMemory:
    @property
    def batch(self) -> int: ...

@final
class DecoderState:
    @property
    def rows(self) -> int: ...
    def __len__(self) -> int: ...
    def step(
        self,
        ids: npt.NDArray[np.int64],
        decoder_attention_mask: npt.NDArray[np.int64] | None = None,
        all_positions: bool = False,
    ) -> npt.NDArray[np.float32]: ...
    def reorder(self, rows: npt.NDArray[np.int64]) -> None: ...
    def reset(self) -> None: ...

@final
class Decoder:
    def __new__(
        cls,
        config: DecoderConfig,
        tensors: Mapping[str, npt.NDArray[Any]],
        memory_size: int,
        quantization: Mapping[str, int] | None = None,
        copied: Callable[[npt.NDArray[Any]], object] | None = None,
    ) -> Self: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def max_position_embeddings(self) -> int: ...
    def memory(
        self, encoder_hidden: npt.NDArray[np.float32], attention_mask: npt.NDArray[np.int64]
    ) -> DecoderMemory: ...
    def start(self, memory: DecoderMemory, num_beams: int, capacity: int) -> DecoderState: ...

@final
class Encoding:
    @property
    def ids(self) -> list[int]: ...
    @property
    def type_ids(self) -> list[int]: ...
    @property
    def attention_mask(self) -> list[int]: ...
    @property
    def special_tokens_mask(self) -> list[int]: ...
    @property
    def offsets(self) -> list[tuple[int, int]]: ...
    @property
    def sequence_ids(self) -> list[int | None]: ...
    @property
    def tokens(self) -> list[str]: ...
    def __len__(self) -> int: ...

@final
class EncodeOptions:
    def __new__(
        cls,
        add_special_tokens: bool = True,
        truncation: str | None = None,
        max_length: int | None = None,
        padding: str | None = None,
        pad_to_multiple_of: int | None = None,
    ) -> Self: ...

@final
class SpecialTokens:
    @property
    def unk(self) -> str: ...
    @property
    def sep(self) -> str: ...
    @property
    def cls(self) -> str: ...
    @property
    def pad(self) -> str: ...
    @property
    def mask(self) -> str: ...

@final
class NormalizerOptions:
    @property
    def clean_text(self) -> bool: ...
    @property
    def handle_chinese_chars(self) -> bool: ...
    @property
    def strip_accents(self) -> bool | None: ...
    @property
    def lowercase(self) -> bool: ...

@final
class Tokenizer:
    @staticmethod
    def from_vocab(
        path: str,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        handle_chinese_chars: bool = True,
        clean_text: bool = True,
    ) -> Tokenizer: ...
    @staticmethod
    def from_dir(path: str) -> Tokenizer: ...
    @staticmethod
    def from_json(text: str) -> Tokenizer: ...
    def save(self, path: str) -> None: ...
    def encode(
        self, text: str, pair: str | None = None, add_special_tokens: bool = True
    ) -> Encoding: ...
    def encode_batch(
        self,
        texts: list[str],
        pairs: list[str | None] | None = None,
        add_special_tokens: bool = True,
    ) -> list[Encoding]: ...
    def encode_arrays(
        self,
        texts: list[str],
        pairs: list[str | None] | None = None,
        options: EncodeOptions | None = None,
    ) -> dict[str, npt.NDArray[np.int64]]: ...
    def count_tokens(
        self,
        texts: list[str],
        pairs: list[str | None] | None = None,
        add_special_tokens: bool = True,
    ) -> npt.NDArray[np.int64]: ...
    def tokenize(self, text: str) -> list[str]: ...
    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str: ...
    def token_to_id(self, token: str) -> int | None: ...
    def id_to_token(self, id: int) -> str | None: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def model_max_length(self) -> int | None: ...
    @property
    def special_tokens(self) -> SpecialTokens: ...
    @property
    def normalizer(self) -> NormalizerOptions: ...
    def num_special_tokens_to_add(self, pair: bool) -> int: ...
