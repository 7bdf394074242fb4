"""Embeddings in fewer bits, as sentence-transformers' ``quantize_embeddings`` makes them
(``encode(precision=...)``).

- ``"int8"`` / ``"uint8"``: each dimension mapped linearly onto 256 steps between its minimum
  and maximum over ``calibration_embeddings`` (or the given ``ranges``, or, failing both, the
  embeddings themselves: then the result depends on the whole set, as in sentence-transformers),
  ``"int8"`` shifted by -128.
- ``"binary"`` / ``"ubinary"``: one bit a dimension (``> 0``), packed eight to a byte,
  ``"binary"`` as int8 shifted by -128: 32x smaller, compared by Hamming distance.

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

__all__ = ["PRECISIONS", "check_precision", "quantize_embeddings"]

#: The precisions ``encode`` and :func:`quantize_embeddings` take.
PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")

#: Fewer embeddings than this make poor int8 ranges (sentence-transformers warns too).
_FEW = 100


def check_precision(precision: object) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    return str(precision)


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
        packed = np.packbits(array > 0).reshape(array.shape[0], -1)
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
