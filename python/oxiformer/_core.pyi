# Hand-written stubs of the Rust extension (rust/py/). Keep in step with it.

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

_Config = str | Mapping[str, Any]

def set_num_threads(num_threads: int) -> None: ...
def get_num_threads() -> int: ...
def parse_config(config: _Config, source: str = "config.json") -> dict[str, Any]: ...
def expected_tensors(config: _Config, with_pooler: bool = False) -> dict[str, tuple[int, ...]]: ...
def sinusoidal_positions(num_positions: int, dim: int) -> npt.NDArray[np.float32]: ...

class Encoder:
    def __init__(
        self,
        config: _Config,
        tensors: Mapping[str, npt.NDArray[np.float32]],
        with_pooler: bool = False,
        source: str = "config.json",
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
    ) -> tuple[
        npt.NDArray[np.float32],
        npt.NDArray[np.float32] | None,
        list[npt.NDArray[np.float32]] | None,
    ]: ...
