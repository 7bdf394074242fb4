"""Memory: 10,000 calls on varied inputs must not grow the process (RSS) by 5 MiB or more.

Each test warms up first (allocator arenas, rayon workers, thread-local workspaces, numpy
caches reach their steady size), reads VmRSS from /proc/self/status, runs the bounded loop,
and reads it again. The measured growth is printed (``pytest -s``). A leak of even a few
hundred bytes a call (a lost output buffer, a Python object never released by the bindings)
exceeds the limit over 10,000 calls.
"""

from __future__ import annotations

import gc
import random
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import oxiformer
import pytest
from helpers import TINY_BERT_SEQCLS, require_fixtures

require_fixtures("tiny-bert/seqcls")

CALLS = 10_000
WARM_UP = 1_000
LIMIT_BYTES = 5 * 1024 * 1024
STATUS = Path("/proc/self/status")

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not STATUS.is_file(), reason="reads /proc/self/status"
)


def rss_bytes() -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise AssertionError("no VmRSS line in /proc/self/status")


def growth_over(calls: int, step: Callable[[int], object]) -> int:
    """RSS growth in bytes over ``calls`` calls of ``step`` after a warm-up."""
    for index in range(WARM_UP):
        step(index)
    gc.collect()
    before = rss_bytes()
    for index in range(calls):
        step(index)
    gc.collect()
    return rss_bytes() - before


def texts(count: int) -> list[str]:
    rng = random.Random(42)
    pieces = ["hello", "wörld", "中文", "😀", "[MASK]", "un##aff", "\x00", " \t", "a" * 150, ","]
    return ["".join(rng.choice(pieces) for _ in range(rng.randrange(0, 40))) for _ in range(count)]


@pytest.fixture(scope="module")
def tokenizer() -> oxiformer.Tokenizer:
    return oxiformer.Tokenizer.from_pretrained(TINY_BERT_SEQCLS)


@pytest.fixture(scope="module")
def encoder() -> oxiformer.Encoder:
    return oxiformer.Encoder.from_pretrained(TINY_BERT_SEQCLS, with_pooler=True)


def test_tokenizer_calls_do_not_leak(tokenizer: oxiformer.Tokenizer) -> None:
    pool = texts(500)

    def step(index: int) -> object:
        text = pool[index % len(pool)]
        other = pool[(index * 7) % len(pool)]
        kind = index % 5
        if kind == 0:
            encoding = tokenizer.encode(text)
            return (encoding.ids, encoding.offsets, encoding.tokens, encoding.attention_mask)
        if kind == 1:
            return tokenizer.encode(text, other).type_ids
        if kind == 2:
            batch = [pool[(index + k) % len(pool)] for k in range(4)]
            return tokenizer(batch, padding=True, truncation=True, max_length=32)
        if kind == 3:
            return [e.ids for e in tokenizer.encode_batch([text, other, text])]
        return tokenizer.decode(tokenizer.encode(text).ids)

    growth = growth_over(CALLS, step)
    print(f"tokenizer: RSS grew by {growth / 1024:.0f} KiB over {CALLS} calls")
    assert growth < LIMIT_BYTES


def test_encoder_calls_do_not_leak(encoder: oxiformer.Encoder) -> None:
    rng = np.random.default_rng(0)
    shapes = [(1, 1), (1, 7), (2, 16), (3, 5), (4, 32), (1, 128)]
    inputs = []
    for batch, seq_len in shapes:
        ids = rng.integers(0, 30522, (batch, seq_len))
        mask = (np.arange(seq_len)[None, :] < rng.integers(0, seq_len + 1, batch)[:, None]).astype(
            np.int64
        )
        inputs.append((ids, mask, rng.integers(0, 2, (batch, seq_len))))

    def step(index: int) -> object:
        ids, mask, types = inputs[index % len(inputs)]
        if index % 4 == 3:
            lengths = np.maximum(mask.sum(axis=1), 1)
            flat = np.concatenate([row[:length] for row, length in zip(ids, lengths)])
            return encoder.encode_packed(flat, lengths).pooler_output
        out = encoder(ids, mask, types, output_hidden_states=index % 2 == 0)
        return out.last_hidden_state.sum()

    growth = growth_over(CALLS, step)
    print(f"encoder: RSS grew by {growth / 1024:.0f} KiB over {CALLS} calls")
    assert growth < LIMIT_BYTES


def test_error_paths_do_not_leak(
    tokenizer: oxiformer.Tokenizer, encoder: oxiformer.Encoder
) -> None:
    bad_ids = np.array([[101, 40_000]])

    def step(index: int) -> object:
        try:
            if index % 2:
                encoder(bad_ids)
            else:
                tokenizer(["a b c", "\ud800"])
        except oxiformer.OxiformerError as err:
            return str(err)
        raise AssertionError("no error")

    growth = growth_over(CALLS, step)
    print(f"errors: RSS grew by {growth / 1024:.0f} KiB over {CALLS} calls")
    assert growth < LIMIT_BYTES
