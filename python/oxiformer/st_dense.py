"""sentence-transformers' ``Dense`` module: a linear layer and an activation on the pooled
sentence embedding (LaBSE, distiluse-base-multilingual-cased, ...), after ``Pooling`` and
before ``Normalize``.

Its directory (``2_Dense/``) holds ``config.json`` (``in_features``, ``out_features``,
``bias``, ``activation_function`` as a PyTorch class path) and ``model.safetensors`` (or
``pytorch_model.bin``) with ``linear.weight`` ``(out, in)`` and ``linear.bias``. The layer
runs on the encoder's GEMM (``_core.Dense``): the same bits on every CPU, as the rest of the
pipeline.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from oxiformer import _core
from oxiformer._files import atomic_write, read_json, write_text
from oxiformer._types import FloatArray
from oxiformer.errors import ConfigError, WeightsError
from oxiformer.weight_files import read_tensors
from oxiformer.weights import float_tensor

__all__ = ["DENSE_TYPE", "DenseModule"]

DENSE_TYPE = "sentence_transformers.models.Dense"

#: sentence-transformers' ``activation_function`` (the PyTorch class) -> ``_core.Dense``'s.
ACTIVATIONS: dict[str, str | None] = {
    "torch.nn.modules.activation.Tanh": "tanh",
    "torch.nn.modules.linear.Identity": None,
    "torch.nn.modules.activation.ReLU": "relu",
    "torch.nn.modules.activation.GELU": "gelu",
}
_TORCH_NAMES = {value: key for key, value in ACTIVATIONS.items()}

_WEIGHTS = "model.safetensors"
_TORCH_WEIGHTS = "pytorch_model.bin"


def _count(config: dict[str, Any], key: str, source: Path) -> int:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{source}: '{key}' must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class DenseModule:
    """``y = act(x W^T + b)`` on sentence embeddings ``x (n, in_features)``."""

    weight: FloatArray
    """(out_features, in_features)"""
    bias: FloatArray | None
    """(out_features,), or None (``"bias": false``)"""
    activation: str | None
    """``"tanh"``, ``"relu"``, ``"gelu"`` (exact erf) or None"""
    source: str = field(default="", compare=False)
    """The directory it was loaded from, for errors."""
    layer: _core.Dense = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        out = self.weight.shape[0]
        bias = self.bias if self.bias is not None else np.zeros(out, np.float32)
        layer = _core.Dense(self.weight, bias, self.activation, "linear")
        object.__setattr__(self, "layer", layer)

    @property
    def in_features(self) -> int:
        return int(self.weight.shape[1])

    @property
    def out_features(self) -> int:
        return int(self.weight.shape[0])

    @classmethod
    def load(cls, directory: Path) -> DenseModule:
        """The module saved in ``directory`` (``config.json`` and ``model.safetensors`` or
        ``pytorch_model.bin``)."""
        source = directory / "config.json"
        config = read_json(source, ConfigError)
        if not isinstance(config, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        inputs = _count(config, "in_features", source)
        outputs = _count(config, "out_features", source)
        bias = config.get("bias", True)
        if not isinstance(bias, bool):
            raise ConfigError(f"{source}: 'bias' must be true or false, got {bias!r}")
        name = config.get("activation_function", "torch.nn.modules.activation.Tanh")
        if name not in ACTIVATIONS:
            raise ConfigError(
                f"{source}: unsupported activation_function {name!r} "
                f"(supported: {', '.join(ACTIVATIONS)})"
            )
        for key in ("module_input_name", "module_output_name"):
            if config.get(key) not in (None, "sentence_embedding"):
                raise ConfigError(
                    f"{source}: {key} {config[key]!r} is not supported (a Dense module on "
                    "the sentence embedding only)"
                )
        weights = directory / _WEIGHTS
        if not (weights.exists() or weights.is_symlink()):
            pickled = directory / _TORCH_WEIGHTS
            if not (pickled.exists() or pickled.is_symlink()):
                raise WeightsError(f"{directory}: no weights ({_WEIGHTS} or {_TORCH_WEIGHTS})")
            weights = pickled
        tensors = read_tensors(weights)
        expected: dict[str, tuple[int, ...]] = {"linear.weight": (outputs, inputs)}
        if bias:
            expected["linear.bias"] = (outputs,)
        extra = sorted(set(tensors) - set(expected))
        if extra:
            raise WeightsError(f"{weights}: unexpected tensor(s) {', '.join(extra)}")
        where = str(weights)
        values = {key: float_tensor(tensors, key, shape, where) for key, shape in expected.items()}
        weight, bias_values = values["linear.weight"], values.get("linear.bias")
        return cls(weight, bias_values, ACTIVATIONS[name], str(directory))

    def __call__(self, embeddings: FloatArray) -> FloatArray:
        """``(n, in_features) -> (n, out_features)``."""
        x = np.ascontiguousarray(embeddings, dtype=np.float32)
        out: FloatArray = self.layer.forward(x)
        return out

    def save(self, directory: Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (created)."""
        directory.mkdir(exist_ok=True)
        config = {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
            "activation_function": _TORCH_NAMES[self.activation],
        }
        write_text(directory / "config.json", json.dumps(config, indent=2))
        tensors = {"linear.weight": self.weight}
        if self.bias is not None:
            tensors["linear.bias"] = self.bias
        _save_safetensors(directory / _WEIGHTS, tensors)


def _save_safetensors(path: Path, tensors: dict[str, FloatArray]) -> None:
    """float32 tensors in the safetensors format (little-endian, C order)."""
    header: dict[str, Any] = {}
    chunks, offset = [], 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
        span = [offset, offset + len(raw)]
        header[name] = {"dtype": "F32", "shape": list(array.shape), "data_offsets": span}
        chunks.append(raw)
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # data aligned to 8 bytes, as the format advises
    with atomic_write(path) as out:
        out.write(struct.pack("<Q", len(encoded)))
        out.write(encoded)
        for chunk in chunks:
            out.write(chunk)
