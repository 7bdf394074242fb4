"""oxiformer.reference, the NumPy oracle: its pieces against closed forms, the whole model
against the golden outputs of Hugging Face transformers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from helpers import (
    FIXTURES,
    TINY_BERT_SEQCLS,
    load_golden,
    load_model,
    max_abs_diff,
    require_fixtures,
)
from hypothesis import given
from hypothesis import strategies as st
from oxiformer import InputError, reference

require_fixtures(
    "tiny-bert/seqcls", "tiny-distilbert", "tiny-distilbert-sinusoidal", "minilm/golden.npz"
)

DTYPES = [np.float32, np.float64]


def test_erf_matches_math_erf() -> None:
    x = np.concatenate(
        [
            np.linspace(-10.0, 10.0, 400_001),
            np.geomspace(1e-300, 30.0, 20_000),
            -np.geomspace(1e-300, 30.0, 20_000),
            # the seams between Cody's three approximations, and their neighbours
            [0.46875, np.nextafter(0.46875, 1.0), 4.0, np.nextafter(4.0, 5.0), 5e-324, 27.3],
        ]
    )
    expected = np.array([math.erf(value) for value in x])
    assert max_abs_diff("erf vs math.erf", reference.erf(x), expected) < 1e-14


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_erf_matches_math_erf_anywhere(x: float) -> None:
    assert abs(float(reference.erf(x)) - math.erf(x)) < 1e-14


def test_erf_special_values() -> None:
    result = reference.erf(np.array([np.inf, -np.inf, np.nan, -0.0, 0.0]))
    assert result[0] == 1.0
    assert result[1] == -1.0
    assert np.isnan(result[2])
    assert result[3] == 0.0 and math.copysign(1.0, result[3]) == -1.0
    assert result[4] == 0.0 and math.copysign(1.0, result[4]) == 1.0


def test_gelu_activations_match_closed_forms() -> None:
    x = np.linspace(-12.0, 12.0, 20_001)
    gelu_expected = [value * 0.5 * (1.0 + math.erf(value / math.sqrt(2.0))) for value in x]
    tanh_expected = [
        0.5 * value * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (value + 0.044715 * value**3)))
        for value in x
    ]
    assert max_abs_diff("gelu (erf)", reference.gelu(x), gelu_expected) < 1e-14
    assert max_abs_diff("gelu (tanh)", reference.gelu_tanh(x), tanh_expected) < 1e-14
    assert max_abs_diff("relu", reference.relu(x), [max(value, 0.0) for value in x]) == 0.0
    assert reference.gelu(x.astype(np.float32)).dtype == np.float32


def test_softmax_and_layer_norm_match_their_definitions() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(scale=5.0, size=(7, 13))
    exps = [[math.exp(value) for value in row] for row in x]
    expected = [[value / math.fsum(row) for value in row] for row in exps]
    assert max_abs_diff("softmax", reference.softmax(x), expected) < 1e-15
    huge = reference.softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    assert max_abs_diff("softmax, huge scores", huge, [[0.5, 0.5, 0.0]]) == 0.0

    weight, bias, eps = rng.normal(size=13), rng.normal(size=13), 1e-5
    expected_ln = []
    for row in x:
        mean = math.fsum(row) / len(row)
        variance = math.fsum((value - mean) ** 2 for value in row) / len(row)
        scale = 1.0 / math.sqrt(variance + eps)
        expected_ln.append([(value - mean) * scale for value in row] * weight + bias)
    diff = max_abs_diff("layer_norm", reference.layer_norm(x, weight, bias, eps), expected_ln)
    assert diff < 1e-13


def naive_attention(
    q: npt.NDArray[Any],
    k: npt.NDArray[Any],
    v: npt.NDArray[Any],
    mask: npt.NDArray[Any],
    heads: int,
) -> npt.NDArray[np.float64]:
    """Attention one (batch row, head, query) at a time; masked keys left out of the sum."""
    batch, seq, hidden = q.shape
    size = hidden // heads
    out = np.zeros((batch, seq, hidden))
    for b in range(batch):
        keys = [j for j in range(seq) if mask[b, j]]
        for h in range(heads):
            cols = slice(h * size, (h + 1) * size)
            for i in range(seq):
                if keys:
                    attended = keys
                    scores = [float(q[b, i, cols] @ k[b, j, cols]) / math.sqrt(size) for j in keys]
                else:  # nothing to attend to: HF attends uniformly to every position
                    attended, scores = list(range(seq)), [0.0] * seq
                top = max(scores)
                weights = [math.exp(score - top) for score in scores]
                total = math.fsum(weights)
                out[b, i, cols] = sum(w / total * v[b, j, cols] for w, j in zip(weights, attended))
    return out


@pytest.mark.parametrize(("hidden", "heads"), [(12, 3), (15, 5), (7, 1)])
def test_attention_matches_naive_with_padding(hidden: int, heads: int) -> None:
    rng = np.random.default_rng(hidden)
    q, k, v = (rng.normal(size=(3, 6, hidden)) for _ in range(3))
    mask = np.array([[1] * 6, [1, 1, 1, 0, 0, 0], [0] * 6])  # full, padded, all padding
    mask_bias = (1.0 - mask) * np.finfo(np.float64).min
    result = reference.attention(q, k, v, mask_bias, heads)
    expected = naive_attention(q, k, v, mask, heads)
    assert max_abs_diff(f"attention H={hidden} N={heads}", result, expected) < 1e-13
    # The row with no key to attend to attends uniformly, as HF eager attention does.
    assert (
        max_abs_diff("all-padding row", result[2], np.broadcast_to(v[2].mean(0), (6, hidden)))
        < 1e-13
    )


def test_sinusoidal_table_matches_distilbert_fixture() -> None:
    path = FIXTURES / "tiny-distilbert-sinusoidal" / "weights.npz"
    with np.load(path, allow_pickle=False) as weights:
        stored = weights["embeddings.position_embeddings.weight"]
    table = reference.sinusoidal_positions(*stored.shape)
    assert table.dtype == np.float64
    assert max_abs_diff("sinusoidal (float64) vs fixture", table, stored) < 1e-7
    assert max_abs_diff("sinusoidal (rounded to float32)", table.astype(np.float32), stored) == 0.0
    odd = reference.sinusoidal_positions(5, 7)
    positions = np.arange(5.0)
    assert max_abs_diff("odd width, column 0 = sin(pos)", odd[:, 0], np.sin(positions)) == 0.0
    angle = positions / 10000 ** (6 / 7)
    assert max_abs_diff("odd width, last column", odd[:, 6], np.sin(angle)) == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weights_file", ["model.safetensors", "weights.npz"])
def test_tiny_bert_matches_golden(weights_file: str, dtype: type[np.floating[Any]]) -> None:
    config, tensors = load_model(TINY_BERT_SEQCLS, weights_file, with_pooler=True)
    golden = load_golden(TINY_BERT_SEQCLS / "golden.npz")
    inputs = {name: golden[name] for name in ("input_ids", "attention_mask", "token_type_ids")}
    out = reference.forward(tensors, config, **inputs, dtype=dtype, with_pooler=True)
    assert len(out["hidden_states"]) == config["num_hidden_layers"] + 1
    assert out["last_hidden_state"] is out["hidden_states"][-1]
    for index, hidden in enumerate(out["hidden_states"]):
        assert hidden.dtype == dtype
        label = f"{weights_file} {dtype.__name__} hidden_state_{index}"
        assert max_abs_diff(label, hidden, golden[f"hidden_state_{index}"]) <= 2e-5
    label = f"{weights_file} {dtype.__name__} pooler_output"
    assert max_abs_diff(label, out["pooler_output"], golden["pooler_output"]) <= 2e-5


@pytest.mark.parametrize("model", ["tiny-distilbert", "tiny-distilbert-sinusoidal"])
def test_tiny_distilbert_matches_golden(model: str) -> None:
    """DistilBERT: no token types, sinusoidal or learned positions, names translated."""
    config, tensors = load_model(FIXTURES / model, "model.safetensors")
    golden = load_golden(FIXTURES / model / "golden.npz")
    out = reference.forward(tensors, config, golden["input_ids"], golden["attention_mask"])
    for index, hidden in enumerate(out["hidden_states"]):
        assert (
            max_abs_diff(f"{model} hidden_state_{index}", hidden, golden[f"hidden_state_{index}"])
            <= 2e-5
        )


@pytest.mark.parametrize(("dtype", "batched"), [(np.float32, True), (np.float64, False)])
def test_minilm_matches_golden(
    minilm_model: tuple[dict[str, Any], dict[str, npt.NDArray[np.float32]]],
    minilm_golden: dict[str, npt.NDArray[Any]],
    dtype: type[np.floating[Any]],
    batched: bool,
) -> None:
    """float32: the padded batch as HF ran it; float64: each text alone, unpadded (9x fewer
    tokens: the fixture is 11% real tokens)."""
    config, tensors = minilm_model
    golden = minilm_golden
    ids, mask, types = golden["input_ids"], golden["attention_mask"], golden["token_type_ids"]
    real = mask == 1  # rows at padded positions are not meaningful
    if batched:
        hidden = reference.forward(tensors, config, ids, mask, types, dtype=dtype)
        ours = hidden["last_hidden_state"][real]
    else:
        rows = []
        for row, length in enumerate(mask.sum(axis=1)):
            assert real[row, :length].all(), "the fixture is right-padded"
            one = reference.forward(
                tensors, config, ids[row : row + 1, :length], None, types[row : row + 1, :length],
                dtype=dtype,
            )  # fmt: skip
            rows.append(one["last_hidden_state"][0])
        ours = np.concatenate(rows)
    label = f"MiniLM {dtype.__name__} last_hidden_state ({'batch' if batched else 'one by one'})"
    assert max_abs_diff(label, ours, golden["last_hidden_state"][real]) <= 1e-4


@pytest.mark.parametrize("dtype", DTYPES)
def test_padding_does_not_change_real_positions(dtype: type[np.floating[Any]]) -> None:
    config, tensors = load_model(TINY_BERT_SEQCLS, with_pooler=True)
    golden = load_golden(TINY_BERT_SEQCLS / "golden.npz")
    ids, mask, types = golden["input_ids"], golden["attention_mask"], golden["token_type_ids"]
    batch = reference.forward(tensors, config, ids, mask, types, dtype=dtype, with_pooler=True)
    assert mask.min() == 0, "the fixture should contain padding"
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for row in range(ids.shape[0]):
        length = int(mask[row].sum())
        alone = reference.forward(
            tensors,
            config,
            ids[row : row + 1, :length],
            None,
            types[row : row + 1, :length],
            dtype=dtype,
            with_pooler=True,
        )
        label = f"row {row} alone vs padded ({dtype.__name__})"
        real = batch["last_hidden_state"][row, :length]
        assert max_abs_diff(label, alone["last_hidden_state"][0], real) <= tolerance
        pooled = batch["pooler_output"][row]
        assert max_abs_diff(label + " pooler", alone["pooler_output"][0], pooled) <= tolerance


def test_defaults_are_full_mask_and_type_zero() -> None:
    config, tensors = load_model(TINY_BERT_SEQCLS)
    ids = np.array([[101, 7592, 2088, 102], [101, 2023, 2003, 102]])
    default = reference.forward(tensors, config, ids)["last_hidden_state"]
    explicit = reference.forward(tensors, config, ids, np.ones_like(ids), np.zeros_like(ids))
    assert max_abs_diff("defaults vs explicit", default, explicit["last_hidden_state"]) == 0.0
    other_type = reference.forward(tensors, config, ids, None, np.ones_like(ids))
    assert max_abs_diff("token type 1 vs 0", default, other_type["last_hidden_state"]) > 1e-3


@pytest.mark.parametrize(
    ("ids", "mask", "message"),
    [
        ([[101, 30522]], None, "input_ids must lie in"),
        ([[-1, 102]], None, "input_ids must lie in"),
        ([[1.0, 2.0]], None, "must be an integer array"),
        ([101, 102], None, "must be 2-D"),
        ([[101, 102]], [[1, 1, 1]], "attention_mask has shape"),
        ([[101] * 129], None, "exceeds max_position_embeddings"),
    ],
)
def test_forward_rejects_bad_inputs(ids: Any, mask: Any, message: str) -> None:
    config, tensors = load_model(TINY_BERT_SEQCLS)
    with pytest.raises(InputError, match=message):
        reference.forward(tensors, config, ids, mask)
