"""oxiformer.config: reading config.json, errors naming the file, DistilBERT translation."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import FIXTURES, TINY_BERT_SEQCLS, require_fixtures
from oxiformer import ConfigError, _core
from oxiformer.config import load_config, read_config_json, to_bert_fields

MINIMAL = {
    "vocab_size": 10,
    "hidden_size": 8,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 16,
}

#: The normalized configuration of the tiny fixtures (hidden 32, 2 layers, 4 heads).
TINY = {
    "vocab_size": 30522,
    "hidden_size": 32,
    "embedding_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "hidden_act": "gelu",
    "max_position_embeddings": 128,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "position_embedding_type": "absolute",
}


def test_load_config_from_directory_or_file() -> None:
    require_fixtures("tiny-bert/seqcls")
    config = load_config(TINY_BERT_SEQCLS)
    assert config == load_config(TINY_BERT_SEQCLS / "config.json")
    assert config == TINY
    raw = read_config_json(TINY_BERT_SEQCLS)
    assert raw["id2label"] == {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}


def test_missing_fields_take_hugging_face_defaults(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(MINIMAL))
    config = load_config(tmp_path)
    assert config["hidden_act"] == "gelu"
    assert config["max_position_embeddings"] == 512
    assert config["type_vocab_size"] == 2
    assert config["layer_norm_eps"] == 1e-12
    assert config["position_embedding_type"] == "absolute"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (b"\xff\xfe{}", "cannot read"),
        (json.dumps({**MINIMAL, "hidden_size": 9}), "not a multiple"),
        (json.dumps({"hidden_size": 8}), "missing required field 'vocab_size'"),
        (json.dumps({**MINIMAL, "hidden_act": "swish"}), "unsupported 'hidden_act'"),
        (
            json.dumps({"model_type": "distilbert", "sinusoidal_pos_embds": "yes"}),
            "sinusoidal_pos_embds",
        ),
    ],
)
def test_bad_configs_raise_config_error_naming_the_file(
    tmp_path: Path, content: str | bytes | None, fragment: str
) -> None:
    path = tmp_path / "config.json"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    message = str(info.value)
    print(message)
    assert str(path) in message
    assert fragment in message


@pytest.mark.parametrize(
    ("model", "positions"),
    [("tiny-distilbert", "absolute"), ("tiny-distilbert-sinusoidal", "sinusoidal")],
)
def test_distilbert_fields_are_translated(model: str, positions: str) -> None:
    require_fixtures(model)
    config = load_config(FIXTURES / model)
    assert config == {**TINY, "type_vocab_size": 0, "position_embedding_type": positions}


def test_non_distilbert_configs_pass_through_unchanged() -> None:
    raw: dict[str, Any] = {**MINIMAL, "model_type": "bert", "n_layers": 99}
    assert to_bert_fields(raw) == raw
    assert to_bert_fields(raw) is not raw


def test_the_core_parses_a_dict_as_it_parses_the_text() -> None:
    """A config dict crosses into the core as objects (no JSON text): the same result as
    the file's text, every value type JSON has, and every other type refused by name."""
    raw = {**MINIMAL, "hidden_act": "gelu_new", "layer_norm_eps": 1e-5, "extra": [1, None]}
    from_dict = _core.EncoderConfig(raw, "dict")
    from_text = _core.EncoderConfig(json.dumps(raw), "text")
    assert from_dict.to_dict() == from_text.to_dict()
    assert from_dict.to_dict()["hidden_act"] == "gelu_tanh"
    assert (from_dict.hidden_size, from_dict.num_hidden_layers) == (8, 1)
    # to_dict gives back a config the core reads unchanged.
    assert _core.EncoderConfig(from_dict.to_dict()).to_dict() == from_dict.to_dict()
    deep: Any = []
    for _ in range(200):
        deep = [deep]
    refused = [
        ({**MINIMAL, "extra": {1, 2}}, "'extra': a set is not a JSON value"),
        ({**MINIMAL, "extra": {1: "a"}}, "'extra': a key that is not a str"),
        ({**MINIMAL, "hidden_size": float("inf")}, "'hidden_size': inf is not a finite number"),
        ({**MINIMAL, "extra": deep}, "nested more than 128 levels deep"),
    ]
    for config, fragment in refused:
        with pytest.raises(ConfigError, match=re.escape(fragment)) as caught:
            _core.EncoderConfig(config, "cfg.json")
        assert str(caught.value).startswith("cfg.json: ")
