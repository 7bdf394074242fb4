"""Results line up with inputs, and every wrong argument is a typed error (issue 18, points 1,
9 and 19).

Every API that takes texts raises ``InputError`` naming the index of an item that is neither a
str nor (where pairs are allowed) a (text, text_pair) pair, instead of dropping it; batches that
mix texts and pairs work as in HF tokenizers; and a sweep passes junk to every argument of the
public API: the only exceptions allowed out are ``OxiformerError`` subclasses.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import oxiformer
import pytest
from helpers import FIXTURES, TINY_BERT_SEQCLS, max_abs_diff, require_fixtures, run_python
from oxiformer import ConfigError, InputError, OxiformerError, TokenizerError

TOKCLS = FIXTURES / "tiny-bert" / "tokcls"


@pytest.fixture(scope="module")
def seqcls() -> oxiformer.SequenceClassifier:
    require_fixtures("tiny-bert/seqcls")
    return oxiformer.SequenceClassifier.from_pretrained(TINY_BERT_SEQCLS)


@pytest.fixture(scope="module")
def tokcls() -> oxiformer.TokenClassifier:
    require_fixtures("tiny-bert/tokcls")
    return oxiformer.TokenClassifier.from_pretrained(TOKCLS)


@pytest.fixture(scope="module")
def sentence() -> oxiformer.SentenceEncoder:
    return oxiformer.SentenceEncoder.from_pretrained()


# ---- point 1: nothing dropped, the index named ------------------------------------------------

BAD_BATCHES: list[tuple[list[Any], str]] = [
    (["good", None, "bad"], r"texts\[1\] is NoneType"),
    (["a", b"b", 3, ["x"], "b"], r"texts\[1\] is bytes"),
    ([None], r"texts\[0\] is NoneType"),
    (["a", 3], r"texts\[1\] is int 3"),
    (["a", ["x"]], r"texts\[1\] is a list of 1 \(str\)"),
    ([("a",)], r"texts\[0\] is a tuple of 1 \(str\)"),
    ([("a", "b", "c")], r"texts\[0\] is a tuple of 3"),
    ([("a", 5)], r"texts\[0\] is a tuple of 2 \(str, int\)"),
]


@pytest.mark.parametrize(("batch", "message"), BAD_BATCHES)
def test_sequence_classifier_refuses_what_it_cannot_label(
    seqcls: oxiformer.SequenceClassifier, batch: list[Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        seqcls.predict(batch)


@pytest.mark.parametrize(("batch", "message"), BAD_BATCHES)
def test_every_text_api_names_the_bad_item(
    sentence: oxiformer.SentenceEncoder,
    tokcls: oxiformer.TokenClassifier,
    batch: list[Any],
    message: str,
) -> None:
    tokenizer = sentence.tokenizer
    pairs_allowed = message.replace("texts", "inputs")
    for name, call, pattern in [
        ("encode", lambda: sentence.encode(batch), message.replace("texts", "sentences")),
        ("token predict", lambda: tokcls.predict(batch), message),
        ("encode_batch", lambda: tokenizer.encode_batch(batch), pairs_allowed),
        ("count_tokens", lambda: tokenizer.count_tokens(batch), pairs_allowed),
        ("__call__", lambda: tokenizer(batch, padding=True), message),
    ]:
        with pytest.raises(InputError, match=pattern.split(" is ")[0]):
            call()
        print(name, "ok")


def test_predict_gives_one_result_per_input_in_order(
    seqcls: oxiformer.SequenceClassifier,
) -> None:
    items: list[Any] = ["good", ("a", "b"), "bad", ["c", "d"], "good"]
    results = seqcls.predict(items, batch_size=2)
    assert len(results) == len(items)
    alone = [seqcls.predict([item])[0] for item in items]
    assert [r["label"] for r in results] == [r["label"] for r in alone]
    scores = [r["score"] for r in results]
    assert max_abs_diff("mixed batch vs one at a time", scores, [r["score"] for r in alone]) < 1e-6
    assert results[0]["label"] == results[4]["label"]
    assert seqcls.predict([]) == []


# ---- point 19: mixed single texts and pairs ---------------------------------------------------


def test_mixed_batches_match_hf_tokenizers(sentence: oxiformer.SentenceEncoder) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    directory = oxiformer.pretrained.model_dir(None)
    oracle = tokenizers.Tokenizer.from_file(str(directory / "tokenizer.json"))
    oracle.no_truncation()
    oracle.no_padding()
    batch: list[Any] = [
        "my name is john",
        ("my name is john", "pair"),
        "Héllo, wörld!",
        ("a", "b c d"),
    ]
    ours = sentence.tokenizer.encode_batch(batch)
    theirs = oracle.encode_batch(batch)
    assert [e.ids for e in ours] == [e.ids for e in theirs]
    assert [e.type_ids for e in ours] == [e.type_ids for e in theirs]
    assert [e.offsets for e in ours] == [e.offsets for e in theirs]
    assert sentence.tokenizer.count_tokens(batch).tolist() == [len(e.ids) for e in theirs]
    padded = sentence.tokenizer(batch, padding=True)
    for row, expected in enumerate(theirs):
        length = len(expected.ids)
        assert padded["input_ids"][row, :length].tolist() == expected.ids
        assert padded["token_type_ids"][row, :length].tolist() == expected.type_ids
        assert padded["attention_mask"][row].sum() == length


# ---- point 9: wrong arguments are typed errors ------------------------------------------------


def test_decode_refuses_ids_outside_the_vocabulary(sentence: oxiformer.SentenceEncoder) -> None:
    tokenizer = sentence.tokenizer
    for ids, message in [
        ([-1, 5], r"ids\[0\] = -1 is outside the vocabulary \[0, 30522\)"),
        ([101, 2**40], r"ids\[1\] = 1099511627776 is outside"),
        ([2**70], r"ids\[0\] = 1180591620717411303424 is outside"),
        ([1.5], r"ids\[0\] must be an integer, got float"),
        ("abc", "ids must be a sequence of integers"),
    ]:
        with pytest.raises(InputError, match=message):
            tokenizer.decode(ids)
    assert tokenizer.decode(np.array([7592, 2088])) == "hello world"
    assert tokenizer.decode(7592) == "hello"
    assert tokenizer.id_to_token(2**70) is None
    assert tokenizer.convert_ids_to_tokens([-1, 7592]) == ["[UNK]", "hello"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_length": -1, "truncation": True}, TokenizerError, "max_length must be at least 0"),
        ({"pad_to_multiple_of": -3, "padding": True}, TokenizerError, "at least 1"),
        ({"max_length": 2**70, "truncation": True}, TokenizerError, "at most"),
        ({"max_length": 2.5, "truncation": True}, TokenizerError, "must be an integer"),
        ({"add_special_tokens": "yes"}, InputError, "must be True or False"),
    ],
)
def test_tokenizer_options_are_typed_errors(
    sentence: oxiformer.SentenceEncoder, kwargs: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        sentence.tokenizer(["a b"], **kwargs)


@pytest.mark.parametrize(
    ("sentences", "kwargs", "message"),
    [
        (None, {}, "sentences must be a list of texts, got NoneType"),
        (5, {}, "sentences must be a list of texts, got int"),
        (b"bytes", {}, "sentences must be a list of texts, got bytes"),
        (["x"], {"batch_size": "2"}, "batch_size must be an integer, got str"),
        (["x"], {"batch_size": None}, "batch_size must be an integer, got NoneType"),
        (["x"], {"batch_size": 2.5}, "batch_size must be an integer, got float"),
        (["x"], {"batch_size": True}, "batch_size must be an integer, got bool"),
        (["x"], {"batch_size": 0}, "batch_size must be at least 1"),
        (["x"], {"normalize_embeddings": "no"}, "normalize_embeddings must be True or False"),
    ],
)
def test_encode_arguments_are_input_errors(
    sentence: oxiformer.SentenceEncoder, sentences: Any, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        sentence.encode(sentences, **kwargs)


@pytest.mark.parametrize("value", ["2", -1, 0, 2.0, None, 2**70, 100_000])
def test_set_num_threads_refuses_non_counts_at_once(value: Any) -> None:
    before = oxiformer.get_num_threads()
    with pytest.raises(InputError):
        oxiformer.set_num_threads(value)
    assert oxiformer.get_num_threads() == before


def test_set_num_threads_states_its_limit() -> None:
    limit = oxiformer.max_num_threads()
    assert limit >= 4
    with pytest.raises(InputError, match=f"100000 threads is more than the limit of {limit}"):
        oxiformer.set_num_threads(100_000)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ([0, 1, 2], "labels has 3 values"),
        ([0], "labels has 1 values"),
        ([[0, 1], [1, 0]], r"labels has 4 values \(shape \(2, 2\)\)"),
        (["a", "b"], "must hold integers"),
        ([0.5, 1.0], "must hold integers"),
    ],
)
def test_labels_that_do_not_fit_the_batch(
    seqcls: oxiformer.SequenceClassifier, labels: Any, message: str
) -> None:
    ids = np.array([[101, 7592, 102], [101, 2088, 102]])
    with pytest.raises(InputError, match=message):
        seqcls(ids, labels=labels)
    assert seqcls(ids, labels=[0, 2]).loss is not None


def test_config_files_that_are_wrong_in_shape(tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(oxiformer.pretrained.model_dir(None), model)
    (model / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match="nested too deeply"):
        oxiformer.Encoder.from_pretrained(model)
    shutil.copy(oxiformer.pretrained.model_dir(None) / "config.json", model / "config.json")
    settings = model / "sentence_bert_config.json"
    settings.write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"sentence_bert_config\.json: expected a JSON object"):
        oxiformer.SentenceEncoder.from_pretrained(model)
    for value in (True, 0, -5, 2.5, "256"):
        settings.write_text(json.dumps({"max_seq_length": value}))
        with pytest.raises(ConfigError, match="'max_seq_length' must be a positive integer"):
            oxiformer.SentenceEncoder.from_pretrained(model)


def test_not_found_is_one_message_for_every_class(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    loaders: list[Callable[[Any], object]] = [
        oxiformer.Encoder.from_pretrained,
        oxiformer.SentenceEncoder.from_pretrained,
        oxiformer.SequenceClassifier.from_pretrained,
        oxiformer.TokenClassifier.from_pretrained,
        oxiformer.Tokenizer.from_pretrained,
    ]
    for load in loaders:
        with pytest.raises(ConfigError) as caught:
            load(missing)
        assert str(caught.value) == f"{missing}: no such model directory"
    for load in loaders[:4]:
        with pytest.raises(ConfigError) as caught:
            load(tmp_path)
        assert str(caught.value) == f"{tmp_path}: not a model directory (no config.json)"


# ---- the sweep --------------------------------------------------------------------------------

JUNK: list[Any] = [None, "2", 2.5, -1, 2**70, [], [None], object(), {"a": 1}, b"x", True]


def _calls(
    sentence: oxiformer.SentenceEncoder,
    seqcls: oxiformer.SequenceClassifier,
    tokcls: oxiformer.TokenClassifier,
) -> dict[str, Callable[[Any], object]]:
    """One call per (API, argument) with ``junk`` in that argument, the others valid."""
    tok = sentence.tokenizer
    ids = np.array([[101, 7592, 102]])
    tiny = seqcls.encoder
    return {
        "encode(sentences)": lambda junk: sentence.encode(junk),
        "encode(batch_size)": lambda junk: sentence.encode(["a"], batch_size=junk),
        "encode(show_progress_bar)": lambda junk: sentence.encode(["a"], show_progress_bar=junk),
        "encode(normalize)": lambda junk: sentence.encode(["a"], normalize_embeddings=junk),
        "encode(convert_to_numpy)": lambda junk: sentence.encode(["a"], convert_to_numpy=junk),
        "encode(output_value)": lambda junk: sentence.encode(["a"], output_value=junk),
        "seq.predict(texts)": lambda junk: seqcls.predict(junk),
        "seq.predict(batch_size)": lambda junk: seqcls.predict(["a"], batch_size=junk),
        "seq(input_ids)": lambda junk: seqcls(junk),
        "seq(attention_mask)": lambda junk: seqcls(ids, attention_mask=junk),
        "seq(token_type_ids)": lambda junk: seqcls(ids, token_type_ids=junk),
        "seq(labels)": lambda junk: seqcls(ids, labels=junk),
        "tok.predict(texts)": lambda junk: tokcls.predict(junk),
        "tok.predict(batch_size)": lambda junk: tokcls.predict(["a"], batch_size=junk),
        "tok(labels)": lambda junk: tokcls(ids, labels=junk),
        "encoder(input_ids)": lambda junk: tiny(junk),
        "encoder(output_hidden_states)": lambda junk: tiny(ids, output_hidden_states=junk),
        "encode_packed(lengths)": lambda junk: tiny.encode_packed([101, 102], junk),
        "encode_packed(hidden)": lambda junk: tiny.encode_packed([101], [1], None, junk),
        "tokenizer.encode(text)": lambda junk: tok.encode(junk),
        "tokenizer.encode(pair)": lambda junk: tok.encode("a", junk),
        "tokenizer.encode(special)": lambda junk: tok.encode("a", None, junk),
        "encode_batch(inputs)": lambda junk: tok.encode_batch(junk),
        "encode_batch(special)": lambda junk: tok.encode_batch(["a"], junk),
        "tokenizer(texts)": lambda junk: tok(junk),
        "tokenizer(text_pair)": lambda junk: tok(["a"], junk),
        "tokenizer(padding)": lambda junk: tok(["a"], padding=junk),
        "tokenizer(truncation)": lambda junk: tok(["a"], truncation=junk),
        "tokenizer(max_length)": lambda junk: tok(["a"], max_length=junk, truncation=True),
        "tokenizer(pad_to_multiple_of)": lambda junk: tok(
            ["a"], padding=True, pad_to_multiple_of=junk
        ),
        "tokenizer.tokenize": lambda junk: tok.tokenize(junk),
        "tokenizer.decode(ids)": lambda junk: tok.decode(junk),
        "tokenizer.decode(skip)": lambda junk: tok.decode([7592], junk),
        "convert_tokens_to_ids": lambda junk: tok.convert_tokens_to_ids(junk),
        "convert_ids_to_tokens": lambda junk: tok.convert_ids_to_tokens(junk),
        "token_to_id": lambda junk: tok.token_to_id(junk),
        "id_to_token": lambda junk: tok.id_to_token(junk),
        "count_tokens": lambda junk: tok.count_tokens(junk),
        "num_special_tokens_to_add": lambda junk: tok.num_special_tokens_to_add(junk),
        "Tokenizer.from_json": lambda junk: oxiformer.Tokenizer.from_json(junk),
        "Tokenizer.from_vocab(lowercase)": lambda junk: oxiformer.Tokenizer.from_vocab(
            FIXTURES / "vocabs" / "bert-base-uncased.txt", lowercase=junk
        ),
        "Tokenizer.from_pretrained": lambda junk: oxiformer.Tokenizer.from_pretrained(junk),
        "Encoder.from_pretrained(path)": lambda junk: oxiformer.Encoder.from_pretrained(junk),
        "Encoder.from_pretrained(with_pooler)": lambda junk: oxiformer.Encoder.from_pretrained(
            TINY_BERT_SEQCLS, with_pooler=junk
        ),
        "Encoder.from_pretrained(dtype)": lambda junk: oxiformer.Encoder.from_pretrained(
            TINY_BERT_SEQCLS, dtype=junk
        ),
        "Encoder.from_tensors(config)": lambda junk: oxiformer.Encoder.from_tensors(junk, {}),
        "Encoder.from_tensors(tensors)": lambda junk: oxiformer.Encoder.from_tensors(
            tiny.config, junk
        ),
        "Encoder.quantize(activation_bits)": lambda junk: tiny.quantize(junk),
        "Encoder.quantize(word_embeddings)": lambda junk: tiny.quantize(None, junk),
        "SequenceClassifier.from_pretrained(dtype)": lambda junk: (
            oxiformer.SequenceClassifier.from_pretrained(TINY_BERT_SEQCLS, dtype=junk)
        ),
        "SentenceEncoder.from_pretrained(path)": lambda junk: (
            oxiformer.SentenceEncoder.from_pretrained(junk if junk is not None else "/nowhere")
        ),
        # (a str is a valid directory name: it would really save)
        "save_pretrained(directory)": lambda junk: (
            None if isinstance(junk, str) else seqcls.save_pretrained(junk)
        ),
        "set_num_threads": lambda junk: oxiformer.set_num_threads(junk),
    }


def test_junk_arguments_raise_only_oxiformer_errors(
    sentence: oxiformer.SentenceEncoder,
    seqcls: oxiformer.SequenceClassifier,
    tokcls: oxiformer.TokenClassifier,
) -> None:
    threads = oxiformer.get_num_threads()
    escaped: list[str] = []
    calls = _calls(sentence, seqcls, tokcls)
    try:
        for label, call in calls.items():
            for junk in JUNK:
                try:
                    call(junk)
                except OxiformerError:
                    pass
                except Exception as err:  # collected, then reported together
                    escaped.append(f"{label} with {junk!r}: {type(err).__name__}: {err}")
    finally:
        oxiformer.set_num_threads(threads)
    print(f"{len(calls)} arguments x {len(JUNK)} junk values")
    assert not escaped, "\n".join(escaped)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("100000", "OXIFORMER_NUM_THREADS=100000: 100000 threads is more than the limit of"),
        ("abc", "OXIFORMER_NUM_THREADS=abc: not a number of threads"),
        ("0", "OXIFORMER_NUM_THREADS=0: the number of threads must be at least 1"),
        ("-2", "OXIFORMER_NUM_THREADS=-2: not a number of threads"),
    ],
)
def test_a_bad_num_threads_variable_is_an_input_error_on_every_call(
    value: str, message: str
) -> None:
    require_fixtures("tiny-bert/seqcls")
    code = f"""
import numpy as np, oxiformer
encoder = oxiformer.Encoder.from_pretrained({str(TINY_BERT_SEQCLS)!r})
for call in (oxiformer.get_num_threads, lambda: encoder(np.array([[101, 102]]))):
    try:
        call()
    except oxiformer.InputError as err:
        print(err)
oxiformer.set_num_threads(1)  # an explicit count replaces the variable's
print(encoder(np.array([[101, 102]])).last_hidden_state.shape)
"""
    result = run_python(code, env={"OXIFORMER_NUM_THREADS": value})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(message in line for line in lines[:2]), result.stdout
    assert lines[2] == "(1, 2, 32)"
    ok = run_python(code, env={"OXIFORMER_NUM_THREADS": "2"})
    assert ok.stdout.splitlines() == ["(1, 2, 32)"], ok.stdout + ok.stderr
