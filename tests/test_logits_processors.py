"""transformers' logits processors in ``generate`` (``no_repeat_ngram_size``, ``min_length``,
``repetition_penalty``, forced and suppressed tokens, ...): each against its definition in
transformers' ``logits_process.py``, then wired into greedy and beam search on tiny-bert2bert,
from arguments and from ``generation_config.json``. No transformers golden exists here for
them (the fixtures' generation used none)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import oxiformer
import pytest
from helpers import FIXTURES, require_fixtures
from oxiformer.logits_processors import Processors

require_fixtures("tiny-bert2bert")
BERT2BERT = FIXTURES / "tiny-bert2bert"
EOS = (102,)


def run(processors: Processors, sequences: list[list[int]], prompt: int = 1, end: int = 20):
    """The processed scores of all-ones logits (vocabulary 10, end of sequence 9) after
    ``sequences``."""
    process = processors.steps((9,), prompt, end)
    assert process is not None
    scores = np.ones((len(sequences), 10), np.float32)
    return process(np.array(sequences, np.int64), scores)


def banned(scores: np.ndarray) -> list[list[int]]:
    return [np.flatnonzero(np.isneginf(row)).tolist() for row in scores]


def test_each_processor_as_transformers_defines_it() -> None:
    assert Processors().steps(EOS, 1, 20) is None  # nothing set: nothing to do
    # n-grams: the tokens that would repeat an n-gram ending in the last n - 1 tokens.
    assert banned(run(Processors(no_repeat_ngram_size=2), [[1, 5, 6, 5]])) == [[6]]
    assert banned(run(Processors(no_repeat_ngram_size=3), [[1, 2, 3, 1, 2]])) == [[3]]
    assert banned(run(Processors(no_repeat_ngram_size=1), [[1, 4, 4, 7]])) == [[1, 4, 7]]
    assert banned(run(Processors(no_repeat_ngram_size=4), [[1, 2]])) == [[]]  # too short
    # Repetition: seen tokens' scores divided (positive) or multiplied (negative) by it.
    process = Processors(repetition_penalty=2.0).steps((9,), 1, 20)
    assert process is not None
    scores = np.array([[1.0, -1.0, 4.0, -3.0]], np.float32)
    out = process(np.array([[0, 1, 1, 3]]), scores)
    np.testing.assert_array_equal(out, [[0.5, -2.0, 4.0, -6.0]])
    assert scores[0, 0] == 1.0  # the input is left alone
    # Bad words: single tokens always, sequences when their prefix ends the sequence.
    bad = Processors(bad_words_ids=((3,), (5, 6, 7), (2,)))
    assert banned(run(bad, [[1, 5, 6], [1, 5, 4]])) == [[2, 3, 7], [2, 3]]
    # The end-of-sequence token alone is never a bad word.
    assert banned(run(Processors(bad_words_ids=((9,), (4,))), [[1, 5]])) == [[4]]
    # Minimum lengths: end of sequence (9 here) banned while too short.
    assert banned(run(Processors(min_length=4), [[1, 2, 3]])) == [[9]]
    assert banned(run(Processors(min_length=3), [[1, 2, 3]])) == [[]]
    assert banned(run(Processors(min_new_tokens=2), [[1, 2, 3]], prompt=2)) == [[9]]
    assert banned(run(Processors(min_new_tokens=2), [[1, 2, 3, 4]], prompt=2)) == [[]]
    # Forced tokens: everything else -inf, the forced one 0.
    forced = run(Processors(forced_bos_token_id=4), [[1]])
    assert banned(forced) == [[t for t in range(10) if t != 4]] and forced[0, 4] == 0
    assert banned(run(Processors(forced_bos_token_id=4), [[1, 2]])) == [[]]
    last = run(Processors(forced_eos_token_id=(7,)), [[1, 2, 3]], end=4)
    assert banned(last) == [[t for t in range(10) if t != 7]]
    # Suppressed tokens: always; at the beginning: at the first generated position only.
    assert banned(run(Processors(suppress_tokens=(2, 8)), [[1, 5]])) == [[2, 8]]
    begin = Processors(begin_suppress_tokens=(3,))
    assert banned(run(begin, [[1]])) == [[3]] and banned(run(begin, [[1, 2]])) == [[]]
    with_bos = Processors(begin_suppress_tokens=(3,), forced_bos_token_id=4)
    assert banned(run(with_bos, [[1, 4]]))[0] == [3]  # after the forced token


def repeats(row: np.ndarray, n: int) -> bool:
    grams = [tuple(row[i : i + n]) for i in range(len(row) - n + 1)]
    return len(grams) != len(set(grams))


def test_greedy_with_processors_is_the_argmax_of_the_processed_logits(
    bert2bert: oxiformer.EncoderDecoder, bert2bert_inputs: tuple[np.ndarray, np.ndarray]
) -> None:
    options = {"no_repeat_ngram_size": 2, "repetition_penalty": 1.5, "min_new_tokens": 6}
    got = bert2bert.generate(*bert2bert_inputs, max_new_tokens=10, **options)
    process = Processors(no_repeat_ngram_size=2, repetition_penalty=1.5, min_new_tokens=6).steps(
        EOS, 1, 11
    )
    assert process is not None
    # The reference: teacher-forced logits of the sequence so far, processed, argmax.
    sequences = np.full((len(bert2bert_inputs[0]), 1), 101, np.int64)
    finished = np.zeros(len(sequences), bool)
    for _ in range(10):
        logits = bert2bert(*bert2bert_inputs, decoder_input_ids=sequences).logits[:, -1]
        tokens = np.where(finished, 0, np.argmax(process(sequences, logits), axis=-1))
        finished |= tokens == 102
        sequences = np.concatenate([sequences, tokens[:, None]], axis=1)
        if finished.all():
            break
    np.testing.assert_array_equal(got, sequences)
    for row in got:
        generated = row[1:][row[1:] != 0]
        assert not repeats(row[: len(generated) + 1], 2)
        assert 102 not in generated[:6].tolist()


def test_beam_search_applies_them_and_config_sets_the_defaults(
    bert2bert: oxiformer.EncoderDecoder,
    bert2bert_inputs: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
) -> None:
    plain = bert2bert.generate(*bert2bert_inputs, max_new_tokens=12, num_beams=4)
    options = {"no_repeat_ngram_size": 2, "min_new_tokens": 8}
    beams = bert2bert.generate(*bert2bert_inputs, max_new_tokens=12, num_beams=4, **options)
    assert not np.array_equal(beams, plain)  # the processors change the result here
    for row in beams:
        assert not repeats(row[row != 0], 2) and 102 not in row[1:9].tolist()
    # The same from generation_config.json, as transformers reads it.
    directory = tmp_path / "model"
    shutil.copytree(BERT2BERT, directory)
    generation = {"num_beams": 4, "max_new_tokens": 12, **options, "do_sample": True}
    (directory / "generation_config.json").write_text(json.dumps(generation))
    with pytest.warns(UserWarning, match="do_sample with num_beams > 1") as caught:
        configured = oxiformer.EncoderDecoder.from_pretrained(directory)
    assert "no_repeat_ngram_size" not in str(caught[0].message)
    np.testing.assert_array_equal(
        configured.generate(*bert2bert_inputs), beams
    )  # beams do not sample
    # Arguments override the configuration.
    unset = {"no_repeat_ngram_size": 0, "min_new_tokens": 0, "do_sample": False}
    greedy = configured.generate(*bert2bert_inputs, num_beams=1, **unset)
    np.testing.assert_array_equal(greedy, bert2bert.generate(*bert2bert_inputs, max_new_tokens=12))
    # max_length (the whole decoder sequence) when max_new_tokens is not set.
    generation = {"max_length": 6}
    (directory / "generation_config.json").write_text(json.dumps(generation))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        short = oxiformer.EncoderDecoder.from_pretrained(directory).generate(*bert2bert_inputs)
    np.testing.assert_array_equal(short, bert2bert.generate(*bert2bert_inputs, max_new_tokens=5))


def test_bad_options_are_typed_errors(
    bert2bert: oxiformer.EncoderDecoder,
    bert2bert_inputs: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
) -> None:
    cases: dict[str, dict[str, Any]] = {
        "unknown option(s) top_n": {"top_n": 5},
        "'no_repeat_ngram_size' must be a non-negative integer": {"no_repeat_ngram_size": -1},
        "'repetition_penalty' must be a positive number": {"repetition_penalty": 0},
        "'bad_words_ids' must be a list of non-empty lists": {"bad_words_ids": [5]},
        "token id 40000 is outside the vocabulary": {"suppress_tokens": [40000]},
    }
    for message, options in cases.items():
        with pytest.raises(oxiformer.InputError) as caught:
            bert2bert.generate(*bert2bert_inputs, max_new_tokens=2, **options)
        assert message in str(caught.value)
    directory = tmp_path / "model"
    shutil.copytree(BERT2BERT, directory)
    (directory / "generation_config.json").write_text(json.dumps({"min_length": "long"}))
    with pytest.raises(oxiformer.ConfigError, match="'min_length' must be a non-negative"):
        oxiformer.EncoderDecoder.from_pretrained(directory)


def test_cli_generate_takes_no_repeat_ngram_size(
    bert2bert: oxiformer.EncoderDecoder, bert2bert_inputs: tuple[np.ndarray, np.ndarray]
) -> None:
    texts = json.loads((BERT2BERT / "texts.json").read_text(encoding="utf-8"))["source"]
    command = [sys.executable, "-m", "oxiformer", "generate", "-m", str(BERT2BERT)]
    result = subprocess.run(
        [*command, "--no-repeat-ngram-size", "2", "--max-new-tokens", "8", texts[0]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    want = bert2bert.generate_text(texts[0], max_new_tokens=8, no_repeat_ngram_size=2)
    assert json.loads(result.stdout)["generated"] == want
