"""Writing models in the oxiformer format: ``config.json``, tokenizer files, ``weights.npz``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

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
    out = Path(directory)
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
    save_npz(out / "weights.npz", tensors)
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    if tokenizer is not None:
        tokenizer.save(out)
    return out
