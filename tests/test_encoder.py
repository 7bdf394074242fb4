"""The Rust encoder against the golden Hugging Face outputs and against ``oxiformer.reference``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import oxiformer
import pytest
from helpers import FIXTURES, TINY_BERT_SEQCLS, load_golden, max_abs_diff, require_fixtures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oxiformer import _core, reference


@pytest.fixture(scope="module")
def minilm(minilm_dir: Path) -> oxiformer.Encoder:
    return oxiformer.Encoder.from_pretrained(minilm_dir)


def test_minilm_matches_golden_on_unpadded_positions(
    minilm: oxiformer.Encoder, minilm_golden: dict[str, npt.NDArray[Any]]
) -> None:
    golden = minilm_golden
    out = minilm(golden["input_ids"], golden["attention_mask"], golden["token_type_ids"])
    kept = golden["attention_mask"].astype(bool)
    diff = max_abs_diff(
        "MiniLM last_hidden_state", out.last_hidden_state[kept], golden["last_hidden_state"][kept]
    )
    assert out.last_hidden_state.dtype == np.float32
    assert diff <= 1e-4
    assert out.pooler_output is not None  # the MiniLM checkpoint ships a pooler


@pytest.mark.parametrize("weights_file", ["model.safetensors", "weights.npz"])
def test_tiny_bert_hidden_states_and_pooler(weights_file: str, tmp_path: Path) -> None:
    require_fixtures("tiny-bert/seqcls")
    golden = load_golden(TINY_BERT_SEQCLS / "golden.npz")
    # A model directory holding only this weights file, so that file is the one loaded.
    (tmp_path / "config.json").write_bytes((TINY_BERT_SEQCLS / "config.json").read_bytes())
    (tmp_path / weights_file).symlink_to(TINY_BERT_SEQCLS / weights_file)
    encoder = oxiformer.Encoder.from_pretrained(tmp_path)
    assert encoder.source.endswith(weights_file)
    out = encoder(
        golden["input_ids"],
        golden["attention_mask"],
        golden["token_type_ids"],
        output_hidden_states=True,
    )
    assert out.hidden_states is not None and out.pooler_output is not None
    assert len(out.hidden_states) == 3
    for index, state in enumerate(out.hidden_states):
        diff = max_abs_diff(
            f"{weights_file} hidden_state_{index}", state, golden[f"hidden_state_{index}"]
        )
        assert diff <= 2e-5
    diff = max_abs_diff(f"{weights_file} pooler_output", out.pooler_output, golden["pooler_output"])
    assert diff <= 2e-5
    np.testing.assert_array_equal(out.last_hidden_state, out.hidden_states[-1])


def random_model(
    rng: np.random.Generator, config: dict[str, Any], with_pooler: bool
) -> dict[str, npt.NDArray[np.float32]]:
    """Random tensors for every name the encoder expects; LayerNorm gains near 1."""
    tensors = {}
    for name, shape in _core.expected_tensors(_core.EncoderConfig(config), with_pooler).items():
        if "LayerNorm.weight" in name:
            values = 1.0 + 0.2 * rng.standard_normal(shape)
        else:
            values = 0.3 * rng.standard_normal(shape)
        tensors[name] = values.astype(np.float32)
    return tensors


@st.composite
def encoder_cases(draw: st.DrawFn) -> tuple[dict[str, Any], int, npt.NDArray[np.int64], bool]:
    heads = draw(st.integers(1, 4))
    head_size = draw(st.sampled_from([1, 3, 5, 8, 13]))
    seq_len = draw(st.integers(1, 12))
    batch = draw(st.integers(1, 4))
    config = {
        "vocab_size": draw(st.integers(5, 60)),
        "hidden_size": heads * head_size,
        "num_hidden_layers": draw(st.integers(0, 2)),
        "num_attention_heads": heads,
        "intermediate_size": draw(st.integers(1, 40)),
        "hidden_act": draw(st.sampled_from(["gelu", "gelu_new", "relu"])),
        "max_position_embeddings": seq_len + draw(st.integers(0, 5)),
        "type_vocab_size": draw(st.integers(0, 3)),
        "layer_norm_eps": draw(st.sampled_from([1e-12, 1e-5])),
        "position_embedding_type": draw(st.sampled_from(["absolute", "sinusoidal"])),
    }
    lengths = draw(st.lists(st.integers(0, seq_len), min_size=batch, max_size=batch))
    mask = (np.arange(seq_len)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    return config, draw(st.integers(0, 2**32 - 1)), mask, draw(st.booleans())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(encoder_cases())
def test_rust_matches_reference_on_random_configs(
    case: tuple[dict[str, Any], int, npt.NDArray[np.int64], bool],
) -> None:
    config, seed, mask, with_pooler = case
    rng = np.random.default_rng(seed)
    tensors = random_model(rng, config, with_pooler)
    encoder = oxiformer.Encoder.from_tensors(config, tensors, with_pooler=with_pooler)
    ids = rng.integers(0, config["vocab_size"], mask.shape)
    types = rng.integers(0, max(config["type_vocab_size"], 1), mask.shape)
    out = encoder(ids, mask, types, output_hidden_states=True)
    normalized = _core.EncoderConfig(config).to_dict()
    want = reference.forward(
        tensors, normalized, ids, mask, types, dtype=np.float64, with_pooler=with_pooler
    )
    # Rows that are all padding included: HF (and we) attend uniformly there.
    diff = max_abs_diff("random config", out.last_hidden_state, want["last_hidden_state"])
    assert diff <= 1e-4, config
    assert out.hidden_states is not None
    assert len(out.hidden_states) == config["num_hidden_layers"] + 1
    if with_pooler:
        assert out.pooler_output is not None
        assert max_abs_diff("pooler", out.pooler_output, want["pooler_output"]) <= 1e-4
    else:
        assert out.pooler_output is None


@pytest.mark.parametrize("rows", [1, 12], ids=["few-rows kernel", "gemm"])
def test_outputs_are_bitwise_identical_for_one_and_two_threads(
    minilm: oxiformer.Encoder, minilm_golden: dict[str, npt.NDArray[Any]], rows: int
) -> None:
    # One sentence (fewer than 32 tokens) takes the few-rows matmul; 12 padded rows, gemm.
    length = int(minilm_golden["attention_mask"][0].sum())
    ids = minilm_golden["input_ids"][:rows, : length if rows == 1 else None]
    mask = minilm_golden["attention_mask"][:rows, : length if rows == 1 else None]
    before = oxiformer.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 1):
            oxiformer.set_num_threads(threads)
            assert oxiformer.get_num_threads() == threads
            results.append(minilm(ids, mask).last_hidden_state)
    finally:
        oxiformer.set_num_threads(before)
    assert results[0].tobytes() == results[1].tobytes() == results[2].tobytes()


def test_int32_fortran_and_strided_inputs_give_the_same_result(
    minilm: oxiformer.Encoder, minilm_golden: dict[str, npt.NDArray[Any]]
) -> None:
    ids = minilm_golden["input_ids"][:4, :40]
    mask = minilm_golden["attention_mask"][:4, :40]
    expected = minilm(ids, mask).last_hidden_state
    variants = {
        "int32": (ids.astype(np.int32), mask.astype(np.int32)),
        "fortran": (np.asfortranarray(ids), np.asfortranarray(mask)),
        "strided": (np.repeat(ids, 2, axis=1)[:, ::2], np.repeat(mask, 2, axis=1)[:, ::2]),
        "bool mask": (ids, mask.astype(bool)),
    }
    for label, (variant_ids, variant_mask) in variants.items():
        got = minilm(variant_ids, variant_mask).last_hidden_state
        assert got.tobytes() == expected.tobytes(), label


def test_defaults_are_full_mask_and_zero_token_types(minilm: oxiformer.Encoder) -> None:
    ids = np.array([[101, 7592, 2088, 102]])
    explicit = minilm(ids, np.ones_like(ids), np.zeros_like(ids)).last_hidden_state
    assert minilm(ids).last_hidden_state.tobytes() == explicit.tobytes()


def test_empty_batch_gives_empty_output(minilm: oxiformer.Encoder) -> None:
    out = minilm(np.zeros((0, 5), dtype=np.int64))
    assert out.last_hidden_state.shape == (0, 5, 384)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_ids": [[101, 30522]]}, "outside [0, 30522)"),
        ({"input_ids": [[101, -1]]}, "input_ids[0, 1] = -1"),
        ({"input_ids": np.ones((1, 513), dtype=np.int64)}, "exceeds max_position_embeddings 512"),
        ({"input_ids": [[1, 2]], "attention_mask": [[1, 1, 1]]}, "attention_mask has shape"),
        ({"input_ids": [[1, 2]], "token_type_ids": [[0, 2]]}, "type_vocab_size"),
        ({"input_ids": [[1, 2]], "attention_mask": [[1, 2]]}, "a mask holds 0 or 1"),
        ({"input_ids": [[1.0, 2.0]]}, "must hold integers"),
        ({"input_ids": [1, 2]}, "must be 2-D"),
    ],
)
def test_bad_inputs_raise_input_error(
    minilm: oxiformer.Encoder, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(oxiformer.InputError) as caught:
        minilm(**kwargs)
    assert message in str(caught.value)


def test_missing_and_misshapen_weights_are_listed_in_one_error() -> None:
    config = {
        "vocab_size": 10,
        "hidden_size": 4,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 8,
    }
    tensors = random_model(np.random.default_rng(0), config, False)
    del tensors["encoder.layer.0.output.dense.bias"]
    tensors["embeddings.LayerNorm.weight"] = np.ones(5, dtype=np.float32)
    with pytest.raises(oxiformer.WeightsError) as caught:
        oxiformer.Encoder.from_tensors(config, tensors, source="model.npz")
    message = str(caught.value)
    assert "model.npz" in message
    assert "encoder.layer.0.output.dense.bias" in message
    assert "embeddings.LayerNorm.weight" in message


def test_config_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"vocab_size": 10, "hidden_size": 6}')
    with pytest.raises(oxiformer.ConfigError) as caught:
        oxiformer.Encoder.from_pretrained(tmp_path)
    assert str(tmp_path / "config.json") in str(caught.value)
    assert "num_hidden_layers" in str(caught.value)


def test_rust_sinusoidal_table_matches_distilbert_checkpoint() -> None:
    require_fixtures("tiny-distilbert-sinusoidal/weights.npz")
    with np.load(FIXTURES / "tiny-distilbert-sinusoidal" / "weights.npz") as weights:
        name = next(n for n in weights.files if n.endswith("position_embeddings.weight"))
        table = weights[name]
    ours = _core.sinusoidal_positions(*table.shape)
    assert ours.dtype == np.float32
    assert max_abs_diff("Rust sinusoidal table", ours, table) <= 1e-7
