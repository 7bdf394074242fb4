"""Writing models in the oxiformer format: ``config.json``, tokenizer files, ``weights.npz``.

It takes what a model is made of (configuration, tensors, tokenizer), not the model classes,
which import it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy.typing as npt

from oxiformer._checks import path as checked_path
from oxiformer._files import write_text
from oxiformer._types import PathLike
from oxiformer.errors import ConfigError
from oxiformer.tokenizer import Tokenizer
from oxiformer.weights import save_npz

__all__ = ["save_files", "save_model"]

#: Our canonical activation names -> names Hugging Face also reads.
_HF_ACTIVATION = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}


def save_model(
    directory: PathLike,
    *,
    config: Mapping[str, Any],
    tensors: Mapping[str, npt.NDArray[Any]],
    source: str,
    tokenizer: Tokenizer | None,
    extra_config: Mapping[str, Any] | None = None,
    architecture: str = "BertModel",
) -> Path:
    """Write ``directory``: config.json (the encoder's normalized ``config`` in HF field names
    plus ``extra_config``, e.g. ``id2label``), the tokenizer's files and ``weights.npz``
    (``tensors`` by HF name). ``source``: the weights file the model was loaded from, whose
    directory is refused as the destination."""
    written: dict[str, Any] = {"model_type": "bert", "architectures": [architecture]}
    written.update(extra_config or {})
    written.update(config)
    written["hidden_act"] = _HF_ACTIVATION.get(config["hidden_act"], "gelu")
    return save_files(directory, written, tensors, source, tokenizer)


def save_files(
    directory: PathLike,
    config: Mapping[str, Any],
    tensors: Mapping[str, npt.NDArray[Any]],
    source: str,
    tokenizer: Tokenizer | None,
    extra_files: Mapping[str, str] | None = None,
) -> Path:
    """Write ``directory``: ``weights.npz`` (``tensors``), ``config.json`` (``config``), the
    tokenizer's files and ``extra_files`` (``{name: text}``). ``source``: the weights file the
    model was loaded from, whose directory is refused as the destination."""
    out = checked_path("directory", directory)
    source_path = Path(source)
    source_dir = source_path.parent if source_path.exists() else None
    if source_dir is not None and out.is_dir() and out.samefile(source_dir):
        raise ConfigError(
            f"{out}: is the directory this model was loaded from; save to another directory "
            "(writing over a model's own files would destroy them)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{out}: cannot create the output directory ({err})") from err
    # Every file goes through a temporary file and a rename: a failure leaves each file
    # either as it was or complete.
    save_npz(out / "weights.npz", tensors)
    write_text(out / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    for name, text in (extra_files or {}).items():
        write_text(out / name, text)
    if tokenizer is not None:
        tokenizer.save(out)
    return out
