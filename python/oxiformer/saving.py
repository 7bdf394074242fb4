"""Writing models in the oxiformer format: ``config.json``, tokenizer files, ``weights.npz``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from oxiformer._checks import path as checked_path
from oxiformer._files import write_text
from oxiformer.errors import ConfigError
from oxiformer.weights import save_npz

if TYPE_CHECKING:
    from oxiformer.model import Encoder, PathLike
    from oxiformer.tokenizer import Tokenizer

__all__ = ["save_model"]

#: Our canonical activation names -> names Hugging Face also reads.
_HF_ACTIVATION = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}


def save_model(
    directory: PathLike,
    encoder: Encoder,
    tokenizer: Tokenizer | None,
    head_tensors: Mapping[str, npt.NDArray[np.float32]],
    extra_config: Mapping[str, Any] | None = None,
    architecture: str = "BertModel",
) -> Path:
    """Write ``directory``: config.json (the encoder's configuration in HF field names plus
    ``extra_config``, e.g. ``id2label``), the tokenizer's files and ``weights.npz`` (the
    encoder's tensors by HF name plus ``head_tensors``)."""
    out = checked_path("directory", directory)
    source = Path(encoder.source)
    source_dir = source.parent if source.exists() else None
    if source_dir is not None and out.is_dir() and out.samefile(source_dir):
        raise ConfigError(
            f"{out}: is the directory this model was loaded from; save to another directory "
            "(writing over a model's own files would destroy them)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{out}: cannot create the output directory ({err})") from err
    config: dict[str, Any] = {"model_type": "bert", "architectures": [architecture]}
    config.update(extra_config or {})
    config.update(encoder.config)
    config["hidden_act"] = _HF_ACTIVATION.get(encoder.config["hidden_act"], "gelu")
    tensors = encoder.state_dict()
    tensors.update(head_tensors)
    # Every file goes through a temporary file and a rename: a failure leaves each file
    # either as it was or complete.
    save_npz(out / "weights.npz", tensors)
    write_text(out / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    if tokenizer is not None:
        tokenizer.save(out)
    return out
