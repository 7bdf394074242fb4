"""``_core.Dense``: the float32 dense layer the Python side runs after a model (classifier
heads), on the encoder's GEMM: checked against float64 NumPy, for its errors, and for the same
bits on every thread count (the SIMD paths: ``test_simd.py``, which hashes the classifiers'
logits on every path, under QEMU and on aarch64)."""

from __future__ import annotations

import math

import numpy as np
import oxiformer
import pytest
from oxiformer import _core

ACTIVATIONS = {
    None: lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "gelu": lambda x: (
        x * 0.5 * (1.0 + np.vectorize(math.erf, otypes=[np.float64])(x / math.sqrt(2.0)))
    ),
}


def layer(out: int, inp: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((out, inp)).astype(np.float32) / np.float32(math.sqrt(inp))
    return weight, rng.standard_normal(out).astype(np.float32)


SHAPES = [(1, 3, 32), (37, 70, 45), (0, 5, 8), (130, 17, 300)]


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize(("rows", "out", "inp"), SHAPES)
def test_dense_matches_float64(activation: str | None, rows: int, out: int, inp: int) -> None:
    weight, bias = layer(out, inp, rows + out)
    x = np.random.default_rng(inp).standard_normal((rows, inp)).astype(np.float32) * 3
    got = _core.Dense(weight, bias, activation).forward(x)
    want = ACTIVATIONS[activation](x.astype(np.float64) @ weight.T.astype(np.float64) + bias)
    assert got.shape == (rows, out) and got.dtype == np.float32
    diff = float(np.max(np.abs(got - want), initial=0.0))
    print(f"dense {rows}x{inp}->{out} {activation}: max abs diff to float64 {diff:.2e}")
    assert diff < 2e-5


def test_same_bits_on_every_thread_count() -> None:
    weight, bias = layer(300, 384, 1)
    x = np.random.default_rng(2).standard_normal((257, 384)).astype(np.float32)
    dense = _core.Dense(weight, bias, "gelu")
    before = oxiformer.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            oxiformer.set_num_threads(threads)
            results.append(dense.forward(x).tobytes())
    finally:
        oxiformer.set_num_threads(before)
    assert results[0] == results[1] == results[2]


def test_dense_errors_name_the_layer() -> None:
    weight, bias = layer(4, 6, 3)
    with pytest.raises(oxiformer.ConfigError, match=r"head.*unsupported activation \"swish9\""):
        _core.Dense(weight, bias, "swish9", "head")
    with pytest.raises(oxiformer.WeightsError, match=r"head\.bias"):
        _core.Dense(weight, bias[:3], None, "head")
    broken = weight.copy()
    broken[1, 2] = np.nan
    with pytest.raises(oxiformer.WeightsError, match=r"head\.weight.*finite"):
        _core.Dense(broken, bias, None, "head")
    dense = _core.Dense(weight, bias, None, "head")
    assert (dense.in_features, dense.out_features) == (6, 4)
    with pytest.raises(oxiformer.InputError, match="head takes 6 features, got 5"):
        dense.forward(np.zeros((2, 5), np.float32))
    # A Fortran-ordered array is refused, not read in column-major order.
    with pytest.raises(oxiformer.InputError, match="features must be C-contiguous"):
        dense.forward(np.zeros((6, 2), np.float32).T)
    with pytest.raises(oxiformer.InputError, match="weight must be C-contiguous"):
        _core.Dense(np.asfortranarray(weight), bias)
