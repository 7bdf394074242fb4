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
    include_prompt: bool = True
    """False: a prompt's tokens (and [CLS]) are left out of the mean and max poolings."""

    @classmethod
    def from_config(cls, path: Path) -> Pooling:
        """Read ``1_Pooling/config.json`` (``pooling_mode_*`` flags, ``include_prompt``)."""
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
        include_prompt = raw.get("include_prompt", True)
        if not isinstance(include_prompt, bool):
            raise ConfigError(f"{path}: 'include_prompt' must be true or false")
        return cls(modes, include_prompt)

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
        if not self.include_prompt:  # written only when set: older readers lack the key
            config["include_prompt"] = False
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


def pool_packed(
    pooling: Pooling, hidden: FloatArray, lengths: npt.NDArray[np.int64], prompt_length: int = 0
) -> FloatArray:
    """The same poolings on packed sequences: ``hidden`` (total, H), ``lengths`` (S,).
    ``prompt_length``: the tokens of a prompt, [CLS] included, that a pooling without
    ``include_prompt`` leaves out (sentence-transformers' ``prompt_length``)."""
    if prompt_length and not pooling.include_prompt:
        return _pool_without_prompt(pooling, hidden, lengths, prompt_length)
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


def _pool_without_prompt(
    pooling: Pooling, hidden: FloatArray, lengths: npt.NDArray[np.int64], prompt_length: int
) -> FloatArray:
    """Each sequence pooled over its tokens after the first ``prompt_length`` (as
    sentence-transformers masks them out); [CLS] pooling takes the first token still."""
    rows = []
    start = 0
    for length in lengths.tolist():
        sequence = hidden[start : start + length]
        start += length
        kept = sequence[min(prompt_length, length) :]
        count = max(len(kept), 1e-9)  # no token left: zeros, as ST's clamped mask sum
        parts = []
        for mode in pooling.modes:
            if mode == "cls_token":
                parts.append(sequence[0])
            elif mode == "max_tokens":
                empty = np.full(hidden.shape[1], -1e9, np.float32)
                parts.append(kept.max(axis=0) if len(kept) else empty)
            elif mode == "mean_tokens":
                parts.append(kept.sum(axis=0) / np.float32(count))
            else:  # mean_sqrt_len_tokens
                parts.append(kept.sum(axis=0) / np.sqrt(np.float32(count)))
        rows.append(np.concatenate(parts))
    if not rows:
        return np.zeros((0, hidden.shape[1] * len(pooling.modes)), np.float32)
    return np.stack(rows).astype(np.float32, copy=False)


def normalize(embeddings: FloatArray) -> FloatArray:
    """L2-normalize the last axis (``torch.nn.functional.normalize``, eps 1e-12)."""
    norms = np.linalg.norm(embeddings, axis=-1, keepdims=True)
    unit: FloatArray = (embeddings / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return unit
