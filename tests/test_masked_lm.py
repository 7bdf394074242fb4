"""MaskedLM (HF ``BertForMaskedLM``) and fill-mask against the golden transformers outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import oxiformer
import pytest
from helpers import FIXTURES, load_golden, max_abs_diff, require_fixtures
from oxiformer import reference
from oxiformer.weights import read_tensors

require_fixtures("tiny-bert/mlm")

MLM = FIXTURES / "tiny-bert" / "mlm"
TEXTS = json.loads((MLM / "texts.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def model() -> oxiformer.MaskedLM:
    return oxiformer.MaskedLM.from_pretrained(MLM)


def test_logits_match_golden(model: oxiformer.MaskedLM) -> None:
    golden = load_golden(MLM / "golden.npz")
    out = model(
        golden["input_ids"],
        token_type_ids=golden["token_type_ids"],
        attention_mask=golden["attention_mask"],
    )
    assert out.logits.shape == golden["logits"].shape and out.logits.dtype == np.float32
    assert max_abs_diff("MLM logits", out.logits, golden["logits"]) <= 1e-4


def test_reference_lm_head_matches_golden() -> None:
    golden = load_golden(MLM / "golden.npz")
    stored = {k.removeprefix("bert."): v for k, v in read_tensors(MLM / "weights.npz").items()}
    config = oxiformer.config.load_config(MLM)
    hidden = reference.forward(
        stored, config, golden["input_ids"], golden["attention_mask"], golden["token_type_ids"]
    )["last_hidden_state"]
    logits = reference.lm_head(stored, config, hidden)
    assert max_abs_diff("reference MLM logits", logits, golden["logits"]) <= 1e-4


def test_fill_mask_top5_ids_equal_the_fixture(model: oxiformer.MaskedLM) -> None:
    for text, expected in zip(TEXTS["texts"], TEXTS["top5_ids_at_mask"]):
        if not expected:
            with pytest.raises(oxiformer.InputError, match="no mask token"):
                model.fill_mask(text)
            continue
        predictions = model.fill_mask(text, top_k=5)
        print(text, [p["token"] for p in predictions])
        assert [p["token"] for p in predictions] == expected[0]


def test_fill_mask_has_the_pipeline_format(model: oxiformer.MaskedLM) -> None:
    text = "Paris is the [MASK] of France."
    predictions = model.fill_mask(text, top_k=3)
    assert len(predictions) == 3
    assert set(predictions[0]) == {"score", "token", "token_str", "sequence"}
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] < 1
    for p in predictions:
        assert p["token_str"] == model.tokenizer.decode([p["token"]], skip_special_tokens=False)
        assert p["sequence"].startswith("paris is the ") and "[MASK]" not in p["sequence"]
    # The scores are the softmax at the mask position.
    inputs = model.tokenizer([text])
    logits = model(inputs["input_ids"]).logits[0]
    position = int(np.flatnonzero(inputs["input_ids"][0] == model.tokenizer.mask_token_id)[0])
    row = logits[position].astype(np.float64)
    probs = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
    assert max_abs_diff("fill-mask scores", scores, np.sort(probs)[::-1][:3]) <= 1e-6
    # Two masks: one list per mask, the other mask kept in the sequence.
    both = model.fill_mask("The [MASK] of France is [MASK].", top_k=2)
    assert len(both) == 2 and all(len(row) == 2 for row in both)
    assert "[MASK]" in both[0][0]["sequence"]
    # A list of texts: one result each.
    many = model.fill_mask([text, "I loved this [MASK]!"], top_k=1)
    assert many[0][0]["token"] == predictions[0]["token"] and len(many[1]) == 1


def test_fill_mask_rejects_bad_arguments(model: oxiformer.MaskedLM, tmp_path: Path) -> None:
    with pytest.raises(oxiformer.InputError, match="top_k"):
        model.fill_mask("a [MASK]", top_k=0)
    # A checkpoint without the decoder matrix reads the word embeddings (HF ties them).
    stored = dict(read_tensors(MLM / "weights.npz"))
    del stored["cls.predictions.decoder.weight"], stored["cls.predictions.decoder.bias"]
    (tmp_path / "tied").mkdir()
    np.savez(tmp_path / "tied" / "weights.npz", **stored)
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(MLM / name, tmp_path / "tied")
    tied = oxiformer.MaskedLM.from_pretrained(tmp_path / "tied")
    ids = np.array([[101, 1996, 103, 102]])
    assert tied(ids).logits.tobytes() == model(ids).logits.tobytes()
    # Tied (the default): the word embeddings are the matrix, whatever is stored under its name.
    stored["cls.predictions.decoder.weight"] = np.zeros((30522, 32), dtype=np.float32)
    np.savez(tmp_path / "tied" / "weights.npz", **stored)
    assert oxiformer.MaskedLM.from_pretrained(tmp_path / "tied")(ids).logits.tobytes() == (
        model(ids).logits.tobytes()
    )
    del stored["cls.predictions.decoder.weight"]
    del stored["cls.predictions.bias"]
    (tmp_path / "broken").mkdir()
    np.savez(tmp_path / "broken" / "weights.npz", **stored)
    shutil.copy(MLM / "config.json", tmp_path / "broken")
    with pytest.raises(oxiformer.WeightsError, match=r"cls\.predictions\.decoder\.bias"):
        oxiformer.MaskedLM.from_pretrained(tmp_path / "broken")
    # A checkpoint without any head (a base model) says so, rather than list its tensors.
    base = {k: v for k, v in stored.items() if not k.startswith("cls.")}
    np.savez(tmp_path / "broken" / "weights.npz", **base)
    with pytest.raises(oxiformer.WeightsError, match=r"no masked-LM head \(no 'cls\.predictions"):
        oxiformer.MaskedLM.from_pretrained(tmp_path / "broken")


def test_int8_masked_lm_keeps_the_top_token(model: oxiformer.MaskedLM) -> None:
    quantized = oxiformer.MaskedLM.from_pretrained(MLM, dtype="int8")
    golden = load_golden(MLM / "golden.npz")
    kwargs = {
        "token_type_ids": golden["token_type_ids"],
        "attention_mask": golden["attention_mask"],
    }
    fp32 = model(golden["input_ids"], **kwargs).logits
    int8 = quantized(golden["input_ids"], **kwargs).logits
    diff = max_abs_diff("int8 vs fp32 MLM logits", int8, fp32)
    assert 0 < diff < 1.0
    masks = golden["input_ids"] == 103
    agree = (int8[masks].argmax(-1) == fp32[masks].argmax(-1)).mean()
    print(f"int8 top-1 agreement at the masks: {agree:.2f}")


@pytest.mark.parametrize("dtype", [None, "int8"])
def test_convert_and_quantize_write_a_masked_lm_that_loads_back_identically(
    model: oxiformer.MaskedLM, dtype: str | None, tmp_path: Path
) -> None:
    """``oxiformer convert`` / ``quantize`` keep the LM head (written out, untied; in int8 with
    its bits in ``quantization_config``): the saved model gives the same bits as the source
    loaded with the same ``dtype``, and so does a model saved from the saved one."""
    from oxiformer.convert import convert

    golden = load_golden(MLM / "golden.npz")
    ids = golden["input_ids"]
    kwargs = {
        "token_type_ids": golden["token_type_ids"],
        "attention_mask": golden["attention_mask"],
    }
    kind, saved = convert(MLM, tmp_path / "saved", dtype=dtype)
    assert kind == "masked-lm"
    config = json.loads((saved / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"] and not config["tie_word_embeddings"]
    source = model if dtype is None else oxiformer.MaskedLM.from_pretrained(MLM, dtype=dtype)
    expected = source(ids, **kwargs).logits
    reloaded = oxiformer.MaskedLM.from_pretrained(saved)
    assert reloaded.encoder.dtype == (dtype or "float32")
    stored = read_tensors(saved / "weights.npz")
    head_dtype = stored["cls.predictions.decoder.weight"].dtype
    assert head_dtype == (np.int8 if dtype else np.float32)
    assert reloaded(ids, **kwargs).logits.tobytes() == expected.tobytes()
    again = reloaded.save_pretrained(tmp_path / "again")
    assert oxiformer.MaskedLM.from_pretrained(again)(ids, **kwargs).logits.tobytes() == (
        expected.tobytes()
    )
    assert reloaded.fill_mask("the man worked as a [MASK].", top_k=3) == source.fill_mask(
        "the man worked as a [MASK].", top_k=3
    )
    if dtype:
        config["tie_word_embeddings"] = True
        (saved / "config.json").write_text(json.dumps(config))
        with pytest.raises(oxiformer.ConfigError, match="tie_word_embeddings must be false"):
            oxiformer.MaskedLM.from_pretrained(saved)
        config["tie_word_embeddings"] = False
        config["quantization_config"]["lm_head_activation_bits"] = {"head": 8}
        (saved / "config.json").write_text(json.dumps(config))
        with pytest.raises(oxiformer.ConfigError, match="unknown module 'head'"):
            oxiformer.MaskedLM.from_pretrained(saved)
