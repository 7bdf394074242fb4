"""Sampling for ``generate(do_sample=True)``: transformers' logits warpers, then a draw from
the softmax.

After the logits processors (:mod:`oxiformer.logits_processors`), each step's scores go
through the warpers transformers adds for sampling, in its order:

1. ``temperature`` (unless 1): the scores divided by it;
2. ``top_k`` (unless 0): every token scoring below the k-th best is removed (ties with it
   stay);
3. ``top_p`` (unless 1): the tokens are taken from the least likely up; those whose
   cumulative probability is at most ``1 - top_p`` are removed (the most likely always
   stays), which keeps the smallest set whose probability reaches ``top_p``;
4. ``min_p`` (when set): tokens less likely than ``min_p`` times the most likely one are
   removed (the most likely always stays).

A removed token's score is -inf. The next token is drawn from the softmax of what remains,
with NumPy's generator: ``seed`` (an int, or a ``numpy.random.Generator``) makes the draws
repeatable. transformers draws with torch's generator, so the same seed gives other tokens
there; the distribution each token is drawn from is the same.

transformers' defaults apply when sampling: ``top_k`` 50, ``temperature`` 1, ``top_p`` 1.
Without ``do_sample`` the warpers do nothing, as in transformers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from oxiformer._checks import option_error
from oxiformer.errors import ConfigError, InputError

__all__ = ["SAMPLING_OPTIONS", "Sampling", "Seed", "check_seed"]

#: The options, as ``generate`` and ``generation_config.json`` name them.
SAMPLING_OPTIONS = ("do_sample", "temperature", "top_k", "top_p", "min_p")

#: What ``generate(seed=...)`` takes.
Seed = Union[int, np.random.Generator, None]

Scores = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Sampling:
    """Whether to sample, and the warpers' values (transformers' defaults)."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    min_p: float | None = None

    @classmethod
    def from_options(
        cls, options: dict[str, Any], error: type[ConfigError] | type[InputError], where: str
    ) -> Sampling:
        """Checked values from ``options`` (name -> value; None or absent: the default).

        A configuration (``error`` ConfigError) that does not sample may hold warper values
        sampling could not use (``temperature: 0`` is common): as transformers, it loads, with
        a warning, and those values are left at their defaults."""
        do_sample = options.get("do_sample")
        if do_sample is not None and not isinstance(do_sample, bool):
            raise option_error(error, where, options, "do_sample", "True or False")
        values: dict[str, Any] = {}
        for name, (valid, expected) in _WARPERS.items():
            value = options.get(name)
            if value is None:
                continue
            if valid(value):
                values[name] = value if name == "top_k" else float(value)
            elif do_sample or error is InputError:
                raise option_error(error, where, options, name, expected)
            else:
                warnings.warn(
                    f"{where}: {name}={value!r} could not be used for sampling ({expected}); "
                    "ignored, as do_sample is off",
                    stacklevel=5,
                )
        return cls(do_sample=bool(do_sample), **values)

    def updated(self, overrides: dict[str, Any]) -> Sampling:
        """These values with ``overrides`` (None: keep), checked as ``generate``'s arguments."""
        options = {name: getattr(self, name) for name in SAMPLING_OPTIONS}
        options.update({name: value for name, value in overrides.items() if value is not None})
        return Sampling.from_options(options, InputError, "")

    def warp(self, scores: Scores) -> Scores:
        """transformers' warpers, in its order, on the scores (R, V) of a step."""
        scores = np.array(scores, dtype=np.float32, copy=True)
        if self.temperature != 1.0:
            scores = (scores / np.float32(self.temperature)).astype(np.float32)
        vocab = scores.shape[-1]
        if self.top_k != 0 and self.top_k < vocab:
            kth = -np.partition(-scores, self.top_k - 1, axis=-1)[:, self.top_k - 1 : self.top_k]
            scores[scores < kth] = -np.inf
        if self.top_p < 1.0:
            order = np.argsort(scores, axis=-1, kind="stable")  # least likely first
            ascending = np.take_along_axis(scores, order, axis=-1)
            cumulative = np.cumsum(_softmax(ascending), axis=-1, dtype=np.float32)
            remove = cumulative <= np.float32(1.0 - self.top_p)
            remove[:, -1] = False  # the most likely token always stays
            np.put_along_axis(scores, order, np.where(remove, -np.inf, ascending), axis=-1)
        if self.min_p is not None:
            probs = _softmax(scores)
            remove = probs < np.float32(self.min_p) * probs.max(axis=-1, keepdims=True)
            remove[np.arange(len(scores)), np.argmax(scores, axis=-1)] = False
            scores[remove] = -np.inf
        return scores

    def chooser(self, seed: Seed) -> Callable[[Scores], npt.NDArray[np.int64]] | None:
        """The choice of each row's next token from its scores when sampling: a draw from the
        warped scores' softmax with a generator made from ``seed`` (None: not sampling)."""
        if not self.do_sample:
            return None
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

        def draw(scores: Scores) -> npt.NDArray[np.int64]:
            probs = _softmax(self.warp(scores)).astype(np.float64)
            cumulative = np.cumsum(probs, axis=-1)
            targets = rng.random(len(probs)) * cumulative[:, -1]
            chosen = (cumulative <= targets[:, None]).sum(axis=-1)
            # never a token of probability 0 (a removed one), even at the float edges
            last = probs.shape[-1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=-1)
            tokens: npt.NDArray[np.int64] = np.minimum(chosen, last).astype(np.int64)
            return tokens

        return draw


def check_seed(seed: Any) -> Seed:
    """``seed`` if ``generate`` can use it (None, a non-negative int, a NumPy Generator)."""
    if seed is None or isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(
            f"seed must be a non-negative integer or a numpy.random.Generator, got {seed!r}"
        )
    return int(seed)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Each warper's check, and what it expects (for the error).
_WARPERS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "temperature": (lambda v: _is_number(v) and 0 < v < float("inf"), "a positive number"),
    "top_k": (_is_count, "a non-negative integer"),
    "top_p": (lambda v: _is_number(v) and 0.0 <= v <= 1.0, "a number in [0, 1]"),
    "min_p": (lambda v: _is_number(v) and 0.0 <= v <= 1.0, "a number in [0, 1]"),
}


def _softmax(scores: Scores) -> Scores:
    top = scores.max(axis=-1, keepdims=True)
    exp = np.exp(scores - np.where(np.isfinite(top), top, 0), dtype=np.float32)
    result: Scores = exp / exp.sum(axis=-1, keepdims=True)
    return result
