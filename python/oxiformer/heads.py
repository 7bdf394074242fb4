"""Classifier heads, named by the family table (``oxiformer.families``).

``BertForSequenceClassification`` classifies the pooler's output with one linear layer;
``ElectraClassificationHead`` takes the first token through a dense layer, GELU and an output
projection (``DistilBertForSequenceClassification``: ``pre_classifier``, ReLU,
``classifier``); every family's token classifier is one linear layer on each token. The layers
run in Rust (``_core.Dense``, the encoder's GEMM), so logits are the same bits on every CPU
and thread count, as the encoder's outputs are (NumPy's BLAS differs between CPUs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer import _core
from oxiformer._types import FloatArray
from oxiformer.errors import WeightsError
from oxiformer.weights import float_tensor

__all__ = ["ClassifierHead"]


@dataclass(frozen=True)
class ClassifierHead:
    """``logits = out(act(dense(features)))``, or ``out(features)`` without a dense layer."""

    out_name: str
    weight: FloatArray
    """(num_labels, hidden)"""
    bias: FloatArray
    """(num_labels,)"""
    dense_name: str | None = None
    dense_weight: FloatArray | None = None
    dense_bias: FloatArray | None = None
    activation: str | None = None
    pooled: bool = False
    """Whether the head reads the pooler's output (else the first token, or every token)."""
    layers: tuple[_core.Dense, ...] = field(init=False, repr=False, compare=False)
    """The dense layer (if any), then the output projection."""

    def __post_init__(self) -> None:
        layers = []
        if self.dense_weight is not None and self.dense_bias is not None:
            name = self.dense_name or "dense"
            dense = _core.Dense(self.dense_weight, self.dense_bias, self.activation, name)
            layers.append(dense)
        layers.append(_core.Dense(self.weight, self.bias, None, self.out_name))
        object.__setattr__(self, "layers", tuple(layers))

    @classmethod
    def load(
        cls,
        tensors: Mapping[str, npt.NDArray[Any]],
        family: Mapping[str, Any],
        kind: str,
        hidden: int,
        source: str,
    ) -> ClassifierHead:
        """The ``kind`` (``"sequence"`` or ``"token"``) head of ``family`` from ``tensors``
        (stored names, base prefix stripped)."""
        if kind == "token":
            spec: Mapping[str, Any] = {"kind": "token", "out_proj": family["token_head"]}
        else:
            spec = family["sequence_head"]
        out = spec["classifier"] if spec["kind"] == "pooled" else spec["out_proj"]
        weight = tensors.get(f"{out}.weight")
        if weight is None:
            raise WeightsError(f"{source}: missing tensor '{out}.weight' (no classifier head)")
        labels = int(weight.shape[0]) if weight.ndim == 2 else 0
        head: dict[str, Any] = {
            "out_name": out,
            "weight": float_tensor(tensors, f"{out}.weight", (labels, hidden), source),
            "bias": float_tensor(tensors, f"{out}.bias", (labels,), source),
            "pooled": spec["kind"] == "pooled",
        }
        if spec["kind"] == "first_token":
            dense = spec["dense"]
            head["dense_name"] = dense
            square = (hidden, hidden)
            head["dense_weight"] = float_tensor(tensors, f"{dense}.weight", square, source)
            head["dense_bias"] = float_tensor(tensors, f"{dense}.bias", (hidden,), source)
            head["activation"] = spec["activation"]
        return cls(**head)

    @property
    def num_labels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def first_token(self) -> bool:
        """Whether a sequence head reads the first token itself (no pooler)."""
        return self.dense_weight is not None

    def __call__(self, features: FloatArray) -> FloatArray:
        """Logits of ``features`` (..., hidden)."""
        shape = features.shape[:-1]
        x = np.ascontiguousarray(features, dtype=np.float32).reshape(-1, features.shape[-1])
        for layer in self.layers:
            x = layer.forward(x)
        logits: FloatArray = x.reshape(*shape, self.num_labels)
        return logits

    def tensors(self) -> dict[str, FloatArray]:
        """The head's tensors by name (for saving)."""
        named = {f"{self.out_name}.weight": self.weight, f"{self.out_name}.bias": self.bias}
        if self.dense_name and self.dense_weight is not None and self.dense_bias is not None:
            named[f"{self.dense_name}.weight"] = self.dense_weight
            named[f"{self.dense_name}.bias"] = self.dense_bias
        return named
