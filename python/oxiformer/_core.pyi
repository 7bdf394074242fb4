# Hand-written stubs of the Rust extension (rust/py/). Keep in step with it.

from collections.abc import Callable, Mapping
from typing import Any, final

import numpy as np
import numpy.typing as npt

_Config = str | Mapping[str, Any]
# (last_hidden_state, pooler_output, hidden_states)
_ForwardOutput = tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.float32] | None,
    list[npt.NDArray[np.float32]] | None,
]

def set_num_threads(num_threads: int) -> None: ...
def get_num_threads() -> int: ...
def max_num_threads() -> int: ...
def parse_config(config: _Config, source: str = "config.json") -> dict[str, Any]: ...
def expected_tensors(
    config: _Config,
    with_pooler: bool = False,
    quantization: Mapping[str, Any] | None = None,
) -> dict[str, tuple[int, ...]]: ...
def max_activation_bits(in_features: int) -> int: ...

QUANTIZABLE: tuple[str, ...]
MAX_ACTIVATION_BITS: int

def sinusoidal_positions(num_positions: int, dim: int) -> npt.NDArray[np.float32]: ...

@final
class Encoder:
    def __init__(
        self,
        config: _Config,
        tensors: Mapping[str, npt.NDArray[Any]],
        with_pooler: bool = False,
        source: str = "config.json",
        quantization: Mapping[str, Any] | None = None,
        copied: Callable[[npt.NDArray[Any]], object] | None = None,
    ) -> None: ...
    @property
    def config_json(self) -> str: ...
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
        truncation: str | None = None,
        max_length: int | None = None,
        padding: str | None = None,
        pad_to_multiple_of: int | None = None,
    ) -> list[Encoding]: ...
    def encode_arrays(
        self,
        texts: list[str],
        pairs: list[str | None] | None = None,
        add_special_tokens: bool = True,
        truncation: str | None = None,
        max_length: int | None = None,
        padding: str | None = None,
        pad_to_multiple_of: int | None = None,
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...
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
    def special_tokens(self) -> tuple[str, str, str, str, str]: ...
    @property
    def normalizer(self) -> tuple[bool, bool, bool | None, bool]: ...
    def num_special_tokens_to_add(self, pair: bool) -> int: ...
