"""Greedy search and beam search written plainly: the oracle ``oxiformer.generation`` is
tested against.

Slow and readable on purpose: one batch item at a time, Python lists, the decoder run on the
whole sequence at every step (no cache). The rules are those of Hugging Face
``GenerationMixin`` (``_sample`` with ``do_sample=False``, and the vectorized
``_beam_search`` of transformers >= 4.50, which replaced ``BeamSearchScorer`` and keeps its
semantics):

- greedy: the arg max of the logits; a row that has produced an ``eos`` id gets ``pad`` from
  then on;
  generation stops when every row has finished or ``max_new_tokens`` are generated.
- beam search: scores are sums of log-softmax values (float32). Each step keeps the best
  ``2 * num_beams`` (``(1 + n_eos) * num_beams`` for several end ids) continuations of all
  beams of an item; those ending in ``eos`` (or reaching
  the maximum length) among the first ``num_beams`` become finished hypotheses, scored
  ``sum / generated_length ** length_penalty`` (the generated length counts ``eos``); the best
  ``num_beams`` unfinished continuations run on. An item is done when ``num_beams`` hypotheses
  are finished and (``early_stopping=True``) at once, or (``False``) once the best running score
  divided by the current generated length to the penalty cannot beat the worst finished one,
  or (``"never"``, with a positive penalty) by the maximum length. The best hypothesis is
  returned, shorter ones filled up with ``pad`` (``eos`` when ``pad`` is 0 or absent: HF's
  ``pad_token_id or eos_token_id``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import numpy.typing as npt

__all__ = ["beam_search", "greedy_search", "log_softmax"]

#: ``next_logits(sequences (N, L) int64) -> (N, vocab) float32``: the logits of the next token.
NextLogits = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float32]]
EarlyStopping = Union[bool, str]

#: What HF adds to a score to take it out of the running (float32 arithmetic).
_OUT = np.float32(-1.0e9)


def log_softmax(logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``log_softmax`` over the last axis, in float32 as ``torch.nn.functional.log_softmax``."""
    x = logits.astype(np.float32)
    shifted = x - x.max(axis=-1, keepdims=True)
    result: npt.NDArray[np.float32] = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return result


def greedy_search(
    next_logits: NextLogits,
    prompt: npt.ArrayLike,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    pad_token_id: int | None,
) -> npt.NDArray[np.int64]:
    """``prompt`` (B, P) extended by up to ``max_new_tokens`` tokens each; a row ends at
    any of ``eos_token_ids`` (none: rows never end early)."""
    rows = [list(map(int, row)) for row in np.asarray(prompt)]
    finished = [False] * len(rows)
    for _ in range(max_new_tokens):
        logits = next_logits(np.array(rows, dtype=np.int64))
        for index, row in enumerate(rows):
            token = int(np.argmax(logits[index]))
            if finished[index]:
                token = pad_token_id if pad_token_id is not None else eos_token_ids[0]
            row.append(token)
            if token in eos_token_ids:
                finished[index] = True
        if all(finished):
            break
    return np.array(rows, dtype=np.int64)


@dataclass
class _Item:
    """The beams of one batch item: running sequences and finished hypotheses."""

    running: list[list[int]]
    running_scores: list[np.float32]
    finished: list[tuple[np.float32, list[int]]] = field(default_factory=list)
    improvable: bool = True


def beam_search(
    next_logits: NextLogits,
    prompt: npt.ArrayLike,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    pad_token_id: int | None,
    num_beams: int,
    length_penalty: float = 1.0,
    early_stopping: EarlyStopping = False,
) -> npt.NDArray[np.int64]:
    """``prompt`` (B, P) -> the best hypothesis of each item (B, P + generated)."""
    prompts = [list(map(int, row)) for row in np.asarray(prompt)]
    start = len(prompts[0])
    max_length = start + max_new_tokens
    items = [
        _Item(
            running=[list(row) for _ in range(num_beams)],
            running_scores=[np.float32(0.0)] + [_OUT] * (num_beams - 1),
        )
        for row in prompts
    ]
    keep = max(2, 1 + len(eos_token_ids)) * num_beams
    length = start
    while True:
        flat = np.array([seq for item in items for seq in item.running], dtype=np.int64)
        log_probs = log_softmax(next_logits(flat))
        vocab = log_probs.shape[1]
        all_hit = True
        for index, item in enumerate(items):
            rows = log_probs[index * num_beams : (index + 1) * num_beams]
            scores = (rows + np.array(item.running_scores, dtype=np.float32)[:, None]).reshape(-1)
            best = np.argsort(-scores, kind="stable")[:keep]
            candidates = [
                (scores[flat_index], item.running[flat_index // vocab] + [flat_index % vocab])
                for flat_index in best
            ]
            hits = [seq[-1] in eos_token_ids or len(seq) >= max_length for _, seq in candidates]
            all_hit = all_hit and all(hits)
            _add_finished(
                item,
                candidates,
                hits,
                num_beams,
                length + 1 - start,
                length_penalty,
                early_stopping,
            )
            penalized = np.array(
                [score + _OUT if hit else score for (score, _), hit in zip(candidates, hits)],
                dtype=np.float32,
            )
            order = np.argsort(-penalized, kind="stable")[:num_beams]
            item.running = [candidates[rank][1] for rank in order]
            item.running_scores = [penalized[rank] for rank in order]
        length += 1
        for item in items:
            _check_improvable(
                item, num_beams, length - start, max_new_tokens, length_penalty, early_stopping
            )
        improvable = any(item.improvable for item in items)
        all_full = all(len(item.finished) == num_beams for item in items)
        if not improvable or (all_full and early_stopping is True) or all_hit:
            break
    return _pad_best(items, pad_token_id, eos_token_ids)


def _add_finished(
    item: _Item,
    candidates: Sequence[tuple[np.float32, list[int]]],
    hits: Sequence[bool],
    num_beams: int,
    generated: int,
    length_penalty: float,
    early_stopping: EarlyStopping,
) -> None:
    """Candidates among the first ``num_beams`` that finished join the hypotheses (best
    ``num_beams`` kept), unless the item is full with early stopping, or cannot improve."""
    if not item.improvable or (len(item.finished) == num_beams and early_stopping is True):
        return
    denominator = np.float32(generated**length_penalty)
    for rank, ((score, sequence), hit) in enumerate(zip(candidates, hits)):
        if hit and rank < num_beams:
            item.finished.append((np.float32(score / denominator), sequence))
    order = np.argsort(-np.array([s for s, _ in item.finished], dtype=np.float32), kind="stable")
    item.finished = [item.finished[i] for i in order[:num_beams]]


def _check_improvable(
    item: _Item,
    num_beams: int,
    generated: int,
    max_new_tokens: int,
    length_penalty: float,
    early_stopping: EarlyStopping,
) -> None:
    """Whether the best running beam could still beat the worst finished hypothesis."""
    if len(item.finished) < num_beams:
        return  # an empty slot is always beaten
    if early_stopping == "never" and length_penalty > 0.0:
        best_length = max_new_tokens
    else:
        best_length = generated
    best_possible = item.running_scores[0] / np.float32(best_length**length_penalty)
    worst = min(score for score, _ in item.finished)
    item.improvable = item.improvable and bool(best_possible > worst)


def _pad_best(items: Sequence[_Item], pad: int | None, eos: Sequence[int]) -> npt.NDArray[np.int64]:
    best = [item.finished[0][1] for item in items]
    width = max(len(sequence) for sequence in best)
    fill: Any = (pad or eos[0]) if eos else -1
    return np.array([seq + [fill] * (width - len(seq)) for seq in best], dtype=np.int64)
