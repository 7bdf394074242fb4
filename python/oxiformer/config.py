"""Model configuration, read from a Hugging Face ``config.json``.

:func:`read_config_json` returns the file as written (for ``id2label`` and other fields the
encoder does not need); :func:`load_config` returns the normalized encoder configuration,
validated by the Rust core (``rust/config.rs``), so Python and Rust agree on defaults and
errors. Other families' configurations (DistilBERT, ELECTRA) are translated to BERT's field
names by the core's family table (``rust/models/families.rs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from oxiformer import _core
from oxiformer._files import read_json
from oxiformer._types import PathLike
from oxiformer.errors import ConfigError
from oxiformer.quantize import parse_quantization_config

__all__ = ["config_path", "load_config", "read_config_json", "to_bert_fields"]


def config_path(model_dir_or_file: PathLike) -> Path:
    """``config.json`` inside a model directory, or the file itself."""
    path = Path(model_dir_or_file)
    return path / "config.json" if path.is_dir() else path


def read_config_json(model_dir_or_file: PathLike) -> dict[str, Any]:
    """The configuration as written in ``config.json`` (a model directory or the file)."""
    path = config_path(model_dir_or_file)
    raw = read_json(path, ConfigError)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object, found {type(raw).__name__}")
    return raw


def load_config(model_dir_or_file: PathLike) -> dict[str, Any]:
    """The normalized, validated encoder configuration of a model.

    Keys: ``vocab_size``, ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
    ``intermediate_size``, ``hidden_act`` (``"gelu"``, ``"gelu_tanh"`` or ``"relu"``),
    ``max_position_embeddings``, ``type_vocab_size``, ``layer_norm_eps`` and
    ``position_embedding_type`` (``"absolute"`` or ``"sinusoidal"``). Missing fields take
    Hugging Face's defaults; an invalid configuration raises :class:`ConfigError`. An int8
    model also has ``quantization_config`` (see :mod:`oxiformer.quantize`).
    """
    path = config_path(model_dir_or_file)
    raw = read_config_json(path)
    config: dict[str, Any] = _core.EncoderConfig(raw, str(path)).to_dict()
    if raw.get("quantization_config") is not None:
        config["quantization_config"] = parse_quantization_config(
            raw["quantization_config"], str(path)
        )
    return config


def to_bert_fields(raw: Mapping[str, Any], source: str = "config.json") -> dict[str, Any]:
    """``raw`` with its family's field names translated to BERT's (the core's family table);
    BERT configurations come back unchanged.

    DistilBERT has no token types (``type_vocab_size`` 0), a LayerNorm epsilon of 1e-12 and
    either learned or sinusoidal (``sinusoidal_pos_embds``) positions; ELECTRA keeps its
    ``embedding_size`` (128 when missing).
    """
    translated: dict[str, Any] = _core.canonical_config(dict(raw), source)
    return translated
