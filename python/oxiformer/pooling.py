"""Sentence-transformers pooling (``1_Pooling/config.json``) and normalization, in NumPy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer._files import read_json
from oxiformer._types import FloatArray
from oxiformer.errors import ConfigError

__all__ = ["Pooling", "normalize", "pool_packed"]


#: Modes in the order sentence-transformers concatenates them.
MODES = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens")


@dataclass(frozen=True)
class Pooling:
    """Which poolings to apply; several are concatenated, as sentence-transformers does."""

    modes: tuple[str, ...] = ("mean_tokens",)

    @classmethod
    def from_config(cls, path: Path) -> Pooling:
        """Read ``1_Pooling/config.json`` (``pooling_mode_*`` flags)."""
        raw = read_json(path, ConfigError)
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        modes = tuple(mode for mode in MODES if raw.get(f"pooling_mode_{mode}", False) is True)
        unsupported = sorted(
            key
            for key, value in raw.items()
            if key.startswith("pooling_mode_")
            and value is True
            and key[len("pooling_mode_") :] not in MODES
        )
        if unsupported:
            raise ConfigError(f"{path}: unsupported pooling mode(s) {', '.join(unsupported)}")
        if not modes:
            raise ConfigError(f"{path}: no pooling mode is enabled")
        return cls(modes)

    @classmethod
    def from_name(cls, name: str) -> Pooling:
        """``"mean"``, ``"cls"``, ``"max"`` or ``"mean_sqrt_len"``."""
        if not isinstance(name, str):
            raise ConfigError(f"pooling must be a name (mean, cls, max or mean_sqrt_len): {name!r}")
        mode = {"mean": "mean_tokens", "cls": "cls_token", "max": "max_tokens"}.get(
            name, f"{name}_tokens" if name == "mean_sqrt_len" else name
        )
        if mode not in MODES:
            raise ConfigError(f"unknown pooling {name!r} (use mean, cls, max or mean_sqrt_len)")
        return cls((mode,))

    def to_config(self, dimension: int) -> dict[str, Any]:
        config: dict[str, Any] = {"word_embedding_dimension": dimension}
        for mode in MODES:
            config[f"pooling_mode_{mode}"] = mode in self.modes
        return config

    def __call__(self, hidden: FloatArray, mask: npt.NDArray[np.int64]) -> FloatArray:
        """(batch, seq, hidden), (batch, seq) -> (batch, hidden * len(modes))."""
        weights = mask.astype(hidden.dtype)[:, :, None]  # (B, T, 1)
        tokens = np.maximum(weights.sum(axis=1), 1e-9)  # (B, 1), clamped as in ST
        parts = []
        for mode in self.modes:
            if mode == "cls_token":
                parts.append(hidden[:, 0])
            elif mode == "max_tokens":
                masked = np.where(weights > 0, hidden, np.float32(-1e9))
                parts.append(masked.max(axis=1))
            elif mode == "mean_tokens":
                parts.append((hidden * weights).sum(axis=1) / tokens)
            else:  # mean_sqrt_len_tokens
                parts.append((hidden * weights).sum(axis=1) / np.sqrt(tokens))
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)


def pool_packed(pooling: Pooling, hidden: FloatArray, lengths: npt.NDArray[np.int64]) -> FloatArray:
    """The same poolings on packed sequences: ``hidden`` (total, H), ``lengths`` (S,)."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    counts = lengths.astype(np.float32)[:, None]  # (S, 1)
    parts: list[npt.NDArray[np.floating[Any]]] = []
    for mode in pooling.modes:
        if mode == "cls_token":
            parts.append(hidden[starts])
        elif mode == "max_tokens":
            parts.append(np.maximum.reduceat(hidden, starts, axis=0))
        elif mode == "mean_tokens":
            parts.append(np.add.reduceat(hidden, starts, axis=0) / counts)
        else:  # mean_sqrt_len_tokens
            parts.append(np.add.reduceat(hidden, starts, axis=0) / np.sqrt(counts))
    pooled: FloatArray = np.concatenate(parts, axis=1).astype(np.float32, copy=False)
    return pooled


def normalize(embeddings: FloatArray) -> FloatArray:
    """L2-normalize the last axis (``torch.nn.functional.normalize``, eps 1e-12)."""
    norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
    unit: FloatArray = (embeddings / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return unit
