"""Hostile model inputs and texts: a typed error, or the right answer, never a crash.

Complements test_encoder.py / test_packed.py / test_sentence.py with the cases of issue 7
they do not cover: ids and token types out of range on every entry point, over-long
sequences (high-level APIs truncate, low-level ones raise), empty batches and zero-length
sequences, all-zero attention-mask rows against the NumPy reference (HF semantics: uniform
attention), wrong dtypes and array layouts, and texts that are huge, empty, or made of
controls, NULs, whitespace or special-token strings.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt
import oxiformer
import pytest
from helpers import TINY_BERT_SEQCLS, VOCABS, load_model, max_abs_diff, require_fixtures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oxiformer import InputError, OxiformerError, TokenizerError, reference

VOCAB = 30522


@pytest.fixture(scope="module")
def tiny() -> oxiformer.Encoder:
    require_fixtures("tiny-bert/seqcls")
    return oxiformer.Encoder.from_pretrained(TINY_BERT_SEQCLS, with_pooler=True)


@pytest.fixture(scope="module")
def tiny_model() -> tuple[dict[str, Any], dict[str, npt.NDArray[np.float32]]]:
    require_fixtures("tiny-bert/seqcls")
    return load_model(TINY_BERT_SEQCLS, with_pooler=True)


@pytest.fixture(scope="module")
def sentence() -> oxiformer.SentenceEncoder:
    return oxiformer.SentenceEncoder.from_pretrained()


# ---- ids, token types, lengths --------------------------------------------------------------

BAD_PADDED: list[tuple[dict[str, Any], str]] = [
    ({"input_ids": [[101, VOCAB]]}, f"input_ids[0, 1] = {VOCAB} is outside [0, {VOCAB})"),
    ({"input_ids": [[101, 2**40]]}, "input_ids[0, 1] = 1099511627776"),
    ({"input_ids": [[-(2**63), 5]]}, "input_ids[0, 0] = -9223372036854775808"),
    ({"input_ids": np.array([[5, 2**64 - 1]], np.uint64)}, "too large for int64"),
    ({"input_ids": [[5, 5]], "token_type_ids": [[0, 2]]}, "token_type_ids[0, 1] = 2"),
    ({"input_ids": [[5, 5]], "token_type_ids": [[-1, 0]]}, "token_type_ids[0, 0] = -1"),
    ({"input_ids": [[5, 5]], "attention_mask": [[1, -1]]}, "a mask holds 0 or 1"),
    ({"input_ids": np.ones((1, 129), np.int64)}, "exceeds max_position_embeddings 128"),
    ({"input_ids": np.ones((3, 0), np.int64)}, "sequence length 0"),
    ({"input_ids": [[1.5, 2.0]]}, "must hold integers, got dtype float64"),
    ({"input_ids": np.array([[1, 2]], np.complex64)}, "must hold integers"),
    ({"input_ids": np.array([["1", "2"]])}, "must hold integers"),
    ({"input_ids": np.array([[1, 2]], dtype=object)}, "must hold integers"),
    ({"input_ids": np.array([[True, False]])}, "must hold integers, got dtype bool"),
    ({"input_ids": [[5, 5]], "token_type_ids": [[0.0, 1.0]]}, "must hold integers"),
    ({"input_ids": [[5, 5]], "attention_mask": [[1.0, 1.0]]}, "must hold integers"),
    ({"input_ids": 7}, "must be 2-D"),
    ({"input_ids": np.ones((1, 2, 3), np.int64)}, "must be 2-D"),
    ({"input_ids": [[1, 2], [3]]}, "input_ids is not an array of integers"),
    ({"input_ids": [[5, 5]], "token_type_ids": [[0, 0, 0]]}, "token_type_ids has shape"),
    ({"input_ids": [[5, 5]], "attention_mask": [[1], [1]]}, "attention_mask has shape"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_PADDED)
def test_bad_padded_inputs_raise_input_error(
    tiny: oxiformer.Encoder, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError) as caught:
        tiny(**kwargs)
    assert message in str(caught.value)


BAD_PACKED: list[tuple[Any, Any, Any, str]] = [
    ([101, VOCAB], [2], None, f"is outside [0, {VOCAB})"),
    ([101, -3], [2], None, "= -3 is outside"),
    ([101, 102], [2], [0, 5], "token_type_ids"),
    ([101, 102], [2], [0], "token_type_ids has shape"),
    ([101, 102], [1, -1, 2], None, "negative length -1"),
    ([101, 102], [3], None, "the lengths add up to 3"),
    ([101, 102], [2, 0], None, "packed sequence 1 is empty"),
    (np.ones(130, np.int64), [130], None, "exceeds max_position_embeddings 128"),
    ([1.0, 2.0], [2], None, "must hold integers"),
    ([101, 102], [2.0], None, "must hold integers"),
]


@pytest.mark.parametrize(("ids", "lengths", "types", "message"), BAD_PACKED)
def test_bad_packed_inputs_raise_input_error(
    tiny: oxiformer.Encoder, ids: Any, lengths: Any, types: Any, message: str
) -> None:
    with pytest.raises(InputError) as caught:
        tiny.encode_packed(ids, lengths, types)
    assert message in str(caught.value)


def test_errors_are_oxiformer_errors(tiny: oxiformer.Encoder) -> None:
    with pytest.raises(OxiformerError):
        tiny([[VOCAB]])
    with pytest.raises(OxiformerError):
        tiny.encode_packed([1], [0])


def test_empty_batches_give_empty_results(
    tiny: oxiformer.Encoder, sentence: oxiformer.SentenceEncoder
) -> None:
    for seq_len in (0, 7):
        out = tiny(np.zeros((0, seq_len), np.int64))
        assert out.last_hidden_state.shape == (0, seq_len, 32)
        assert out.pooler_output is not None and out.pooler_output.shape == (0, 32)
    packed = tiny.encode_packed(np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert packed.last_hidden_state.shape == (0, 32)
    assert sentence.encode([]).shape == (0, 384)
    assert sentence.encode([], output_value="token_embeddings") == []
    tokenizer = sentence.tokenizer
    assert tokenizer.encode_batch([]) == []
    assert tokenizer([], padding=True)["input_ids"].shape == (0, 0)


def test_over_long_texts_are_truncated_by_the_high_level_api(
    sentence: oxiformer.SentenceEncoder,
) -> None:
    # The low-level encoder refuses what the high-level APIs cut to max_seq_length.
    require_fixtures("tiny-bert/seqcls")
    words = " ".join(f"w{i}" for i in range(5000))
    tokens = sentence.encode([words, "short"], output_value="token_embeddings")
    assert tokens[0].shape == (sentence.max_seq_length, 384)
    with pytest.raises(InputError, match="exceeds max_position_embeddings 512"):
        sentence.encoder(np.full((1, 513), 1000, np.int64))
    classifier = oxiformer.SequenceClassifier.from_pretrained(TINY_BERT_SEQCLS)
    (long_result,) = classifier.predict([words])
    (pair_result,) = classifier.predict([(words, words)])
    assert 0.0 <= long_result["score"] <= 1.0 and 0.0 <= pair_result["score"] <= 1.0
    encoded = classifier._tokenizer()([words], truncation=True, max_length=classifier.max_length)
    assert encoded["input_ids"].shape == (1, 128)


# ---- masks --------------------------------------------------------------------------------------


def test_all_zero_mask_rows_match_the_reference(
    tiny: oxiformer.Encoder,
    tiny_model: tuple[dict[str, Any], dict[str, npt.NDArray[np.float32]]],
) -> None:
    config, tensors = tiny_model
    rng = np.random.default_rng(7)
    ids = rng.integers(0, VOCAB, (4, 9))
    types = rng.integers(0, 2, (4, 9))
    mask = np.ones((4, 9), np.int64)
    mask[1] = 0  # nothing to attend to: HF's additive mask makes attention uniform
    mask[2, 4:] = 0
    mask[3] = 0
    out = tiny(ids, mask, types)
    want = reference.forward(tensors, config, ids, mask, types, dtype=np.float64, with_pooler=True)
    assert max_abs_diff("all-zero rows", out.last_hidden_state, want["last_hidden_state"]) < 1e-5
    assert out.pooler_output is not None
    assert max_abs_diff("pooler", out.pooler_output, want["pooler_output"]) < 1e-5
    # The fully masked rows are not the unmasked ones (uniform weights, not softmax).
    full = tiny(ids[1:2], np.ones((1, 9), np.int64), types[1:2]).last_hidden_state
    assert max_abs_diff("zero row vs full row", out.last_hidden_state[1], full[0]) > 1e-2
    assert np.isfinite(out.last_hidden_state).all()


# ---- layouts and dtypes -------------------------------------------------------------------------


def test_layouts_and_integer_dtypes_give_the_same_result(tiny: oxiformer.Encoder) -> None:
    rng = np.random.default_rng(3)
    ids = rng.integers(0, VOCAB, (3, 11))
    types = rng.integers(0, 2, (3, 11))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    expected = tiny(ids, mask, types).last_hidden_state

    def wide(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.repeat(array, 3, axis=0)[::3]

    variants: dict[str, tuple[Any, Any, Any]] = {
        "fortran": (np.asfortranarray(ids), np.asfortranarray(mask), np.asfortranarray(types)),
        "row-strided": (wide(ids), wide(mask), wide(types)),
        "reversed twice": (ids[::-1][::-1], mask[:, ::-1][:, ::-1], types[::-1, ::-1][::-1, ::-1]),
        "transposed twice": (ids.T.copy().T, mask.T.copy().T, types.T.copy().T),
        "int8 types": (ids, mask, types.astype(np.int8)),
        "uint16 mask": (ids, mask.astype(np.uint16), types),
        "int32 all": (ids.astype(np.int32), mask.astype(np.int32), types.astype(np.int32)),
        "uint32 ids": (ids.astype(np.uint32), mask, types),
        "lists": (ids.tolist(), mask.tolist(), types.tolist()),
    }
    readonly = [array.copy() for array in (ids, mask, types)]
    for array in readonly:
        array.flags.writeable = False
    variants["read-only"] = (readonly[0], readonly[1], readonly[2])
    for label, (v_ids, v_mask, v_types) in variants.items():
        got = tiny(v_ids, v_mask, v_types).last_hidden_state
        assert got.tobytes() == expected.tobytes(), label

    packed = tiny.encode_packed(ids[0], [11], types[0]).last_hidden_state
    strided_ids = np.repeat(ids[0], 2)[::2]
    strided_types = np.repeat(types[0], 2)[::2]
    strided = tiny.encode_packed(strided_ids, np.array([11], np.int32), strided_types)
    assert strided.last_hidden_state.tobytes() == packed.tobytes()


# ---- texts --------------------------------------------------------------------------------------

HOSTILE_TEXTS = {
    "empty": "",
    "nul": "\x00",
    "nuls": "a\x00b\x00\x00c",
    "controls": "".join(chr(c) for c in range(32)) + "\x7f\x85\u200b\u200e\ufeff",
    "only whitespace": " \t\n\r\u00a0\u2000\u2028\u2029\u3000" * 50,
    "only specials": "[CLS][SEP][MASK][PAD][UNK]" * 20,
    "special lookalikes": "[CLS [SEP]] [[MASK]] [cls] [ MASK ]",
    "100k-char word": "a" * 100_000,
    "100k-char mixed word": ("é中a\u0301" * 25_000),
    "1 MB": ("The quick brown fox jumps. 😀 中文 " * 32_000)[:1_000_000],
    "combining pile": "a" + "\u0301" * 5000,
    "private use and unassigned": "\ue000\U000f0000\U0010fffd\u0378\U000e0001",
    "noncharacters": "\ufffe\uffff\U0001fffe",
}


@pytest.mark.parametrize("label", sorted(HOSTILE_TEXTS))
def test_hostile_texts_encode_to_finite_embeddings(
    sentence: oxiformer.SentenceEncoder, label: str
) -> None:
    text = HOSTILE_TEXTS[label]
    tokenizer = sentence.tokenizer
    encoding = tokenizer.encode(text)
    assert len(encoding.ids) >= 2
    assert all(0 <= i < tokenizer.vocab_size for i in encoding.ids)
    assert all(0 <= start <= end <= len(text) for start, end in encoding.offsets)
    embedding = sentence.encode(text)
    assert embedding.shape == (384,)
    assert np.isfinite(embedding).all()
    assert abs(float(np.linalg.norm(embedding)) - 1.0) < 1e-5


def test_texts_with_nothing_to_tokenize_equal_the_empty_text(
    sentence: oxiformer.SentenceEncoder,
) -> None:
    empty = sentence.encode("")
    for label in ("nul", "controls", "only whitespace"):
        assert sentence.tokenizer.encode(HOSTILE_TEXTS[label]).ids == [101, 102], label
        assert sentence.encode(HOSTILE_TEXTS[label]).tobytes() == empty.tobytes(), label
    assert sentence.tokenizer.encode("a" * 100_000).ids == [101, 100, 102]


@pytest.mark.parametrize("surrogate", ["\ud800", "\udfff", "ok \udc80 text"])
def test_lone_surrogates_are_typed_errors_everywhere(
    sentence: oxiformer.SentenceEncoder, surrogate: str
) -> None:
    tokenizer = sentence.tokenizer
    for call in (
        lambda: tokenizer.encode(surrogate),
        lambda: tokenizer.encode("fine", surrogate),
        lambda: tokenizer([surrogate]),
        lambda: tokenizer.encode_batch(["fine", surrogate]),
        lambda: tokenizer.tokenize(surrogate),
        lambda: sentence.encode(["fine", surrogate]),
    ):
        with pytest.raises(TokenizerError, match="lone surrogate"):
            call()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"padding": "max_length", "max_length": 2**40}, "is more than 16777216 tokens"),
        ({"padding": True, "pad_to_multiple_of": 2**62}, "is more than 16777216 tokens"),
        ({"padding": "sideways"}, "unknown padding"),
        ({"truncation": True, "max_length": 0}, "special tokens"),
    ],
)
def test_absurd_tokenizer_options_are_typed_errors(
    sentence: oxiformer.SentenceEncoder, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(TokenizerError, match=message):
        sentence.tokenizer(["a b", "c"], **kwargs)


def test_negative_lengths_are_refused_not_wrapped(sentence: oxiformer.SentenceEncoder) -> None:
    # A negative max_length cannot become a huge unsigned one.
    with pytest.raises((TokenizerError, OverflowError)):
        sentence.tokenizer(["a b"], truncation=True, max_length=-1)
    with pytest.raises((TokenizerError, OverflowError)):
        sentence.tokenizer(["a b"], padding=True, pad_to_multiple_of=-8)


# ---- extreme texts against HF tokenizers --------------------------------------------------------

PIECES = st.one_of(
    st.sampled_from(["\x00", "\x01", "\x7f", "\u200b", "\ufeff", "\r\n", "\u3000", " " * 7]),
    st.sampled_from(["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "[SEP][SEP]", "[MASK"]),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=6),
    st.tuples(st.sampled_from(["a", "é", "中", "😀", "x\u0301"]), st.integers(1, 100_000)).map(
        lambda piece: piece[0] * piece[1]
    ),
)


@functools.cache
def uncased_pair() -> tuple[oxiformer.Tokenizer, Any]:
    tokenizers = pytest.importorskip("tokenizers")
    vocab = VOCABS / "bert-base-uncased.txt"
    return oxiformer.Tokenizer.from_vocab(vocab), tokenizers.BertWordPieceTokenizer(
        str(vocab), lowercase=True
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES, max_size=8).map("".join))
def test_extreme_texts_match_hf(text: str) -> None:
    require_fixtures("vocabs")
    ours, theirs = uncased_pair()
    mine, expected = ours.encode(text), theirs.encode(text)
    assert mine.ids == expected.ids
    assert mine.offsets == expected.offsets
