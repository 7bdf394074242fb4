"""oxiformer: CPU-only Transformer inference, with a Rust core.

Nothing heavy happens at import: models and tokenizers load on request.
"""

from __future__ import annotations

from oxiformer._core import get_num_threads, set_num_threads
from oxiformer.errors import (
    ConfigError,
    InputError,
    OxiformerError,
    TokenizerError,
    WeightsError,
)
from oxiformer.tokenizer import Encoding, Tokenizer

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Encoding",
    "InputError",
    "OxiformerError",
    "Tokenizer",
    "TokenizerError",
    "WeightsError",
    "__version__",
    "get_num_threads",
    "set_num_threads",
]
