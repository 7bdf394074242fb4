"""Model configuration, read from a Hugging Face ``config.json``.

:func:`read_config_json` returns the file as written (for ``id2label`` and other fields the
encoder does not need); :func:`load_config` returns the normalized encoder configuration,
validated by the Rust core (``rust/config.rs``), so Python and Rust agree on defaults and
errors. DistilBERT configurations are translated to BERT field names first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

from oxiformer import _core
from oxiformer._files import read_json
from oxiformer.errors import ConfigError
from oxiformer.quantize import parse_quantization_config

__all__ = ["config_path", "load_config", "read_config_json", "to_bert_fields"]

PathLike = Union[str, "os.PathLike[str]"]

#: DistilBERT field name -> BERT field name (``transformers.DistilBertConfig``).
_DISTILBERT_FIELDS = {
    "vocab_size": "vocab_size",
    "max_position_embeddings": "max_position_embeddings",
    "dim": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "hidden_dim": "intermediate_size",
    "activation": "hidden_act",
}

#: ``transformers.DistilBertConfig`` defaults, for fields missing from config.json.
_DISTILBERT_DEFAULTS = {
    "vocab_size": 30522,
    "max_position_embeddings": 512,
    "dim": 768,
    "n_layers": 6,
    "n_heads": 12,
    "hidden_dim": 3072,
    "activation": "gelu",
}


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
    config: dict[str, Any] = _core.parse_config(to_bert_fields(raw, str(path)), str(path))
    if raw.get("quantization_config") is not None:
        config["quantization_config"] = parse_quantization_config(
            raw["quantization_config"], str(path)
        )
    return config


def to_bert_fields(raw: Mapping[str, Any], source: str = "config.json") -> dict[str, Any]:
    """``raw`` with DistilBERT field names translated to BERT's; other configs unchanged.

    DistilBERT has no token types (``type_vocab_size`` 0), a LayerNorm epsilon of 1e-12 and
    either learned or sinusoidal (``sinusoidal_pos_embds``) positions.
    """
    if raw.get("model_type") != "distilbert":
        return dict(raw)
    bert = {
        bert_name: raw.get(name, _DISTILBERT_DEFAULTS[name])
        for name, bert_name in _DISTILBERT_FIELDS.items()
    }
    sinusoidal = raw.get("sinusoidal_pos_embds", False)
    if not isinstance(sinusoidal, bool):
        raise ConfigError(
            f"{source}: 'sinusoidal_pos_embds' must be true or false, got {sinusoidal!r}"
        )
    bert["position_embedding_type"] = "sinusoidal" if sinusoidal else "absolute"
    bert["type_vocab_size"] = 0
    bert["layer_norm_eps"] = 1e-12
    return bert
