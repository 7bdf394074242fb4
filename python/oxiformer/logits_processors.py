"""transformers' logits processors for ``generate``: the options of ``generation_config.json``
that change the scores, applied as transformers applies them.

At each step they act on the scores of every row (greedy search: the logits; beam search: the
log-softmax, before the beams' scores are added), given the row's sequence so far (the
decoder's prompt included), in transformers' order:

1. ``repetition_penalty``: the score of every token already in the sequence is divided by the
   penalty when positive, multiplied when negative;
2. ``no_repeat_ngram_size`` n: a token that would repeat an n-gram of the sequence is banned;
3. ``bad_words_ids``: a banned sequence's last token, when the rest of it ends the sequence
   (single tokens: always; a sequence equal to the end-of-sequence token is ignored);
4. ``min_length`` (of the whole sequence) and ``min_new_tokens``: the end-of-sequence tokens
   are banned until then;
5. ``forced_bos_token_id`` at the first generated position, ``forced_eos_token_id`` at the
   last one: every other token banned;
6. ``suppress_tokens`` always, ``begin_suppress_tokens`` at the first generated position.

A banned token's score is -inf.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer._checks import option_error
from oxiformer._types import IntArray
from oxiformer.errors import ConfigError, InputError

__all__ = ["PROCESSOR_OPTIONS", "Processors"]

#: The options, as ``generate`` and ``generation_config.json`` name them.
PROCESSOR_OPTIONS = (
    "repetition_penalty",
    "no_repeat_ngram_size",
    "bad_words_ids",
    "min_length",
    "min_new_tokens",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "suppress_tokens",
    "begin_suppress_tokens",
)

Scores = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Processors:
    """The options' values (transformers' defaults: nothing changes)."""

    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    bad_words_ids: tuple[tuple[int, ...], ...] = ()
    min_length: int = 0
    min_new_tokens: int = 0
    forced_bos_token_id: int | None = None
    forced_eos_token_id: tuple[int, ...] = ()
    suppress_tokens: tuple[int, ...] = ()
    begin_suppress_tokens: tuple[int, ...] = ()

    @classmethod
    def from_options(
        cls, options: dict[str, Any], error: type[ConfigError] | type[InputError], where: str
    ) -> Processors:
        """Checked values from ``options`` (name -> value; None or absent: the default)."""

        def fail(name: str, expected: str) -> Exception:
            return option_error(error, where, options, name, expected)

        def count(name: str) -> int:
            value = options.get(name)
            if value is None:
                return 0
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise fail(name, "a non-negative integer")
            return value

        def tokens(name: str) -> tuple[int, ...]:
            value = options.get(name)
            if value is None:
                return ()
            items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
            if not isinstance(items, (list, tuple)) or not all(_is_token(t) for t in items):
                raise fail(name, "a token id or a list of them")
            return tuple(items)

        penalty = options.get("repetition_penalty")
        if penalty is None:
            penalty = 1.0
        if isinstance(penalty, bool) or not isinstance(penalty, (int, float)) or penalty <= 0:
            raise fail("repetition_penalty", "a positive number")
        bad = options.get("bad_words_ids")
        if bad is None:
            bad = []
        if not isinstance(bad, (list, tuple)) or not all(
            isinstance(seq, (list, tuple)) and seq and all(_is_token(t) for t in seq) for seq in bad
        ):
            raise fail("bad_words_ids", "a list of non-empty lists of token ids")
        bos = options.get("forced_bos_token_id")
        if bos is not None and not _is_token(bos):
            raise fail("forced_bos_token_id", "a token id")
        return cls(
            repetition_penalty=float(penalty),
            no_repeat_ngram_size=count("no_repeat_ngram_size"),
            bad_words_ids=tuple(tuple(seq) for seq in bad),
            min_length=count("min_length"),
            min_new_tokens=count("min_new_tokens"),
            forced_bos_token_id=bos,
            forced_eos_token_id=tokens("forced_eos_token_id"),
            suppress_tokens=tokens("suppress_tokens"),
            begin_suppress_tokens=tokens("begin_suppress_tokens"),
        )

    def updated(self, overrides: dict[str, Any]) -> Processors:
        """These values with ``overrides`` (None: keep), checked as ``generate``'s arguments."""
        unknown = sorted(set(overrides) - set(PROCESSOR_OPTIONS))
        if unknown:
            raise InputError(
                f"generate() got unknown option(s) {', '.join(unknown)} (generation options it "
                f"takes: {', '.join(PROCESSOR_OPTIONS)})"
            )
        options = {name: getattr(self, name) for name in PROCESSOR_OPTIONS}
        options.update({name: value for name, value in overrides.items() if value is not None})
        return Processors.from_options(options, InputError, "")

    def steps(
        self, eos: tuple[int, ...], prompt_length: int, max_length: int
    ) -> Callable[[IntArray, Scores], Scores] | None:
        """The processing of one step, ``(sequences (R, L), scores (R, V)) -> scores``, for
        sequences that start with ``prompt_length`` prompt tokens and end at ``max_length``;
        None when no option is set."""
        if self == Processors():
            return None
        bad = [seq for seq in self.bad_words_ids if list(seq) not in ([t] for t in eos)]

        def process(sequences: IntArray, scores: Scores) -> Scores:
            scores = scores.copy()
            length = sequences.shape[1]
            if self.repetition_penalty != 1.0:
                penalty = np.float32(self.repetition_penalty)
                for row, sequence in enumerate(sequences):
                    seen = np.unique(sequence)
                    values = scores[row, seen]
                    scores[row, seen] = np.where(values < 0, values * penalty, values / penalty)
            if self.no_repeat_ngram_size:
                for row, sequence in enumerate(sequences):
                    scores[row, _repeating(sequence.tolist(), self.no_repeat_ngram_size)] = -np.inf
            for seq in bad:
                *prefix, last = seq
                for row, sequence in enumerate(sequences):
                    if not prefix or sequence[length - len(prefix) :].tolist() == prefix:
                        scores[row, last] = -np.inf
            short = length < self.min_length or length - prompt_length < self.min_new_tokens
            if short and eos:
                scores[:, list(eos)] = -np.inf
            if self.forced_bos_token_id is not None and length == 1:
                scores[:] = -np.inf
                scores[:, self.forced_bos_token_id] = 0
            if self.forced_eos_token_id and length == max_length - 1:
                scores[:] = -np.inf
                scores[:, list(self.forced_eos_token_id)] = 0
            if self.suppress_tokens:
                scores[:, list(self.suppress_tokens)] = -np.inf
            begin = prompt_length + (prompt_length == 1 and self.forced_bos_token_id is not None)
            if self.begin_suppress_tokens and length == begin:
                scores[:, list(self.begin_suppress_tokens)] = -np.inf
            return scores

        return process

    def check_vocabulary(self, vocab_size: int) -> None:
        """Every token id the options name is in the vocabulary."""
        named = [
            *(t for seq in self.bad_words_ids for t in seq),
            *self.forced_eos_token_id,
            *self.suppress_tokens,
            *self.begin_suppress_tokens,
            *([] if self.forced_bos_token_id is None else [self.forced_bos_token_id]),
        ]
        outside = [t for t in named if t >= vocab_size]
        if outside:
            raise InputError(
                f"generation option token id {outside[0]} is outside the vocabulary "
                f"({vocab_size} tokens)"
            )


def _repeating(tokens: list[int], n: int) -> list[int]:
    """The tokens that would complete an n-gram already in ``tokens`` (transformers'
    ``_get_ngrams`` and ``_get_generated_ngrams``)."""
    if len(tokens) + 1 < n:
        return []
    tail = tuple(tokens[len(tokens) + 1 - n :])
    return [
        tokens[start + n - 1]
        for start in range(len(tokens) - n + 1)
        if tuple(tokens[start : start + n - 1]) == tail
    ]


def _is_token(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
