"""Similarity of embeddings, as sentence-transformers' ``model.similarity`` computes it.

``similarity(a, b)`` gives the ``(len(a), len(b))`` matrix, ``similarity_pairwise(a, b)`` the
similarity of each row of ``a`` with the same row of ``b``. The functions are those of
sentence-transformers' ``similarity_fn_name``: ``"cosine"`` (the default), ``"dot"``, and
``"euclidean"`` and ``"manhattan"`` (negated distances, so that higher is more similar). The
matrix products run on the encoder's GEMM (``_core.Dense``), so the scores are the same bits on
every CPU, as the embeddings are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer import _core
from oxiformer._types import FloatArray
from oxiformer.errors import InputError
from oxiformer.pooling import normalize

__all__ = ["SIMILARITY_FUNCTIONS", "similarity", "similarity_pairwise"]

#: The names sentence-transformers' ``similarity_fn_name`` takes.
SIMILARITY_FUNCTIONS = ("cosine", "dot", "euclidean", "manhattan")

#: Rows of ``a`` at a time for the distances (their differences are a (rows, len(b), dim) array).
_DISTANCE_ROWS = 64


def check_function(name: object, where: str = "similarity_fn_name") -> str:
    """``name`` if it is one of :data:`SIMILARITY_FUNCTIONS`."""
    if name not in SIMILARITY_FUNCTIONS:
        raise InputError(
            f"{where}: unknown similarity function {name!r} (use {', '.join(SIMILARITY_FUNCTIONS)})"
        )
    return str(name)


def similarity(a: npt.ArrayLike, b: npt.ArrayLike, fn: str = "cosine") -> FloatArray:
    """The ``(len(a), len(b))`` similarities of the rows of ``a`` and ``b`` (a 1-D input is
    one row)."""
    fn = check_function(fn, "similarity")
    left, right = _rows(a, "a"), _rows(b, "b")
    _same_width(left, right)
    if fn in ("cosine", "dot"):
        if fn == "cosine":
            left, right = normalize(left), normalize(right)
        if len(left) == 0 or len(right) == 0 or left.shape[1] == 0:
            return np.zeros((len(left), len(right)), np.float32)
        products = _core.Dense(right, np.zeros(len(right), np.float32), None, "similarity")
        return products.forward(left)
    out = np.empty((len(left), len(right)), np.float32)
    for start in range(0, len(left), _DISTANCE_ROWS):
        chunk = left[start : start + _DISTANCE_ROWS]
        out[start : start + len(chunk)] = -_distance(chunk[:, None, :] - right[None], fn)
    return out


def similarity_pairwise(a: npt.ArrayLike, b: npt.ArrayLike, fn: str = "cosine") -> FloatArray:
    """The similarity of each row of ``a`` with the same row of ``b``: shape ``(len(a),)``."""
    fn = check_function(fn, "similarity_pairwise")
    left, right = _rows(a, "a"), _rows(b, "b")
    _same_width(left, right)
    if len(left) != len(right):
        raise InputError(f"similarity_pairwise: a has {len(left)} rows, b has {len(right)}")
    if fn in ("cosine", "dot"):
        if fn == "cosine":
            left, right = normalize(left), normalize(right)
        products: FloatArray = (left * right).sum(axis=1, dtype=np.float32)
        return products
    return -_distance(left - right, fn)


def _distance(differences: FloatArray, fn: str) -> FloatArray:
    if fn == "euclidean":
        distance: FloatArray = np.sqrt((differences * differences).sum(axis=-1))
    else:
        distance = np.abs(differences).sum(axis=-1)
    return distance.astype(np.float32, copy=False)


def _rows(value: npt.ArrayLike, name: str) -> FloatArray:
    """``value`` as a C-ordered float32 (rows, dim) array of finite numbers."""
    try:
        array: npt.NDArray[Any] = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name}: not an array of embeddings ({err})") from None
    if array.dtype.kind not in "fiu" or array.ndim not in (1, 2):
        raise InputError(
            f"{name}: expected embeddings as a 1-D or 2-D array of numbers, got "
            f"{array.ndim}-D {array.dtype}"
        )
    rows = np.ascontiguousarray(array.reshape(1, -1) if array.ndim == 1 else array, np.float32)
    if not np.isfinite(rows).all():
        raise InputError(f"{name}: embeddings must be finite (found NaN or inf)")
    return rows


def _same_width(left: FloatArray, right: FloatArray) -> None:
    if left.shape[1] != right.shape[1]:
        raise InputError(
            f"a and b have embeddings of different sizes ({left.shape[1]} and {right.shape[1]})"
        )
