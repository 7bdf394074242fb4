"""The model families, as the Rust core states them (``rust/models/families.rs``).

One table names each family's ``config.json`` fields, tensors and heads: BERT, DistilBERT,
ELECTRA and the BERT decoder of ``EncoderDecoderModel``. The core translates every family to
BERT's names; the Python layer reads the table for what it runs itself (the classifier heads,
the prefixes of task and encoder-decoder checkpoints).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from oxiformer import _core

__all__ = [
    "base_prefixes",
    "canonical_tensor_name",
    "decoder_family",
    "encoder_decoder_keys",
    "encoder_decoder_sections",
    "encoder_family",
    "encoder_namespaces",
    "family_named",
    "lm_head_prefix",
    "table",
]


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    """``{"encoders": [...], "decoders": [...], "encoder_namespaces": [...]}``."""
    families: dict[str, Any] = _core.families()
    return families


def encoder_family(raw_config: Mapping[str, Any]) -> dict[str, Any]:
    """The entry of a ``config.json``'s ``model_type`` (BERT's when absent or unknown)."""
    model_type = raw_config.get("model_type")
    encoders: list[dict[str, Any]] = table()["encoders"]
    for family in encoders:
        if model_type in family["model_types"]:
            return family
    return encoders[0]


def family_named(name: str) -> dict[str, Any]:
    """The encoder family called ``name`` (``"bert"``, ``"distilbert"``, ``"electra"``)."""
    for family in table()["encoders"]:
        if family["name"] == name:
            found: dict[str, Any] = family
            return found
    raise KeyError(name)


def decoder_family() -> dict[str, Any]:
    """The BERT decoder, and how ``EncoderDecoderModel`` nests it beside its encoder."""
    decoder: dict[str, Any] = table()["decoders"][0]
    return decoder


def lm_head_prefix() -> str:
    """What the LM head's tensor names start with (``"cls."``)."""
    decoder_matrix: str = decoder_family()["lm_head"]["decoder"]
    return decoder_matrix.split(".")[0] + "."


def encoder_decoder_keys() -> tuple[str, str]:
    """The keys of an ``EncoderDecoderModel`` config's encoder and decoder sections
    (``"encoder"``, ``"decoder"``: its tensor prefixes without the dot)."""
    family = decoder_family()
    return family["encoder_prefix"].rstrip("."), family["decoder_prefix"].rstrip(".")


def encoder_decoder_sections(
    raw_config: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The encoder and decoder sections of an ``EncoderDecoderModel`` config, or None when
    it does not have both."""
    encoder, decoder = (raw_config.get(key) for key in encoder_decoder_keys())
    if isinstance(encoder, dict) and isinstance(decoder, dict):
        return encoder, decoder
    return None


@lru_cache(maxsize=1)
def base_prefixes() -> tuple[str, ...]:
    """Prefixes of the base model inside task checkpoints (``bert.``, ``electra.``, ...)."""
    return tuple(family["base_prefix"] for family in table()["encoders"])


@lru_cache(maxsize=1)
def encoder_namespaces() -> tuple[str, ...]:
    """First components of the names an encoder owns (``embeddings.``, ``encoder.``, ...)."""
    return tuple(table()["encoder_namespaces"])


def canonical_tensor_name(stored_name: str) -> str:
    """The BERT name of a stored tensor (base prefix stripped, other families translated)."""
    return _core.canonical_tensor_name(stored_name)
