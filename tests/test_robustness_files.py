"""Malformed model files: each gives a typed error naming the file (and the field).

Complements test_config.py, test_weights.py and test_tokenizer_golden.py::test_errors with
the cases of issue 7 they do not cover: config.json fields of the wrong type, negative, zero
or absurd sizes, unknown names; vocab.txt files that are empty, miss a role token, repeat a
token or are not text; broken tokenizer.json / tokenizer_config.json; and the same files
reached through the high-level loaders. No case may crash or load.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import TINY_BERT_SEQCLS, require_fixtures
from oxiformer import (
    ConfigError,
    Encoder,
    OxiformerError,
    SentenceEncoder,
    Tokenizer,
    TokenizerError,
)
from oxiformer.config import load_config

MINIMAL = {
    "vocab_size": 10,
    "hidden_size": 8,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 16,
}

# (field, bad value, fragment of the message)
BAD_FIELDS: list[tuple[str, Any, str]] = [
    ("hidden_size", "8", "'hidden_size' must be an integer"),
    ("hidden_size", 8.5, "'hidden_size' must be an integer"),
    ("hidden_size", 8.0, "'hidden_size' must be an integer"),
    ("hidden_size", True, "'hidden_size' must be an integer"),
    ("hidden_size", [8], "'hidden_size' must be an integer"),
    ("vocab_size", {"n": 10}, "'vocab_size' must be an integer"),
    ("num_hidden_layers", 2**64, "'num_hidden_layers' must be an integer"),
    ("max_position_embeddings", "512", "'max_position_embeddings' must be an integer"),
    ("type_vocab_size", 2.5, "'type_vocab_size' must be an integer"),
    ("hidden_act", 3, "'hidden_act' must be a string"),
    ("hidden_act", ["gelu"], "'hidden_act' must be a string"),
    ("position_embedding_type", False, "'position_embedding_type' must be a string"),
    ("layer_norm_eps", "1e-12", "'layer_norm_eps' must be a number"),
    # negative sizes
    ("vocab_size", -1, "'vocab_size' must be >= 0"),
    ("hidden_size", -8, "'hidden_size' must be >= 0"),
    ("num_hidden_layers", -1, "'num_hidden_layers' must be >= 0"),
    ("num_attention_heads", -2, "'num_attention_heads' must be >= 0"),
    ("intermediate_size", -16, "'intermediate_size' must be >= 0"),
    ("max_position_embeddings", -512, "'max_position_embeddings' must be >= 0"),
    ("type_vocab_size", -2, "'type_vocab_size' must be >= 0"),
    ("layer_norm_eps", -1e-5, "'layer_norm_eps' must be finite and >= 0"),
    # zero where a model needs at least one
    ("vocab_size", 0, "'vocab_size' must be > 0"),
    ("hidden_size", 0, "'hidden_size' must be > 0"),
    ("num_attention_heads", 0, "'num_attention_heads' must be > 0"),
    ("intermediate_size", 0, "'intermediate_size' must be > 0"),
    ("max_position_embeddings", 0, "'max_position_embeddings' must be > 0"),
    # relations and names
    ("hidden_size", 9, "not a multiple of 'num_attention_heads'"),
    ("num_attention_heads", 3, "not a multiple of 'num_attention_heads'"),
    ("num_attention_heads", 16, "not a multiple of 'num_attention_heads'"),
    ("hidden_act", "swish", "unsupported 'hidden_act'"),
    ("hidden_act", "", "unsupported 'hidden_act'"),
    ("hidden_act", "GELU", "unsupported 'hidden_act'"),
    ("position_embedding_type", "relative_key", "unsupported 'position_embedding_type'"),
    # sizes no machine holds: refused before anything is allocated
    ("num_hidden_layers", 10**12, "'num_hidden_layers' (1000000000000) is more than"),
    ("vocab_size", 2**62, "'vocab_size' (4611686018427387904) x 'hidden_size' (8) is too large"),
    ("intermediate_size", 2**61, "'intermediate_size' (2305843009213693952) x 'hidden_size'"),
]


def write_config(directory: Path, config: Any) -> Path:
    path = directory / "config.json"
    path.write_text(config if isinstance(config, str) else json.dumps(config), "utf-8")
    return path


@pytest.mark.parametrize(("field", "value", "fragment"), BAD_FIELDS)
def test_bad_config_field_is_a_config_error_naming_file_and_field(
    tmp_path: Path, field: str, value: Any, fragment: str
) -> None:
    path = write_config(tmp_path, {**MINIMAL, field: value})
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert fragment in message, message
    assert field in message, message


def test_sinusoidal_table_too_large_to_compute(tmp_path: Path) -> None:
    config = {
        **MINIMAL,
        "max_position_embeddings": 10**12,
        "position_embedding_type": "sinusoidal",
    }
    path = write_config(tmp_path, config)
    with pytest.raises(ConfigError, match="sinusoidal position table") as caught:
        load_config(tmp_path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "not valid JSON"),
        ('{"vocab_size": 10, "hidden_size": NaN}', "'hidden_size': NaN is not a finite number"),
        ('{"vocab_size": 10,', "not valid JSON"),
        ("null", "expected a JSON object"),
        ('"config"', "expected a JSON object"),
        ("{}", "missing required field 'vocab_size'"),
    ],
)
def test_config_text_that_is_no_config(tmp_path: Path, text: str, fragment: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    assert str(path) in str(caught.value)
    assert fragment in str(caught.value)


def test_bad_config_stops_the_model_loaders(tmp_path: Path) -> None:
    require_fixtures("tiny-bert/seqcls")
    model = tmp_path / "model"
    shutil.copytree(TINY_BERT_SEQCLS, model)
    config = json.loads((model / "config.json").read_text("utf-8"))
    write_config(model, {**config, "num_attention_heads": 5})
    with pytest.raises(ConfigError, match="not a multiple") as caught:
        Encoder.from_pretrained(model)
    assert str(model / "config.json") in str(caught.value)
    write_config(model, {**config, "num_hidden_layers": 10**15})
    with pytest.raises(ConfigError, match="num_hidden_layers"):
        Encoder.from_pretrained(model)


# ---- vocab.txt ----------------------------------------------------------------------------------

ROLES = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.mark.parametrize(
    ("lines", "fragment"),
    [
        ([], "the vocabulary is empty"),
        (["hello", "world"], "is not in the vocabulary"),
        ([r for r in ROLES if r != "[UNK]"] + ["hello"], "'[UNK]' is not in the vocabulary"),
        ([r for r in ROLES if r != "[CLS]"] + ["hello"], "'[CLS]' is not in the vocabulary"),
        ([r for r in ROLES if r != "[SEP]"] + ["hello"], "'[SEP]' is not in the vocabulary"),
        (["[unk]", "[cls]", "[sep]"], "is not in the vocabulary"),
        ([*ROLES, "hello", "world", "hello"], '"hello" appears twice, on lines 6 and 8'),
        ([*ROLES, "[UNK]"], '"[UNK]" appears twice, on lines 2 and 6'),
        ([*ROLES, "a", "a  "], '"a" appears twice, on lines 6 and 7'),
        ([*ROLES, "", ""], '"" appears twice, on lines 6 and 7'),
    ],
    ids=[
        "empty",
        "no-roles",
        "no-unk",
        "no-cls",
        "no-sep",
        "lowercase-roles",
        "duplicate",
        "duplicate-role",
        "duplicate-after-trim",
        "blank-lines",
    ],
)
def test_bad_vocab_txt(tmp_path: Path, lines: list[str], fragment: str) -> None:
    path = tmp_path / "vocab.txt"
    path.write_text("".join(line + "\n" for line in lines), "utf-8")
    for load in (lambda: Tokenizer.from_vocab(path), lambda: Tokenizer.from_pretrained(tmp_path)):
        with pytest.raises(TokenizerError) as caught:
            load()
        message = str(caught.value)
        assert message.startswith(f"{path}: "), message
        assert fragment in message, message


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe[\x00U\x00N\x00K\x00]\x00", b"[UNK]\n\x80abc\n", b"\x00" * 4 + b"\xc3"],
    ids=["utf16", "latin1-byte", "truncated-utf8"],
)
def test_vocab_txt_that_is_not_utf8(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "vocab.txt"
    path.write_bytes(content)
    with pytest.raises(TokenizerError) as caught:
        Tokenizer.from_vocab(path)
    assert str(path) in str(caught.value)


def test_vocab_path_that_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match=r"vocab\.txt"):
        Tokenizer.from_vocab(tmp_path / "vocab.txt")
    (tmp_path / "vocab.txt").mkdir()
    with pytest.raises(TokenizerError) as caught:
        Tokenizer.from_vocab(tmp_path / "vocab.txt")
    assert str(tmp_path / "vocab.txt") in str(caught.value)


# ---- tokenizer.json and tokenizer_config.json ---------------------------------------------------


def tokenizer_document(vocab: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "1.0",
        "added_tokens": [],
        "normalizer": {"type": "BertNormalizer", "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": vocab},
    }


GOOD_VOCAB = {token: index for index, token in enumerate([*ROLES, "hello"])}


def edited(change: dict[str, Any], model: dict[str, Any] | None = None) -> str:
    document = {**tokenizer_document(GOOD_VOCAB), **change}
    if model is not None:
        document["model"] = {**document["model"], **model}
    return json.dumps(document)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "EOF"),
        (edited({})[:200], "EOF"),
        ("[]", "no 'model' section"),
        (edited({}, {"type": "BPE"}), "model type 'BPE' is not supported"),
        (edited({}, {"vocab": ["[UNK]"]}), "model has no 'vocab' object"),
        (edited({}, {"vocab": {"[UNK]": -1}}), "expected a token id, found -1"),
        (edited({}, {"vocab": {"[UNK]": "0"}}), 'expected a token id, found "0"'),
        (edited({}, {"vocab": {"[UNK]": 2**32}}), "expected a token id"),
        (edited({}, {"vocab": {"[UNK]": 2**32 - 1}}), "too large"),
        (edited({}, {"vocab": {"[UNK]": 10**8}}), "is this a vocabulary?"),
        (edited({}, {"vocab": {}}), "'[UNK]' is not in the vocabulary"),
        # found by fuzz/tokenizer_files: two tokens for one id broke the save round trip
        (
            edited({}, {"vocab": {**GOOD_VOCAB, "un": 8, "##aff": 8}}),
            'the tokens "##aff" and "un" have the same id 8',
        ),
        (edited({}, {"unk_token": "<unk>"}), "'<unk>' is not in the vocabulary"),
        (edited({}, {"unk_token": 5}), "'unk_token' must be a string"),
        (edited({}, {"max_input_chars_per_word": -3}), "max_input_chars_per_word"),
        (edited({"normalizer": {"type": "NFC"}}), "normalizer"),
        (edited({"normalizer": {"type": "BertNormalizer", "lowercase": 1}}), "'lowercase'"),
        (edited({"pre_tokenizer": None}), "pre_tokenizer"),
        (edited({"post_processor": {"type": "RobertaProcessing"}}), "post_processor"),
        (
            edited({"post_processor": {"type": "BertProcessing", "cls": ["[CLS]", 2], "sep": [3]}}),
            "BertProcessing needs 'sep'",
        ),
        (edited({"added_tokens": [{"id": 0}]}), "an added token has no 'content'"),
        (edited({"added_tokens": [{"id": "x", "content": "[X]"}]}), "expected a token id"),
        (edited({"decoder": {"type": "ByteLevel"}}), "decoder"),
    ],
)
def test_bad_tokenizer_json(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text(text, "utf-8")
    with pytest.raises(TokenizerError) as caught:
        Tokenizer.from_pretrained(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert fragment in message, message


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"do_lower_case": "yes"}, "'do_lower_case' must be true or false"),
        ({"tokenize_chinese_chars": 0}, "'tokenize_chinese_chars' must be true or false"),
        ({"strip_accents": "no"}, "'strip_accents' must be true, false or null"),
    ],
)
def test_bad_tokenizer_config_json(tmp_path: Path, config: dict[str, Any], fragment: str) -> None:
    (tmp_path / "vocab.txt").write_text("\n".join([*ROLES, "hello"]) + "\n", "utf-8")
    path = tmp_path / "tokenizer_config.json"
    path.write_text(json.dumps(config), "utf-8")
    with pytest.raises(TokenizerError) as caught:
        Tokenizer.from_pretrained(tmp_path)
    assert str(caught.value).startswith(f"{path}: ")
    assert fragment in str(caught.value)
    path.write_text("{oops", "utf-8")
    with pytest.raises(TokenizerError) as caught:
        Tokenizer.from_pretrained(tmp_path)
    assert str(caught.value).startswith(f"{path}: ")


def test_broken_tokenizer_stops_the_sentence_encoder(minilm_dir: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(minilm_dir, model)
    for name in ("tokenizer.json", "vocab.txt"):
        (model / name).unlink(missing_ok=True)
    vocab = model / "vocab.txt"
    vocab.write_text("[UNK]\n[CLS]\n[SEP]\n[CLS]\n", "utf-8")
    with pytest.raises(TokenizerError) as caught:
        SentenceEncoder.from_pretrained(model)
    assert str(vocab) in str(caught.value)
    assert isinstance(caught.value, OxiformerError)
