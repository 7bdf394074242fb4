"""EncoderDecoder (HF ``EncoderDecoderModel``) against the golden transformers outputs of
``tiny-bert2bert``: teacher-forced logits, encoder output, greedy and beam-search ids."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import oxiformer
import pytest
from helpers import FIXTURES, load_golden, max_abs_diff, require_fixtures
from oxiformer import reference_generation
from oxiformer.generation import GenerationSettings
from oxiformer.weights import read_tensors

require_fixtures("tiny-bert2bert", "tiny-bert/mlm")

BERT2BERT = FIXTURES / "tiny-bert2bert"
TEXTS = json.loads((BERT2BERT / "texts.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def golden() -> dict[str, npt.NDArray[Any]]:
    return load_golden(BERT2BERT / "golden.npz")


@pytest.fixture(scope="module")
def model() -> oxiformer.EncoderDecoder:
    return oxiformer.EncoderDecoder.from_pretrained(BERT2BERT)


def _copy(tmp_path: Path, weights: dict[str, npt.NDArray[Any]], config: dict[str, Any]) -> Path:
    directory = tmp_path / "model"
    directory.mkdir(parents=True)
    np.savez(directory / "weights.npz", **weights)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


@pytest.mark.parametrize("weights", ["model.safetensors", "weights.npz"])
def test_logits_and_encoder_output_match_golden(
    weights: str, golden: dict[str, npt.NDArray[Any]], tmp_path: Path
) -> None:
    directory = tmp_path / "model"
    directory.mkdir()
    for name in (weights, "config.json"):
        shutil.copy(BERT2BERT / name, directory)
    model = oxiformer.EncoderDecoder.from_pretrained(directory)
    out = model(
        golden["input_ids"],
        golden["attention_mask"],
        decoder_input_ids=golden["decoder_input_ids"],
        decoder_attention_mask=golden["decoder_attention_mask"],
    )
    assert out.logits.shape == (3, 4, 30522)
    assert max_abs_diff(f"bert2bert logits ({weights})", out.logits, golden["logits"]) <= 1e-4
    real = golden["attention_mask"] == 1
    encoder = out.encoder_last_hidden_state[real]
    want = golden["encoder_last_hidden_state"][real]
    assert max_abs_diff(f"bert2bert encoder output ({weights})", encoder, want) <= 2e-5


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_and_beam_ids_equal_golden(
    model: oxiformer.EncoderDecoder, golden: dict[str, npt.NDArray[Any]], use_cache: bool
) -> None:
    inputs = (golden["input_ids"], golden["attention_mask"])
    greedy = model.generate(*inputs, max_new_tokens=12, use_cache=use_cache)
    assert greedy.dtype == np.int64
    np.testing.assert_array_equal(greedy, golden["greedy_ids"])
    beams = model.generate(
        *inputs,
        max_new_tokens=12,
        num_beams=4,
        early_stopping=True,
        length_penalty=1.0,
        use_cache=use_cache,
    )
    np.testing.assert_array_equal(beams, golden["beam4_ids"])


def test_generate_text_decodes_the_generated_ids(
    model: oxiformer.EncoderDecoder, golden: dict[str, npt.NDArray[Any]]
) -> None:
    texts = model.generate_text(TEXTS["source"], max_new_tokens=12)
    assert model.tokenizer is not None
    inputs = model.tokenizer(TEXTS["source"], padding=True)
    np.testing.assert_array_equal(inputs["input_ids"], golden["input_ids"])
    expected = [model.tokenizer.decode(row.tolist()) for row in golden["greedy_ids"]]
    assert texts == expected
    assert model.generate_text(TEXTS["source"][0], max_new_tokens=12) == expected[0]
    beams = model.generate_text(
        TEXTS["source"], max_new_tokens=12, num_beams=4, batch_size=2, early_stopping=True
    )
    assert beams == [model.tokenizer.decode(row.tolist()) for row in golden["beam4_ids"]]


def test_rows_that_finish_early_are_padded(
    model: oxiformer.EncoderDecoder, golden: dict[str, npt.NDArray[Any]]
) -> None:
    """With an end token the model produces early (the fixture's eos never comes in 12
    tokens), generation follows HF: greedy pads finished rows with pad (0), beam search fills
    with eos (HF's ``pad_token_id or eos_token_id``); the reference search agrees."""
    eos = int(golden["greedy_ids"][0, 3])  # row 0 produces it third
    settings = GenerationSettings(101, (eos,), 0)
    custom = oxiformer.EncoderDecoder(model.encoder, model.decoder, settings, model.tokenizer)
    inputs = (golden["input_ids"], golden["attention_mask"])
    greedy = custom.generate(*inputs, max_new_tokens=12)
    assert greedy[0, :4].tolist() == golden["greedy_ids"][0, :4].tolist()
    assert (greedy[0, 4:] == 0).all(), greedy
    hidden = model.encoder(*inputs).last_hidden_state
    memory = model.decoder.memory(hidden, golden["attention_mask"])
    for beams in (1, 3):

        def next_logits(ids: npt.NDArray[np.int64], beams: int = beams) -> Any:
            state = model.decoder.start(memory, beams, ids.shape[1])
            return state.step(np.ascontiguousarray(ids))

        prompt = np.full((3, 1), 101)
        if beams == 1:
            want = reference_generation.greedy_search(next_logits, prompt, 12, (eos,), 0)
            np.testing.assert_array_equal(greedy, want)
            continue
        for early_stopping in (True, False, "never"):
            got = custom.generate(
                *inputs,
                max_new_tokens=12,
                num_beams=beams,
                early_stopping=early_stopping,
                length_penalty=0.5,
            )
            want = reference_generation.beam_search(
                next_logits, prompt, 12, (eos,), 0, beams, 0.5, early_stopping
            )
            np.testing.assert_array_equal(got, want)
            ended = [row for row in got if eos in row[1:]]
            assert ended, f"no beam ended with early_stopping={early_stopping}"
            for row in ended:
                first = 1 + int(np.flatnonzero(row[1:] == eos)[0])
                assert (row[first:] == eos).all()  # the fill is eos: pad is 0


def test_decoder_prefix_continues_the_given_ids(
    model: oxiformer.EncoderDecoder, golden: dict[str, npt.NDArray[Any]]
) -> None:
    inputs = (golden["input_ids"], golden["attention_mask"])
    prefix = golden["greedy_ids"][:, :5]
    continued = model.generate(*inputs, max_new_tokens=8, decoder_input_ids=prefix)
    np.testing.assert_array_equal(continued, golden["greedy_ids"])
    # Without the start token, transformers puts it first.
    again = model.generate(*inputs, max_new_tokens=8, decoder_input_ids=prefix[:, 1:])
    np.testing.assert_array_equal(again, golden["greedy_ids"])


def test_sources_of_different_lengths_match_one_by_one(
    model: oxiformer.EncoderDecoder, golden: dict[str, npt.NDArray[Any]]
) -> None:
    batch = model.generate(
        golden["input_ids"], golden["attention_mask"], max_new_tokens=6, num_beams=3
    )
    for row in range(3):
        length = int(golden["attention_mask"][row].sum())
        alone = model.generate(
            golden["input_ids"][row : row + 1, :length], max_new_tokens=6, num_beams=3
        )
        np.testing.assert_array_equal(alone[0], batch[row, : alone.shape[1]])


def test_outputs_do_not_depend_on_the_thread_count(
    model: oxiformer.EncoderDecoder, golden: dict[str, npt.NDArray[Any]]
) -> None:
    before = oxiformer.get_num_threads()
    inputs = (golden["input_ids"], golden["attention_mask"])
    results = []
    try:
        for threads in (1, 2):
            oxiformer.set_num_threads(threads)
            logits = model(*inputs, decoder_input_ids=golden["greedy_ids"]).logits
            beams = model.generate(*inputs, max_new_tokens=8, num_beams=4)
            results.append((logits.tobytes(), beams.tobytes()))
    finally:
        oxiformer.set_num_threads(before)
    assert results[0] == results[1]


def test_concurrent_callers_share_one_model(
    model: oxiformer.EncoderDecoder, golden: dict[str, npt.NDArray[Any]]
) -> None:
    """Python threads generating with one model at once (the GIL is released in every step)
    get exactly what serial calls get."""
    calls = [
        {"max_new_tokens": 6, "num_beams": beams, "early_stopping": stop}
        for beams in (1, 2, 3)
        for stop in (True, False)
    ]
    inputs = (golden["input_ids"], golden["attention_mask"])
    serial = [model.generate(*inputs, **call).tobytes() for call in calls]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(model.generate, *inputs, **call) for call in calls * 3]
        results = [future.result(timeout=600).tobytes() for future in futures]
    assert results == serial * 3


def test_int8_decoder_and_lm_head(
    model: oxiformer.EncoderDecoder, golden: dict[str, npt.NDArray[Any]]
) -> None:
    quantized = oxiformer.EncoderDecoder.from_pretrained(BERT2BERT, dtype="int8")
    assert quantized.dtype == "int8"
    inputs = (golden["input_ids"], golden["attention_mask"])
    fp32 = model(*inputs, decoder_input_ids=golden["greedy_ids"]).logits
    int8 = quantized(*inputs, decoder_input_ids=golden["greedy_ids"]).logits
    diff = max_abs_diff("int8 vs fp32 logits along the greedy ids", int8, fp32)
    assert 0 < diff < 0.5  # int8 really runs, and stays close
    greedy = quantized.generate(*inputs, max_new_tokens=12)
    equal = bool(np.array_equal(greedy, golden["greedy_ids"]))
    print(f"int8 greedy ids equal to fp32 (golden): {equal}")
    assert equal


@pytest.mark.parametrize("dtype", [None, "int8"])
def test_convert_and_quantize_write_an_encoder_decoder_that_loads_back_identically(
    model: oxiformer.EncoderDecoder,
    golden: dict[str, npt.NDArray[Any]],
    dtype: str | None,
    tmp_path: Path,
) -> None:
    """``oxiformer convert`` / ``quantize`` write HF's layout (``encoder.*``,
    ``decoder.bert.*``, ``decoder.cls.*``); an int8 model in int8 with both quantization
    entries. The saved model gives the same bits as the source loaded with the same ``dtype``
    (teacher-forced logits, beam search), and so does a model saved from the saved one."""
    from oxiformer.convert import convert

    kind, saved = convert(BERT2BERT, tmp_path / "saved", dtype=dtype)
    assert kind == "encoder-decoder"
    source = (
        model if dtype is None else oxiformer.EncoderDecoder.from_pretrained(BERT2BERT, dtype=dtype)
    )
    reloaded = oxiformer.EncoderDecoder.from_pretrained(saved)
    assert reloaded.dtype == (dtype or "float32")
    stored = read_tensors(saved / "weights.npz")
    int8 = np.int8 if dtype else np.float32
    assert stored["decoder.cls.predictions.decoder.weight"].dtype == int8
    assert stored["decoder.bert.encoder.layer.0.crossattention.self.query.weight"].dtype == int8
    assert stored["encoder.encoder.layer.0.attention.self.query.weight"].dtype == int8
    config = json.loads((saved / "config.json").read_text())
    assert ("quantization_config" in config["decoder"]) == bool(dtype)
    assert ("quantization_config" in config["encoder"]) == bool(dtype)
    inputs = (golden["input_ids"], golden["attention_mask"])
    for candidate in (
        reloaded,
        oxiformer.EncoderDecoder.from_pretrained(reloaded.save_pretrained(tmp_path / "again")),
    ):
        for ids in ("greedy_ids", "beam4_ids"):
            logits = candidate(*inputs, decoder_input_ids=golden[ids]).logits
            expected = source(*inputs, decoder_input_ids=golden[ids]).logits
            assert logits.tobytes() == expected.tobytes()
        beams = candidate.generate(*inputs, max_new_tokens=12, num_beams=4)
        assert np.array_equal(beams, source.generate(*inputs, max_new_tokens=12, num_beams=4))
    if dtype:
        with pytest.raises(oxiformer.ConfigError, match="quantized to int8"):
            oxiformer.EncoderDecoder.from_pretrained(saved, dtype="float32")
        for bad, message in (
            ({"activation_bits": {}}, "'activation_bits' must be a non-empty object"),
            ({"activation_bits": {"pooler.dense": 8}}, "unknown module 'pooler.dense'"),
            ({"activation_bits": {"output.dense": 0}}, "must be an integer from 1 to"),
        ):
            config["decoder"]["quantization_config"] = bad
            (saved / "config.json").write_text(json.dumps(config))
            with pytest.raises(oxiformer.ConfigError, match=message):
                oxiformer.EncoderDecoder.from_pretrained(saved)


def test_a_projected_encoder_decoder_saves_and_loads_back_identically(tmp_path: Path) -> None:
    """An encoder wider than the decoder (``enc_to_dec_proj``, random weights): the saved
    model, fp32 and int8, keeps the projection and gives the same bits."""
    from oxiformer import _core
    from oxiformer.convert import convert

    config = json.loads((BERT2BERT / "config.json").read_text())
    config["encoder"].update(hidden_size=48, num_attention_heads=3, intermediate_size=96)
    rng = np.random.default_rng(0)

    def random(expected: dict[str, tuple[int, ...]]) -> dict[str, npt.NDArray[np.float32]]:
        return {
            name: (1.0 * name.endswith("LayerNorm.weight") + rng.normal(0, 0.2, shape)).astype(
                np.float32
            )
            for name, shape in expected.items()
        }

    encoder = random(_core.expected_tensors(_core.EncoderConfig(config["encoder"], "e")))
    decoder = random(_core.decoder_tensors(_core.DecoderConfig(config["decoder"], "d"), 48))
    assert {"enc_to_dec_proj.weight", "enc_to_dec_proj.bias"} <= set(decoder)
    weights = {f"encoder.{name}": array for name, array in encoder.items()}
    for name, array in decoder.items():
        if name.startswith("enc_to_dec_proj."):
            weights[name] = array
        elif name.startswith("cls."):
            weights[f"decoder.{name}"] = array
        else:
            weights[f"decoder.bert.{name}"] = array
    source = _copy(tmp_path, weights, config)
    ids = np.array([[101, 7592, 2088, 102], [101, 2088, 102, 0]])
    mask = (ids != 0).astype(np.int64)
    targets = np.array([[101, 2023, 2003], [101, 1037, 3231]])
    for dtype in (None, "int8"):
        expected = oxiformer.EncoderDecoder.from_pretrained(source, dtype=dtype)
        _, saved = convert(source, tmp_path / f"saved-{dtype}", dtype=dtype)
        assert "enc_to_dec_proj.weight" in read_tensors(saved / "weights.npz")
        reloaded = oxiformer.EncoderDecoder.from_pretrained(saved)
        assert reloaded.dtype == (dtype or "float32")
        logits = reloaded(ids, mask, decoder_input_ids=targets).logits
        assert logits.tobytes() == expected(ids, mask, decoder_input_ids=targets).logits.tobytes()


def test_tie_encoder_decoder_reads_the_shared_modules_from_the_encoder(
    golden: dict[str, npt.NDArray[Any]], tmp_path: Path
) -> None:
    """With ``tie_encoder_decoder`` the decoder's embeddings, self-attention and feed-forward
    are the encoder's (HF ties them after loading): a checkpoint that leaves them out loads,
    and gives the bits of one that stores the encoder's values under the decoder's names. The
    saved copy stores them and is untied."""
    stored = dict(read_tensors(BERT2BERT / "weights.npz"))
    config = json.loads((BERT2BERT / "config.json").read_text())
    explicit = dict(stored)
    for name in stored:
        inner = name.removeprefix("decoder.bert.")
        if name.startswith("decoder.bert.") and f"encoder.{inner}" in stored:
            explicit[name] = stored[f"encoder.{inner}"]
    untied = oxiformer.EncoderDecoder.from_pretrained(
        _copy(tmp_path / "explicit", explicit, config)
    )
    tied_config = {**config, "tie_encoder_decoder": True}
    left_out = {n: a for n, a in stored.items() if explicit[n] is a or "crossattention" in n}
    assert len(left_out) < len(stored)  # the shared decoder modules are really missing
    tied = oxiformer.EncoderDecoder.from_pretrained(_copy(tmp_path / "tied", left_out, tied_config))
    inputs = (golden["input_ids"], golden["attention_mask"])
    expected = untied(*inputs, decoder_input_ids=golden["greedy_ids"]).logits
    assert tied(*inputs, decoder_input_ids=golden["greedy_ids"]).logits.tobytes() == (
        expected.tobytes()
    )
    saved = tied.save_pretrained(tmp_path / "saved")
    assert json.loads((saved / "config.json").read_text())["tie_encoder_decoder"] is False
    again = oxiformer.EncoderDecoder.from_pretrained(saved)
    assert again(*inputs, decoder_input_ids=golden["greedy_ids"]).logits.tobytes() == (
        expected.tobytes()
    )
    with pytest.raises(oxiformer.WeightsError, match="missing tensor"):
        oxiformer.EncoderDecoder.from_pretrained(_copy(tmp_path / "untied", left_out, config))


def test_bad_inputs_raise_typed_errors(
    model: oxiformer.EncoderDecoder, golden: dict[str, npt.NDArray[Any]], tmp_path: Path
) -> None:
    inputs = (golden["input_ids"], golden["attention_mask"])
    for max_new_tokens in (0, -3):
        with pytest.raises(oxiformer.InputError, match="max_new_tokens must be at least 1"):
            model.generate(*inputs, max_new_tokens=max_new_tokens)
    with pytest.raises(oxiformer.InputError, match="num_beams must be at least 1"):
        model.generate(*inputs, num_beams=0)
    with pytest.raises(oxiformer.InputError, match="exceeds the vocabulary size"):
        model.generate(*inputs, num_beams=10**7)
    with pytest.raises(oxiformer.InputError, match="early_stopping"):
        model.generate(*inputs, num_beams=2, early_stopping="sometimes")
    long_source = np.full((1, 129), 1996)
    with pytest.raises(oxiformer.InputError, match=r"source is 129 tokens long.*128"):
        model.generate(long_source)
    with pytest.raises(oxiformer.InputError, match="129 tokens long, more than its max_posi"):
        model.generate(*inputs, max_new_tokens=128)
    with pytest.raises(oxiformer.InputError, match="130 tokens long"):
        model.generate(*inputs, max_new_tokens=5, decoder_input_ids=np.full((3, 125), 101))
    with pytest.raises(oxiformer.InputError, match="decoder_input_ids"):
        model(*inputs, decoder_input_ids=np.full((3, 2), 30522))
    # A decoder checkpoint without its cross-attention weights.
    stored = dict(read_tensors(BERT2BERT / "weights.npz"))
    config = json.loads((BERT2BERT / "config.json").read_text())
    without = {n: a for n, a in stored.items() if "crossattention" not in n}
    with pytest.raises(oxiformer.WeightsError, match="no cross-attention weights"):
        oxiformer.EncoderDecoder.from_pretrained(_copy(tmp_path / "a", without, config))
    # One cross-attention tensor missing: listed by name.
    missing = dict(stored)
    del missing["decoder.bert.encoder.layer.1.crossattention.self.value.bias"]
    with pytest.raises(oxiformer.WeightsError, match=r"crossattention\.self\.value\.bias"):
        oxiformer.EncoderDecoder.from_pretrained(_copy(tmp_path / "b", missing, config))
    no_cross = json.loads(json.dumps(config))
    no_cross["decoder"]["add_cross_attention"] = False
    with pytest.raises(oxiformer.ConfigError, match="add_cross_attention"):
        oxiformer.EncoderDecoder.from_pretrained(_copy(tmp_path / "c", stored, no_cross))
    diverse = json.loads(json.dumps(config))
    diverse["num_beam_groups"] = 2  # diverse beam search is not applied
    with pytest.warns(UserWarning, match="num_beam_groups are set but not applied"):
        oxiformer.EncoderDecoder.from_pretrained(_copy(tmp_path / "d", stored, diverse))
    with pytest.raises(oxiformer.ConfigError, match="not an encoder-decoder"):
        oxiformer.EncoderDecoder.from_pretrained(FIXTURES / "tiny-bert" / "mlm")


def test_generation_settings_follow_transformers(
    model: oxiformer.EncoderDecoder, tmp_path: Path
) -> None:
    assert model.settings == GenerationSettings(101, (102,), 0)
    # generation_config.json comes first; the decoder section is the last resort; a missing
    # pad is eos (as transformers sets it); several end ids are allowed.
    settings = GenerationSettings.from_configs(
        {"eos_token_id": [7, 8]}, {"decoder_start_token_id": 3}, {"bos_token_id": 9}, source="x"
    )
    assert settings == GenerationSettings(3, (7, 8), 7)
    assert settings.beam_fill == 7
    assert GenerationSettings(1, (2,), 0).beam_fill == 2  # HF's `pad or eos`
    with pytest.raises(oxiformer.ConfigError, match="'pad_token_id' must be a token id"):
        GenerationSettings.from_configs({"pad_token_id": -1}, source="x")
    directory = tmp_path / "model"
    directory.mkdir()
    for name in ("config.json", "weights.npz"):
        (directory / name).symlink_to(BERT2BERT / name)
    (directory / "generation_config.json").write_text(json.dumps({"eos_token_id": 5}))
    assert oxiformer.EncoderDecoder.from_pretrained(directory).settings.eos_token_ids == (5,)
