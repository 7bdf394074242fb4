"""Padding-free packed execution equals the padded path on the unpadded positions."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import oxiformer
import pytest
from helpers import TINY_BERT_SEQCLS, load_golden, max_abs_diff, require_fixtures
from hypothesis import given, settings
from hypothesis import strategies as st
from oxiformer.model import pack
from oxiformer.pooling import Pooling, pool_packed
from test_encoder import random_model


def test_minilm_packed_equals_golden_and_padded(
    minilm_dir: Any, minilm_golden: dict[str, npt.NDArray[Any]]
) -> None:
    encoder = oxiformer.Encoder.from_pretrained(minilm_dir)
    ids, mask, types = (minilm_golden[k] for k in ("input_ids", "attention_mask", "token_type_ids"))
    flat_ids, flat_types, lengths = pack(ids, mask, types)
    packed = encoder.encode_packed(flat_ids, lengths, flat_types)
    assert packed.last_hidden_state.shape == (int(mask.sum()), 384)
    kept = mask.astype(bool)
    golden_rows = minilm_golden["last_hidden_state"][kept]
    assert max_abs_diff("packed vs golden", packed.last_hidden_state, golden_rows) <= 1e-4
    padded = encoder(ids, mask, types)
    diff = max_abs_diff(
        "packed vs padded", packed.last_hidden_state, padded.last_hidden_state[kept]
    )
    assert diff <= 1e-5
    assert packed.pooler_output is not None and padded.pooler_output is not None
    assert max_abs_diff("packed pooler", packed.pooler_output, padded.pooler_output) <= 1e-5
    split = packed.split()
    assert [len(rows) for rows in split] == lengths.tolist()
    mean = Pooling()(padded.last_hidden_state, mask)
    pooled = pool_packed(Pooling(), packed.last_hidden_state, lengths)
    assert max_abs_diff("packed mean pooling", pooled, mean) <= 1e-5


def test_tiny_bert_packed_hidden_states() -> None:
    require_fixtures("tiny-bert/seqcls")
    golden = load_golden(TINY_BERT_SEQCLS / "golden.npz")
    encoder = oxiformer.Encoder.from_pretrained(TINY_BERT_SEQCLS)
    ids, types, lengths = pack(
        golden["input_ids"], golden["attention_mask"], golden["token_type_ids"]
    )
    packed = encoder.encode_packed(ids, lengths, types, output_hidden_states=True)
    kept = golden["attention_mask"].astype(bool)
    assert packed.hidden_states is not None
    for index, state in enumerate(packed.hidden_states):
        diff = max_abs_diff(
            f"packed hidden_state_{index}", state, golden[f"hidden_state_{index}"][kept]
        )
        assert diff <= 2e-5


@settings(max_examples=40, deadline=None)
@given(
    heads=st.integers(1, 3),
    head_size=st.sampled_from([1, 4, 7]),
    lengths=st.lists(st.integers(1, 9), min_size=1, max_size=5),
    seed=st.integers(0, 2**32 - 1),
    sinusoidal=st.booleans(),
)
def test_packed_equals_padded_on_random_models(
    heads: int, head_size: int, lengths: list[int], seed: int, sinusoidal: bool
) -> None:
    config = {
        "vocab_size": 40,
        "hidden_size": heads * head_size,
        "num_hidden_layers": 2,
        "num_attention_heads": heads,
        "intermediate_size": 12,
        "max_position_embeddings": 9,
        "position_embedding_type": "sinusoidal" if sinusoidal else "absolute",
    }
    rng = np.random.default_rng(seed)
    encoder = oxiformer.Encoder.from_tensors(
        config, random_model(rng, config, True), with_pooler=True
    )
    seq_len = max(lengths)
    mask = (np.arange(seq_len)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    ids = rng.integers(0, 40, mask.shape)
    types = rng.integers(0, 2, mask.shape)
    padded = encoder(ids, mask, types)
    flat_ids, flat_types, flat_lengths = pack(ids, mask, types)
    assert flat_lengths.tolist() == lengths
    packed = encoder.encode_packed(flat_ids, flat_lengths, flat_types)
    kept = mask.astype(bool)
    assert max_abs_diff("packed", packed.last_hidden_state, padded.last_hidden_state[kept]) <= 1e-5
    assert packed.pooler_output is not None and padded.pooler_output is not None
    assert max_abs_diff("pooler", packed.pooler_output, padded.pooler_output) <= 1e-5


@pytest.mark.parametrize(
    ("ids", "lengths", "message"),
    [
        ([101, 102], [1, 0, 1], "packed sequence 1 is empty"),
        ([101, 102], [3], "lengths add up to 3"),
        ([101, 102], [-1, 3], "negative length -1"),
        (np.ones(513, dtype=np.int64), [513], "exceeds max_position_embeddings 512"),
        ([101, 99999], [2], "input_ids[1] = 99999"),
    ],
)
def test_packed_input_errors(minilm_dir: Any, ids: Any, lengths: list[int], message: str) -> None:
    encoder = oxiformer.Encoder.from_pretrained(minilm_dir)
    with pytest.raises(oxiformer.InputError) as caught:
        encoder.encode_packed(ids, lengths)
    assert message in str(caught.value)


def test_pack_refuses_left_padding() -> None:
    ids = np.array([[0, 101, 102]])
    with pytest.raises(oxiformer.InputError, match="right-padded"):
        pack(ids, np.array([[0, 1, 1]]), np.zeros_like(ids))
