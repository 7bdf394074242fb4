"""The ``SentenceTransformer`` methods ported code calls around ``encode``
(``oxiformer.st_compat``): each does what sentence-transformers' does, on the CPU."""

from __future__ import annotations

import json

import numpy as np
import oxiformer
import pytest
from helpers import FIXTURES, require_fixtures

require_fixtures("minilm/texts.json")
TEXTS: list[str] = json.loads((FIXTURES / "minilm" / "texts.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def model() -> oxiformer.SentenceEncoder:
    return oxiformer.SentenceEncoder.from_pretrained()


def test_device_to_and_eval(model: oxiformer.SentenceEncoder) -> None:
    assert model.device == "cpu"
    assert model.to("cpu") is model and model.to("cpu:0") is model and model.eval() is model
    for device in ("cuda", "cuda:0", "mps"):
        with pytest.raises(oxiformer.InputError, match="runs on the CPU only"):
            model.to(device)
        with pytest.raises(oxiformer.InputError, match="runs on the CPU only"):
            model.encode(TEXTS[:1], device=device)
    assert model.encode(TEXTS[:2], device="cpu:0").tobytes() == model.encode(TEXTS[:2]).tobytes()


def test_tokenize_pads_to_the_longest_and_cuts_at_max_seq_length(
    model: oxiformer.SentenceEncoder,
) -> None:
    assert model.get_max_seq_length() == model.max_seq_length == 256
    features = model.tokenize(["a short one", "word " * 400])
    assert sorted(features) == ["attention_mask", "input_ids", "token_type_ids"]
    assert features["input_ids"].shape == (2, 256)
    assert features["attention_mask"][0].sum() == 5  # [CLS] a short one [SEP]
    assert features["input_ids"][1, -1] == model.tokenizer.sep_token_id
    want = model.tokenizer.encode("a short one").ids
    assert features["input_ids"][0, : len(want)].tolist() == want


def test_the_multi_process_pool_is_encode_on_this_process(
    model: oxiformer.SentenceEncoder,
) -> None:
    pool = model.start_multi_process_pool(["cpu", "cpu"])
    got = model.encode_multi_process(TEXTS, pool, batch_size=8, normalize_embeddings=True)
    want = model.encode(TEXTS, batch_size=8, normalize_embeddings=True)
    assert got.tobytes() == want.tobytes()
    assert isinstance(got, np.ndarray)
    model.stop_multi_process_pool(pool)
    with pytest.raises(oxiformer.InputError, match="runs on the CPU only"):
        model.start_multi_process_pool(["cuda:0", "cuda:1"])
    other = oxiformer.SentenceEncoder.from_pretrained()
    with pytest.raises(oxiformer.InputError, match="this model's start_multi_process_pool"):
        other.encode_multi_process(TEXTS, pool)
