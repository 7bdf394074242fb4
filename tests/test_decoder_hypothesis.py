"""The Rust decoder and the generation loops against the NumPy reference, on random models.

Hypothesis draws the configuration (heads, widths, layers, activation, an encoder wider or
narrower than the decoder: ``enc_to_dec_proj``), the weights, a batch of sources of different
lengths (padded; sometimes a mask that is not a prefix), decoder prefixes from one token up,
and the search: 1 to 5 beams, length penalty, early stopping, an end token made likely.

- logits: teacher forcing (with a padded decoder mask) and the cached step-by-step path
  against ``reference.decoder_forward`` (float64);
- generation: ``oxiformer.generation`` (cached, beams batched, cache reordered) must give
  exactly the ids of ``oxiformer.reference_generation`` (plain Python search, no cache) fed
  by the Rust decoder recomputing every prefix from scratch; and at every step that search
  took, the Rust logits must equal the NumPy decoder's within the tolerance. So the search,
  the cache, and the decoder on every prefix the search visited are all checked, with no
  flakiness from near-ties between float32 and float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import oxiformer
from helpers import max_abs_diff
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oxiformer import _core, generation, reference, reference_generation
from oxiformer.generation import GenerationSettings

TOLERANCE = 1e-4
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class RandomModel:
    encoder: oxiformer.Encoder
    decoder: _core.Decoder
    encoder_config: dict[str, Any]
    encoder_tensors: dict[str, npt.NDArray[np.float32]]
    decoder_config: dict[str, Any]
    decoder_tensors: dict[str, npt.NDArray[np.float32]]
    vocab: int
    max_positions: int


def _config(
    shape: tuple[int, int], layers: int, inner: int, vocab: int, act: str
) -> dict[str, Any]:
    heads, head_size = shape
    return {
        "vocab_size": vocab,
        "hidden_size": heads * head_size,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": inner,
        "hidden_act": act,
        "max_position_embeddings": 24,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-5,
    }


def _random_tensors(
    expected: dict[str, tuple[int, ...]], rng: np.random.Generator
) -> dict[str, npt.NDArray[np.float32]]:
    tensors = {}
    for name, shape in expected.items():
        if "LayerNorm.weight" in name:
            values = 1.0 + rng.normal(scale=0.2, size=shape)
        elif name.endswith(".bias"):
            values = rng.normal(scale=0.2, size=shape)
        else:
            values = rng.normal(scale=0.5, size=shape)
        tensors[name] = values.astype(np.float32)
    return tensors


@st.composite
def random_models(draw: st.DrawFn) -> RandomModel:
    vocab = draw(st.integers(12, 40))
    act = draw(st.sampled_from(["gelu", "relu", "gelu_new"]))
    decoder_shape = (draw(st.integers(1, 3)), draw(st.integers(1, 6)))
    encoder_shape = draw(st.sampled_from([decoder_shape, (2, 3), (1, 5)]))
    encoder_config = _config(encoder_shape, draw(st.integers(1, 2)), 8, vocab, act)
    inner = draw(st.integers(2, 12))
    decoder_config = _config(decoder_shape, draw(st.integers(1, 2)), inner, vocab, act)
    decoder_config.update(is_decoder=True, add_cross_attention=True)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    encoder_tensors = _random_tensors(
        _core.expected_tensors(_core.EncoderConfig(encoder_config)), rng
    )
    memory = encoder_config["hidden_size"]
    parsed_decoder = _core.DecoderConfig(decoder_config)
    decoder_tensors = _random_tensors(_core.decoder_tensors(parsed_decoder, memory), rng)
    encoder = oxiformer.Encoder.from_tensors(encoder_config, encoder_tensors)
    decoder = _core.Decoder(parsed_decoder, decoder_tensors, memory)
    return RandomModel(
        encoder,
        decoder,
        encoder_config,
        encoder_tensors,
        decoder_config,
        decoder_tensors,
        vocab,
        24,
    )


def _draw_ids(data: Any, vocab: int, rows: int, columns: int) -> npt.NDArray[np.int64]:
    """(rows, columns) ids in [0, vocab) drawn from ``data`` (a ``DataObject`` or draw)."""
    draw = data.draw if hasattr(data, "draw") else data
    values = draw(
        st.lists(st.integers(0, vocab - 1), min_size=rows * columns, max_size=rows * columns)
    )
    return np.array(values, dtype=np.int64).reshape(rows, columns)


@st.composite
def sources(draw: st.DrawFn, vocab: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """A padded batch of 1-3 sources of different lengths; sometimes a mask with holes."""
    batch, width = draw(st.integers(1, 3)), draw(st.integers(1, 6))
    ids = _draw_ids(draw, vocab, batch, width)
    lengths = [draw(st.integers(1, width)) for _ in range(batch)]
    mask = (np.arange(width)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    if width > 2 and draw(st.booleans()):
        mask[0, 0] = 0  # not a prefix: HF's additive bias
    return ids, mask


def _reference_logits(
    model: RandomModel,
    memory: npt.NDArray[np.float64],
    mask: npt.NDArray[np.int64],
    ids: npt.NDArray[np.int64],
    decoder_mask: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.float64]:
    config = _core.EncoderConfig(model.decoder_config).to_dict()
    out = reference.decoder_forward(
        model.decoder_tensors, config, ids, memory, mask, decoder_mask, dtype=np.float64
    )
    logits: npt.NDArray[np.float64] = out["logits"]
    return logits


def _encoded(model: RandomModel, ids: Any, mask: Any) -> tuple[Any, Any]:
    """(Rust encoder output float32, reference encoder output float64)."""
    ours = model.encoder(ids, mask).last_hidden_state
    config = _core.EncoderConfig(model.encoder_config).to_dict()
    theirs = reference.forward(model.encoder_tensors, config, ids, mask, dtype=np.float64)
    return ours, theirs["last_hidden_state"]


def _tolerance(expected: npt.NDArray[np.float64]) -> float:
    return TOLERANCE * max(1.0, float(np.abs(expected).max()))


@SETTINGS
@given(data=st.data())
def test_decoder_logits_match_reference(data: st.DataObject) -> None:
    model = data.draw(random_models())
    ids, mask = data.draw(sources(model.vocab))
    batch = ids.shape[0]
    length = data.draw(st.integers(1, 6))
    targets = _draw_ids(data, model.vocab, batch, length)
    target_mask = np.ones_like(targets)
    if data.draw(st.booleans()):
        lengths = [data.draw(st.integers(1, length)) for _ in range(batch)]
        target_mask = (np.arange(length)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    hidden, reference_hidden = _encoded(model, ids, mask)
    assert max_abs_diff("encoder", hidden, reference_hidden) <= _tolerance(reference_hidden)
    memory = model.decoder.memory(hidden, mask)
    # Teacher forcing, padded decoder inputs.
    state = model.decoder.start(memory, 1, length)
    logits = state.step(targets, target_mask, True)
    want = _reference_logits(model, reference_hidden, mask, targets, target_mask)
    assert max_abs_diff("teacher forcing", logits, want) <= _tolerance(want)
    # The cache, one token at a time: each step's logits are those of the whole prefix.
    state = model.decoder.start(memory, 1, length)
    for position in range(length):
        step = state.step(np.ascontiguousarray(targets[:, position : position + 1]))
        full = _reference_logits(model, reference_hidden, mask, targets[:, : position + 1])
        assert max_abs_diff(f"cached step {position}", step, full[:, -1]) <= _tolerance(full)
    assert len(state) == length


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    num_beams=st.sampled_from([1, 1, 2, 3, 4, 5]),
    length_penalty=st.sampled_from([-0.5, 0.0, 0.7, 1.0, 2.0]),
    early_stopping=st.sampled_from([True, False, "never"]),
    use_cache=st.booleans(),
)
def test_generation_matches_reference_search(
    data: st.DataObject,
    num_beams: int,
    length_penalty: float,
    early_stopping: bool | str,
    use_cache: bool,
) -> None:
    model = data.draw(random_models())
    eos = data.draw(st.integers(0, model.vocab - 1))
    bias = model.decoder_tensors["cls.predictions.decoder.bias"]
    bias[eos] += data.draw(st.floats(0.0, 1.5))  # an end token made likely, sometimes
    model.decoder = _core.Decoder(
        _core.DecoderConfig(model.decoder_config),
        model.decoder_tensors,
        model.encoder_config["hidden_size"],
    )
    pad = data.draw(st.sampled_from([0, 1, None]))
    settings_ = GenerationSettings(2, (eos,), pad if pad is not None else eos)
    ids, mask = data.draw(sources(model.vocab))
    batch = ids.shape[0]
    prefix = data.draw(st.integers(1, 3))
    prompt = _draw_ids(data, model.vocab, batch, prefix)
    max_new_tokens = data.draw(st.integers(1, 6))
    hidden, reference_hidden = _encoded(model, ids, mask)
    memory = model.decoder.memory(hidden, mask)
    state = model.decoder.start(memory, num_beams, prefix + max_new_tokens)
    if num_beams == 1:
        got = generation.greedy_search(state, prompt, max_new_tokens, settings_, use_cache)
    else:
        got = generation.beam_search(
            state,
            prompt,
            max_new_tokens,
            settings_,
            num_beams,
            length_penalty,
            early_stopping,
            use_cache,
        )

    rows_memory = np.repeat(reference_hidden, num_beams, axis=0)
    rows_mask = np.repeat(mask, num_beams, axis=0)
    worst = [0.0]

    def next_logits(sequences: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        fresh = model.decoder.start(memory, num_beams, sequences.shape[1])
        logits = fresh.step(np.ascontiguousarray(sequences))
        want = _reference_logits(model, rows_memory, rows_mask, sequences)[:, -1]
        worst[0] = max(worst[0], float(np.abs(logits - want).max()) / _tolerance(want))
        return logits

    eos_ids = settings_.eos_token_ids
    if num_beams == 1:
        want = reference_generation.greedy_search(
            next_logits, prompt, max_new_tokens, eos_ids, settings_.pad_token_id
        )
    else:
        want = reference_generation.beam_search(
            next_logits,
            prompt,
            max_new_tokens,
            eos_ids,
            settings_.pad_token_id,
            num_beams,
            length_penalty,
            early_stopping,
        )
    np.testing.assert_array_equal(got, want)
    assert worst[0] <= 1.0, f"Rust vs NumPy logits along the search: {worst[0]} x tolerance"
