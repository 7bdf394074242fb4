"""Sampling in ``generate`` (``do_sample``, ``temperature``, ``top_k``, ``top_p``, ``min_p``):
each warper against its definition in transformers' ``logits_process.py`` (written out here
per row, in float64), the draws against the distribution they come from, then wired into
greedy generation on tiny-bert2bert, from arguments, the CLI and ``generation_config.json``.

transformers draws with torch's generator, which is not available here: no golden of sampled
ids exists, and the same seed gives other tokens there. What is checked is what must hold for
any generator: the warped distribution, repeatability with a seed, and that a warper leaving
one token reproduces greedy search exactly."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import oxiformer
import oxiformer.cli
import pytest
from helpers import FIXTURES, require_fixtures
from oxiformer.sampling import Sampling

require_fixtures("tiny-bert2bert")
BERT2BERT = FIXTURES / "tiny-bert2bert"


def softmax(row: np.ndarray) -> np.ndarray:
    finite = row[np.isfinite(row)]
    exp = np.where(np.isfinite(row), np.exp(row - finite.max()), 0.0)
    return exp / exp.sum()


def reference(row: np.ndarray, temperature: float, top_k: int, top_p: float, min_p: Any):
    """transformers' warpers on one row, as its code reads, in float64."""
    row = row.astype(np.float64) / temperature
    if top_k:
        kth = sorted(row, reverse=True)[min(top_k, len(row)) - 1]
        row = np.array([x if x >= kth else -np.inf for x in row])
    if top_p < 1.0:
        ascending = sorted(range(len(row)), key=lambda i: row[i])
        probs = softmax(row)
        total = 0.0
        for position, i in enumerate(ascending):
            total += probs[i]
            if total <= 1.0 - top_p and position < len(row) - 1:
                row[i] = -np.inf
    if min_p is not None:
        probs = softmax(row)
        best = int(np.argmax(row))
        row = np.array(
            [
                x if (p >= min_p * probs.max() or i == best) else -np.inf
                for i, (x, p) in enumerate(zip(row, probs))
            ]
        )
    return row


@pytest.mark.parametrize(
    "options",
    [
        {"temperature": 0.7, "top_k": 0},
        {"top_k": 5},
        {"top_k": 0, "top_p": 0.9},
        {"top_k": 0, "top_p": 0.0},  # only the likeliest stays
        {"top_k": 0, "min_p": 0.2},
        {"temperature": 1.5, "top_k": 20, "top_p": 0.8, "min_p": 0.05},
    ],
)
def test_warpers_as_transformers_defines_them(options: dict[str, Any]) -> None:
    rng = np.random.default_rng(1)
    scores = (rng.standard_normal((4, 60)) * 3).astype(np.float32)
    sampling = Sampling(do_sample=True, **options)
    got = sampling.warp(scores)
    assert got.dtype == np.float32
    for row, out in zip(scores, got):
        want = reference(
            row,
            sampling.temperature,
            sampling.top_k,
            sampling.top_p,
            sampling.min_p,
        )
        np.testing.assert_array_equal(np.isneginf(out), np.isneginf(want))
        kept = np.isfinite(want)
        diff = float(np.abs(out[kept] - want[kept]).max())
        print(f"{options}: {kept.sum()} of 60 tokens kept, max abs diff {diff:.1e}")
        assert diff <= 1e-5
    np.testing.assert_array_equal(Sampling(do_sample=True, top_k=0).warp(scores), scores)


def test_top_k_keeps_ties_with_the_kth() -> None:
    scores = np.array([[1.0, 3.0, 2.0, 2.0, 0.0]], np.float32)
    out = Sampling(do_sample=True, top_k=2).warp(scores)
    assert np.isneginf(out).tolist() == [[True, False, False, False, True]]


def test_draws_follow_the_warped_distribution() -> None:
    probs = np.array([0.1, 0.2, 0.3, 0.4, 0.0])
    scores = np.tile(np.log(np.maximum(probs, 1e-30)).astype(np.float32), (40_000, 1))
    scores[:, 4] = -np.inf
    draw = Sampling(do_sample=True, top_k=0).chooser(7)
    assert draw is not None
    counts = np.bincount(draw(scores), minlength=5) / len(scores)
    print(f"frequencies {np.round(counts, 4).tolist()} for {probs.tolist()}")
    assert np.abs(counts - probs).max() < 0.01  # 4 standard deviations at n = 40,000
    assert counts[4] == 0
    # top_k=2 leaves the two likeliest, renormalized: 3/7 and 4/7
    draw = Sampling(do_sample=True, top_k=2).chooser(8)
    assert draw is not None
    counts = np.bincount(draw(scores), minlength=5) / len(scores)
    assert counts[:2].sum() == 0 and abs(counts[2] - 3 / 7) < 0.01
    assert Sampling().chooser(1) is None  # not sampling: the argmax


def test_generate_samples_repeatably(
    bert2bert: oxiformer.EncoderDecoder, bert2bert_inputs: tuple[np.ndarray, np.ndarray]
) -> None:
    greedy = bert2bert.generate(*bert2bert_inputs, max_new_tokens=10)
    first = bert2bert.generate(*bert2bert_inputs, max_new_tokens=10, do_sample=True, seed=3)
    again = bert2bert.generate(*bert2bert_inputs, max_new_tokens=10, do_sample=True, seed=3)
    other = bert2bert.generate(*bert2bert_inputs, max_new_tokens=10, do_sample=True, seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other) and not np.array_equal(first, greedy)
    generator = np.random.default_rng(3)
    np.testing.assert_array_equal(
        bert2bert.generate(*bert2bert_inputs, max_new_tokens=10, do_sample=True, seed=generator),
        first,
    )
    # one token left by the warpers: the draw is the argmax, so greedy search exactly
    for only in ({"top_k": 1}, {"top_p": 0.0}, {"min_p": 1.0, "top_k": 0}):
        single = bert2bert.generate(
            *bert2bert_inputs, max_new_tokens=10, do_sample=True, seed=5, **only
        )
        np.testing.assert_array_equal(single, greedy)
    # every sampled token is among the 3 likeliest of its step (teacher-forced logits)
    sampled = bert2bert.generate(
        *bert2bert_inputs, max_new_tokens=8, do_sample=True, top_k=3, seed=9
    )
    logits = bert2bert(*bert2bert_inputs, decoder_input_ids=sampled[:, :-1]).logits
    for row, sequence in zip(logits, sampled):
        for step, token in enumerate(sequence[1:]):
            if token == 0:  # padding after the end of sequence
                break
            assert token in np.argsort(-row[step])[:3]


def test_generate_text_and_the_cli_sample(
    bert2bert: oxiformer.EncoderDecoder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    texts = ["the cat sat on the mat", "a quick brown fox"]
    one = bert2bert.generate_text(texts, max_new_tokens=8, do_sample=True, seed=11, batch_size=1)
    two = bert2bert.generate_text(texts, max_new_tokens=8, do_sample=True, seed=11, batch_size=1)
    assert one == two
    greedy = bert2bert.generate_text(texts, max_new_tokens=8)
    argv = ["generate", "--model", str(BERT2BERT), "--max-new-tokens", "8", *texts]
    oxiformer.cli.main([*argv, "--do-sample", "--top-k", "1", "--seed", "2"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["generated"] for line in lines] == greedy
    oxiformer.cli.main([*argv, "--do-sample", "--temperature", "2", "--seed", "2"])
    first = capsys.readouterr().out
    oxiformer.cli.main([*argv, "--do-sample", "--temperature", "2", "--seed", "2"])
    assert capsys.readouterr().out == first


def test_generation_config_turns_sampling_on(
    bert2bert: oxiformer.EncoderDecoder,
    bert2bert_inputs: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
) -> None:
    directory = tmp_path / "model"
    shutil.copytree(BERT2BERT, directory)
    generation = {"do_sample": True, "top_k": 4, "temperature": 0.9, "max_new_tokens": 10}
    (directory / "generation_config.json").write_text(json.dumps(generation))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing ignored
        configured = oxiformer.EncoderDecoder.from_pretrained(directory)
    assert configured.settings.sampling == Sampling(True, 0.9, 4)
    got = configured.generate(*bert2bert_inputs, seed=1)
    want = bert2bert.generate(
        *bert2bert_inputs, max_new_tokens=10, do_sample=True, top_k=4, temperature=0.9, seed=1
    )
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        configured.generate(*bert2bert_inputs, do_sample=False),
        bert2bert.generate(*bert2bert_inputs, max_new_tokens=10),
    )
    # beams do not sample: the configuration's do_sample is warned about, not applied
    with pytest.warns(UserWarning, match="do_sample is not applied with num_beams > 1"):
        beams = configured.generate(*bert2bert_inputs, num_beams=3)
    np.testing.assert_array_equal(
        beams, bert2bert.generate(*bert2bert_inputs, max_new_tokens=10, num_beams=3)
    )
    # typical_p is a warper oxiformer does not apply: named when sampling
    generation["typical_p"] = 0.5
    (directory / "generation_config.json").write_text(json.dumps(generation))
    with pytest.warns(UserWarning, match="typical_p are set but not applied"):
        oxiformer.EncoderDecoder.from_pretrained(directory)


BAD_OPTIONS: dict[str, dict[str, Any]] = {
    "'temperature' must be a positive number": {"temperature": 0.0},
    "'temperature' must be a positive number, got 'hot'": {"temperature": "hot"},
    "'top_k' must be a non-negative integer": {"top_k": -1},
    "'top_p' must be a number in [0, 1]": {"top_p": 1.5},
    "'min_p' must be a number in [0, 1]": {"min_p": -0.1},
    "'do_sample' must be True or False": {"do_sample": "yes"},
    "seed must be a non-negative integer": {"do_sample": True, "seed": -1},
    "beam sampling": {"do_sample": True, "num_beams": 2},
}


@pytest.mark.parametrize("message", list(BAD_OPTIONS))
def test_bad_sampling_options_are_typed_errors(
    message: str,
    bert2bert: oxiformer.EncoderDecoder,
    bert2bert_inputs: tuple[np.ndarray, np.ndarray],
) -> None:
    with pytest.raises(oxiformer.InputError) as caught:
        bert2bert.generate(*bert2bert_inputs, max_new_tokens=3, **BAD_OPTIONS[message])
    assert message in str(caught.value)


def test_bad_sampling_configuration_is_a_config_error(tmp_path: Path) -> None:
    directory = tmp_path / "model"
    shutil.copytree(BERT2BERT, directory)
    config = directory / "generation_config.json"
    config.write_text(json.dumps({"do_sample": True, "top_p": 2}))
    with pytest.raises(oxiformer.ConfigError, match=r"generation_config.json: 'top_p' must be"):
        oxiformer.EncoderDecoder.from_pretrained(directory)
    # Not sampling, a value sampling could not use loads (as in transformers), with a warning.
    config.write_text(json.dumps({"do_sample": False, "temperature": 0.0, "top_k": 7}))
    with pytest.warns(UserWarning, match=r"temperature=0.0 could not be used for sampling"):
        model = oxiformer.EncoderDecoder.from_pretrained(directory)
    assert model.settings.sampling == Sampling(False, 1.0, 7)
