"""The exception hierarchy of oxiformer.

The Rust core maps its one error enum onto these classes (``rust/py/mod.rs``),
so an error raised in Rust and one raised by the Python layer are the same type.
Every class is also a ``ValueError``: bad files and bad inputs are bad values.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DependencyError",
    "InputError",
    "OxiformerError",
    "TokenizerError",
    "WeightsError",
]


class OxiformerError(Exception):
    """Base class of every error oxiformer raises on purpose."""


class ConfigError(OxiformerError, ValueError):
    """A model configuration (``config.json`` and friends) that cannot be used."""


class WeightsError(OxiformerError, ValueError):
    """Weight files or tensors that are missing, malformed or of the wrong shape."""


class InputError(OxiformerError, ValueError):
    """Model inputs (ids, masks, shapes, dtypes) the model cannot run on."""


class TokenizerError(OxiformerError, ValueError):
    """Tokenizer files that cannot be loaded, or text that cannot be encoded."""


class DependencyError(OxiformerError, ImportError):
    """An optional dependency (a pip extra such as ``oxiformer[ray]``) that is not installed."""
