"""Embeddings in fewer bits, as sentence-transformers' ``quantize_embeddings`` makes them
(``encode(precision=...)``).

- ``"int8"`` / ``"uint8"``: each dimension mapped linearly onto 256 steps between its minimum
  and maximum over ``calibration_embeddings`` (or the given ``ranges``, or, failing both, the
  embeddings themselves: then the result depends on the whole set, as in sentence-transformers),
  ``"int8"`` shifted by -128.
- ``"binary"`` / ``"ubinary"``: one bit a dimension (``> 0``), packed eight to a byte,
  ``"binary"`` as int8 shifted by -128: 32x smaller, compared by Hamming distance. Each row is
  packed on its own, its last byte padded with zero bits when the width is not a multiple of 8
  (sentence-transformers packs the whole array at once, which fails or mixes rows then).

The same NumPy operations as sentence-transformers', so the same integers for the same float
embeddings; values outside the int8 ranges are clipped to the ends (sentence-transformers'
casts wrap them around), and a dimension constant over the calibration set maps to its start.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer.errors import InputError

__all__ = [
    "CORPUS_PRECISIONS",
    "PRECISIONS",
    "check_corpus_precision",
    "check_precision",
    "quantize_embeddings",
    "quantized_shape",
]

#: The precisions ``encode`` and :func:`quantize_embeddings` take.
PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")

#: The precisions a corpus is embedded in batch by batch: those of one embedding alone.
CORPUS_PRECISIONS = ("float32", "binary", "ubinary")

#: Fewer embeddings than this make poor int8 ranges (sentence-transformers warns too).
_FEW = 100


def check_precision(precision: object) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    return str(precision)


def check_corpus_precision(precision: object) -> str:
    """``precision`` if a corpus can be embedded in it batch by batch (the result the same
    whatever the batches): int8 and uint8 take their ranges from the embeddings of the call,
    so each batch would get its own."""
    if check_precision(precision) not in CORPUS_PRECISIONS:
        raise InputError(
            f"precision {precision!r} takes its ranges from all the embeddings at once, and a "
            "corpus is embedded batch by batch, so each batch would get other ranges; embed in "
            "float32 and quantize afterwards with oxiformer.quantize_embeddings(..., "
            f"ranges=...), or use {', '.join(CORPUS_PRECISIONS)}"
        )
    return str(precision)


def quantized_shape(dimension: int, precision: str) -> tuple[int, np.dtype[Any]]:
    """The width and dtype of a ``dimension``-wide embedding in ``precision``."""
    if precision in ("binary", "ubinary"):
        return -(-dimension // 8), np.dtype(np.int8 if precision == "binary" else np.uint8)
    dtypes = {"float32": np.float32, "int8": np.int8, "uint8": np.uint8}
    return dimension, np.dtype(dtypes[check_precision(precision)])


def quantize_embeddings(
    embeddings: npt.ArrayLike,
    precision: str,
    ranges: npt.ArrayLike | None = None,
    calibration_embeddings: npt.ArrayLike | None = None,
) -> npt.NDArray[Any]:
    """``embeddings`` (n, dim) in ``precision`` (one of :data:`PRECISIONS`)."""
    check_precision(precision)
    array = np.asarray(embeddings)
    if array.dtype.kind != "f" or array.ndim != 2:
        raise InputError(
            f"embeddings to quantize must be a 2-D float array, got {array.ndim}-D {array.dtype}"
        )
    if precision == "float32":
        return array.astype(np.float32)
    if precision in ("binary", "ubinary"):
        packed = np.packbits(array > 0, axis=-1)
        return (packed - 128).astype(np.int8) if precision == "binary" else packed
    if ranges is None:
        source = array if calibration_embeddings is None else np.asarray(calibration_embeddings)
        if calibration_embeddings is None and len(array) < _FEW:
            warnings.warn(
                f"int8 ranges computed from {len(array)} embeddings (fewer than {_FEW}): pass "
                "calibration_embeddings or ranges for stable quantization",
                stacklevel=3,
            )
        if source.ndim != 2 or source.shape[1] != array.shape[1] or len(source) == 0:
            raise InputError(f"calibration embeddings must be (n, {array.shape[1]}), n >= 1")
        ranges = np.vstack((np.min(source, axis=0), np.max(source, axis=0)))
    bounds = np.asarray(ranges)
    if bounds.shape != (2, array.shape[1]):
        raise InputError(f"ranges must have shape (2, {array.shape[1]}), got {bounds.shape}")
    starts = bounds[0, :]
    steps = (bounds[1, :] - bounds[0, :]) / 255
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant dimension: step 0
        scaled = (array - starts) / steps
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    out: npt.NDArray[Any] = (
        np.clip(scaled, 0, 255).astype(np.uint8)
        if precision == "uint8"
        else np.clip(scaled - 128, -128, 127).astype(np.int8)
    )
    return out
