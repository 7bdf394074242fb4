"""Greedy search and beam search over the Rust decoder, with Hugging Face ``generate``'s
semantics (see :mod:`oxiformer.reference_generation`, the slow twin these are tested
against, for the rules).

Every step feeds all rows (every beam of every input) to the decoder at once; the decoder
keeps the keys and values of the tokens so far (a cache), so a step computes the new token
only, and beam search reorders the cache when it keeps other beams. ``use_cache=False``
recomputes the whole prefix at every step instead (the cross-attention's keys and values over
the encoder's output are computed once either way).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from oxiformer import _core
from oxiformer._types import IntArray
from oxiformer.errors import ConfigError, InputError
from oxiformer.logits_processors import PROCESSOR_OPTIONS, Processors
from oxiformer.sampling import SAMPLING_OPTIONS, Sampling

__all__ = [
    "GenerationSettings",
    "as_prompt",
    "beam_search",
    "check_search",
    "greedy_search",
    "split_options",
]

EarlyStopping = Union[bool, str]

_OUT = np.float32(-1.0e9)

#: transformers' generation options that change the scores or the sampling and that oxiformer
#: does not apply, with their defaults: a configuration that sets one of them gets different
#: results from transformers (the others: ``oxiformer.logits_processors`` and
#: ``oxiformer.sampling``).
_UNSUPPORTED: dict[str, Any] = {
    "encoder_no_repeat_ngram_size": 0,
    "encoder_repetition_penalty": 1.0,
    "num_beam_groups": 1,
    "diversity_penalty": 0.0,
}

#: Sampling warpers oxiformer does not apply (transformers applies them only when sampling).
_UNSUPPORTED_WARPERS: dict[str, Any] = {"typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0}

#: How ``ignored`` names sampling with beams (transformers' beam sample), which oxiformer
#: does not do: beam search runs without sampling.
BEAM_SAMPLING = "do_sample with num_beams > 1"

#: What ``generate`` does when neither its arguments nor the configuration say.
DEFAULT_MAX_NEW_TOKENS = 20


@dataclass(frozen=True)
class GenerationSettings:
    """The special tokens of generation (``generation_config.json``, else ``config.json``,
    top level then its ``decoder`` section, as transformers reads them)."""

    decoder_start_token_id: int | None
    eos_token_ids: tuple[int, ...]
    pad_token_id: int | None
    ignored: tuple[str, ...] = ()
    """Generation options the configuration sets that oxiformer does not apply (beam
    sampling, diverse beams, the encoder's n-grams, typical and epsilon sampling)."""
    processors: Processors = field(default_factory=Processors)
    """The logits processors the configuration sets (``generate``'s defaults)."""
    sampling: Sampling = field(default_factory=Sampling)
    """``do_sample`` and the warpers the configuration sets (``generate``'s defaults)."""
    search: dict[str, Any] = field(default_factory=dict)
    """``num_beams``, ``length_penalty``, ``early_stopping``, ``max_new_tokens`` and
    ``max_length`` as the configuration sets them (``generate``'s defaults)."""

    @classmethod
    def from_configs(
        cls, *configs: Mapping[str, Any], source: str, sources: Sequence[str] = ()
    ) -> GenerationSettings:
        """The settings from ``configs``, the first that sets a value winning; errors name
        ``source``, or for the processors and sampling options the entry of ``sources`` (one
        per config) whose config holds the wrong value."""
        for config, where in zip(configs, sources):
            Processors.from_options(
                {n: config.get(n) for n in PROCESSOR_OPTIONS}, ConfigError, where
            )
            Sampling.from_options({n: config.get(n) for n in SAMPLING_OPTIONS}, ConfigError, where)

        def first(*names: str) -> Any:
            for config in configs:
                for name in names:
                    if config.get(name) is not None:
                        return config[name]
            return None

        def token(value: Any, name: str) -> int:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{source}: '{name}' must be a token id, got {value!r}")
            return value

        def optional(name: str, *fallbacks: str) -> int | None:
            value = first(name, *fallbacks)
            return None if value is None else token(value, name)

        start = optional("decoder_start_token_id", "bos_token_id")
        eos = first("eos_token_id")
        eos_ids = eos if isinstance(eos, list) else [] if eos is None else [eos]
        eos_tokens = tuple(token(value, "eos_token_id") for value in eos_ids)
        pad = optional("pad_token_id")
        if pad is None and eos_tokens:
            pad = eos_tokens[0]  # as transformers does (with a warning)
        options = {name: first(name) for name in PROCESSOR_OPTIONS}
        processors = Processors.from_options(options, ConfigError, source)
        with warnings.catch_warnings():
            if sources:  # each file's unusable values were warned about above
                warnings.simplefilter("ignore")
            sampling = Sampling.from_options(
                {name: first(name) for name in SAMPLING_OPTIONS}, ConfigError, source
            )
        unsupported = {**_UNSUPPORTED, **(_UNSUPPORTED_WARPERS if sampling.do_sample else {})}
        ignored = tuple(
            name
            for name, default in unsupported.items()
            if first(name) is not None and first(name) != default
        )
        names = ("num_beams", "length_penalty", "early_stopping", "max_new_tokens", "max_length")
        search = {name: first(name) for name in names if first(name) is not None}
        try:
            check_search(
                search.get("max_new_tokens", 1),
                search.get("num_beams", 1),
                search.get("length_penalty", 1.0),
                search.get("early_stopping", False),
            )
            if "max_length" in search:
                check_search(search["max_length"], 1, 1.0, False)
        except InputError as err:
            raise ConfigError(f"{source}: {err}") from None
        if sampling.do_sample and search.get("num_beams", 1) > 1:
            ignored = (*ignored, BEAM_SAMPLING)
        return cls(start, eos_tokens, pad, ignored, processors, sampling, search)

    @property
    def beam_fill(self) -> int:
        """What fills a finished beam: ``pad_token_id or eos_token_id`` (HF's expression, so
        a pad id of 0 fills with eos)."""
        if not self.eos_token_ids:
            return -1
        return self.pad_token_id or self.eos_token_ids[0]


def check_search(
    max_new_tokens: Any,
    num_beams: Any,
    length_penalty: Any,
    early_stopping: Any,
    vocab_size: int | None = None,
) -> None:
    """Typed errors for search arguments that cannot run (more beams than tokens in the
    vocabulary is one: it could only exhaust memory)."""
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise InputError(f"max_new_tokens must be an integer, got {max_new_tokens!r}")
    if max_new_tokens <= 0:
        raise InputError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if isinstance(num_beams, bool) or not isinstance(num_beams, int):
        raise InputError(f"num_beams must be an integer, got {num_beams!r}")
    if num_beams < 1:
        raise InputError(f"num_beams must be at least 1, got {num_beams}")
    if vocab_size is not None and num_beams > vocab_size:
        raise InputError(f"num_beams ({num_beams}) exceeds the vocabulary size ({vocab_size})")
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)):
        raise InputError(f"length_penalty must be a number, got {length_penalty!r}")
    if not math.isfinite(length_penalty):
        raise InputError(f"length_penalty must be finite, got {length_penalty}")
    if not (isinstance(early_stopping, bool) or early_stopping == "never"):
        raise InputError(f"early_stopping must be True, False or 'never', got {early_stopping!r}")


def greedy_search(
    state: _core.DecoderState,
    prompt: IntArray,
    max_new_tokens: int,
    settings: GenerationSettings,
    use_cache: bool = True,
    processors: Processors | None = None,
    choose: Callable[[npt.NDArray[np.float32]], IntArray] | None = None,
) -> IntArray:
    """``prompt (B, P)`` extended by up to ``max_new_tokens`` tokens (B, P + generated);
    ``processors`` act on the logits of each step, ``choose`` picks each row's token from them
    (None: the argmax; ``Sampling.chooser``: a draw)."""
    sequences = prompt
    finished = np.zeros(len(prompt), dtype=bool)
    eos = np.array(settings.eos_token_ids, dtype=np.int64)
    process = _process(processors, settings, prompt.shape[1], max_new_tokens)
    logits = state.step(prompt)
    for step in range(max_new_tokens):
        if process is not None:
            logits = process(sequences, logits)
        tokens = (choose or _argmax)(logits)
        if eos.size:
            pad = settings.pad_token_id if settings.pad_token_id is not None else eos[0]
            tokens = np.where(finished, pad, tokens)
            finished |= np.isin(tokens, eos)
        sequences = np.concatenate([sequences, tokens[:, None]], axis=1)
        if finished.all() or step + 1 == max_new_tokens:
            break
        if use_cache:
            logits = state.step(np.ascontiguousarray(tokens[:, None]))
        else:
            state.reset()
            logits = state.step(sequences)
    return sequences


def beam_search(
    state: _core.DecoderState,
    prompt: IntArray,
    max_new_tokens: int,
    settings: GenerationSettings,
    num_beams: int,
    length_penalty: float = 1.0,
    early_stopping: EarlyStopping = False,
    use_cache: bool = True,
    processors: Processors | None = None,
) -> IntArray:
    """The best of ``num_beams`` beams for each row of ``prompt (B, P)``; the state has
    ``B * num_beams`` rows (beam ``k`` of input ``b`` is row ``b * num_beams + k``);
    ``processors`` act on each step's log-softmax, before the beams' scores are added."""
    batch, start = prompt.shape
    beams = num_beams
    max_length = start + max_new_tokens
    eos = np.array(settings.eos_token_ids, dtype=np.int64)
    # Running beams and finished hypotheses, (B, K, max_length) each, as HF keeps them.
    running = np.full((batch, beams, max_length), settings.beam_fill, dtype=np.int64)
    running[:, :, :start] = prompt[:, None, :]
    finished = running.copy()
    running_scores = np.zeros((batch, beams), dtype=np.float32)
    running_scores[:, 1:] = _OUT  # only the first beam's tokens count at the first step
    finished_scores = np.full((batch, beams), -np.inf, dtype=np.float32)
    is_finished = np.zeros((batch, beams), dtype=bool)
    generated = np.zeros((batch, beams), dtype=np.int64)
    improvable = np.ones(batch, dtype=bool)
    process = _process(processors, settings, start, max_new_tokens)
    logits = state.step(np.ascontiguousarray(np.repeat(prompt, beams, axis=0)))
    length = start
    while True:
        vocab = logits.shape[-1]
        keep = min(max(2, 1 + eos.size) * beams, beams * vocab)
        log_probs = _log_softmax(logits)
        if process is not None:
            log_probs = process(running[:, :, :length].reshape(-1, length), log_probs)
        scores = log_probs.reshape(batch, beams, vocab) + running_scores[..., None]
        flat = scores.reshape(batch, beams * vocab)
        best = _top(flat, keep)  # (B, keep), best first
        best_scores = np.take_along_axis(flat, best, axis=1)
        source_beam, tokens = best // vocab, best % vocab
        candidates = np.take_along_axis(running, source_beam[..., None], axis=1)
        candidates[:, :, length] = tokens
        hits = np.isin(tokens, eos) | (length + 1 >= max_length)

        # Finished hypotheses: the first `beams` candidates that hit, unless the item is
        # full (early stopping) or cannot improve; the best `beams` are kept.
        full = is_finished.all(axis=1) & (early_stopping is True)
        eligible = hits & (np.arange(keep) < beams)[None, :] & (improvable & ~full)[:, None]
        penalty = np.float32((length + 1 - start) ** length_penalty)
        new_scores = np.where(eligible, best_scores / penalty, -np.inf).astype(np.float32)
        merged = np.concatenate([finished_scores, new_scores], axis=1)
        order = np.argsort(-merged, axis=1, kind="stable")[:, :beams]
        finished_scores = np.take_along_axis(merged, order, axis=1)
        finished = _take(np.concatenate([finished, candidates], axis=1), order)
        is_finished = np.take_along_axis(np.concatenate([is_finished, eligible], axis=1), order, 1)
        new_generated = np.full((batch, keep), length + 1 - start)
        generated = np.take_along_axis(np.concatenate([generated, new_generated], 1), order, 1)

        # Running beams: the best `beams` candidates that did not hit.
        penalized = (best_scores + hits.astype(np.float32) * _OUT).astype(np.float32)
        order = np.argsort(-penalized, axis=1, kind="stable")[:, :beams]
        running = _take(candidates, order)
        running_scores = np.take_along_axis(penalized, order, axis=1)
        parents = np.take_along_axis(source_beam, order, axis=1)

        length += 1
        if early_stopping == "never" and length_penalty > 0.0:
            best_length = max_new_tokens
        else:
            best_length = length - start
        best_possible = running_scores[:, 0] / np.float32(best_length**length_penalty)
        worst = finished_scores.min(axis=1)
        improvable &= ~is_finished.all(axis=1) | (best_possible > worst)
        all_full = bool(is_finished.all()) and early_stopping is True
        if not improvable.any() or all_full or hits.all():
            break
        if use_cache:
            rows = (np.arange(batch)[:, None] * beams + parents).reshape(-1)
            state.reorder(rows.astype(np.int64))
            logits = state.step(np.ascontiguousarray(running[:, :, length - 1].reshape(-1, 1)))
        else:
            state.reset()
            logits = state.step(np.ascontiguousarray(running[:, :, :length].reshape(-1, length)))
    width = start + int(generated[:, 0].max())
    return np.ascontiguousarray(finished[:, 0, :width])


def _process(
    processors: Processors | None,
    settings: GenerationSettings,
    prompt_length: int,
    max_new_tokens: int,
) -> Any:
    if processors is None:
        return None
    return processors.steps(settings.eos_token_ids, prompt_length, prompt_length + max_new_tokens)


def _argmax(scores: npt.NDArray[np.float32]) -> IntArray:
    tokens: IntArray = np.argmax(scores, axis=-1).astype(np.int64)
    return tokens


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``generate``'s keyword options: (logits processors', sampling's); unknown names are an
    error naming the known ones."""
    unknown = sorted(set(options) - set(PROCESSOR_OPTIONS) - set(SAMPLING_OPTIONS))
    if unknown:
        known = ", ".join((*PROCESSOR_OPTIONS, *SAMPLING_OPTIONS))
        raise InputError(
            f"generate() got unknown option(s) {', '.join(unknown)} (generation options it "
            f"takes: {known})"
        )
    sampling = {name: value for name, value in options.items() if name in SAMPLING_OPTIONS}
    processors = {name: value for name, value in options.items() if name in PROCESSOR_OPTIONS}
    return processors, sampling


def _log_softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``torch.nn.functional.log_softmax`` over the vocabulary, in float32."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    result: npt.NDArray[np.float32] = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return result


def _take(sequences: IntArray, order: npt.NDArray[np.intp]) -> IntArray:
    """``sequences (B, N, L)`` rows ``order (B, K)`` of each item."""
    return np.take_along_axis(sequences, order[..., None], axis=1)


def _top(scores: npt.NDArray[np.float32], keep: int) -> npt.NDArray[np.intp]:
    """Indices of the ``keep`` largest scores of each row, largest first, ties by index (a
    stable sort's order) without sorting the whole row."""
    if keep >= scores.shape[1]:
        return np.argsort(-scores, axis=1, kind="stable")[:, :keep]
    threshold = -np.partition(-scores, keep - 1, axis=1)[:, keep - 1]  # the keep-th largest
    rows = []
    for row, limit in zip(scores, threshold):
        above = np.flatnonzero(row > limit)
        at = np.flatnonzero(row == limit)[: keep - above.size]
        chosen = np.concatenate([above, at])
        rows.append(chosen[np.lexsort((chosen, -row[chosen]))])
    return np.array(rows, dtype=np.intp)


def as_prompt(decoder_input_ids: Any, batch: int, settings: GenerationSettings) -> IntArray:
    """The decoder's prompt (B, P): ``decoder_input_ids`` (after the start token, unless a
    row already starts with it), else the start token."""
    if decoder_input_ids is None:
        if settings.decoder_start_token_id is None:
            raise ConfigError(
                "no decoder_start_token_id (nor bos_token_id) in the configuration: pass "
                "decoder_input_ids"
            )
        return np.full((batch, 1), settings.decoder_start_token_id, dtype=np.int64)
    prompt = np.asarray(decoder_input_ids)
    if prompt.dtype.kind not in "iu" or prompt.ndim != 2 or prompt.shape[0] != batch:
        raise InputError(
            f"decoder_input_ids must be integers of shape ({batch}, prefix), got "
            f"{prompt.dtype} {prompt.shape}"
        )
    if prompt.shape[1] == 0:
        raise InputError("decoder_input_ids is empty (a prefix needs at least one token)")
    prompt = np.ascontiguousarray(prompt, dtype=np.int64)
    start = settings.decoder_start_token_id
    if start is not None and (prompt[:, 0] != start).all():
        # As transformers does: a prefix whose rows all lack the start token gets it first.
        prompt = np.concatenate([np.full((batch, 1), start, dtype=np.int64), prompt], axis=1)
    return prompt
