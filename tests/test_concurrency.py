"""Concurrent callers, thread counts, batching and Ctrl-C.

8 Python threads share one Tokenizer, one SentenceEncoder (MiniLM) and one Encoder (the
tiny BERT), each making CALLS_PER_THREAD calls on mixed inputs (short and long texts, pairs,
batches): every result must equal, bit for bit, the result of the same call made serially
first. The pool of threads is joined with a generous timeout so a deadlock fails the test
instead of hanging it. Results must also not depend on the number of compute threads, batch
and one-by-one encoding must agree within 1e-5, and a SIGINT during a long encode must raise
KeyboardInterrupt in Python and leave the model usable (checked in a subprocess).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import oxiformer
import pytest
from helpers import TINY_BERT_SEQCLS, ctrl_c_reaches_python, max_abs_diff, require_fixtures

require_fixtures("tiny-bert/seqcls")

THREADS = 8
CALLS_PER_THREAD = 200
#: Deadlock guard only (the whole test takes a few seconds here), not a speed requirement.
DEADLOCK_TIMEOUT_S = 600

WORDS = [
    *("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", ";"),
    *("naïve", "café", "中文", "😀", "don't", "stop"),
]


def make_texts(rng: random.Random, count: int) -> list[str]:
    texts = ["", "hello world", "[CLS] special [MASK] tokens [SEP]", "\x00\t\n control"]
    texts.append(" ".join(rng.choice(WORDS) for _ in range(400)))  # truncated to 256 tokens
    while len(texts) < count:
        length = rng.choice([1, 3, 8, 20, 60])
        texts.append(" ".join(rng.choice(WORDS) for _ in range(length)))
    return texts


@pytest.fixture(scope="module")
def models() -> tuple[oxiformer.Tokenizer, oxiformer.SentenceEncoder, oxiformer.Encoder]:
    sentence = oxiformer.SentenceEncoder.from_pretrained()
    encoder = oxiformer.Encoder.from_pretrained(TINY_BERT_SEQCLS)
    return sentence.tokenizer, sentence, encoder


def as_bytes(result: Any) -> bytes:
    """A comparable fingerprint of any call's result."""
    if isinstance(result, np.ndarray):
        return result.dtype.str.encode() + str(result.shape).encode() + result.tobytes()
    if isinstance(result, dict):
        return b"|".join(key.encode() + as_bytes(value) for key, value in sorted(result.items()))
    if isinstance(result, (list, tuple)):
        return b"[" + b",".join(as_bytes(item) for item in result) + b"]"
    return repr(result).encode()


def make_calls(
    tokenizer: oxiformer.Tokenizer,
    sentence: oxiformer.SentenceEncoder,
    encoder: oxiformer.Encoder,
) -> list[Callable[[], Any]]:
    """A menu of distinct calls on mixed inputs; each is deterministic."""
    rng = random.Random(1234)
    texts = make_texts(rng, 48)
    calls: list[Callable[[], Any]] = []
    for index, text in enumerate(texts):
        other = texts[(index * 7 + 3) % len(texts)]
        batch = [texts[(index + k) % len(texts)] for k in range(1 + index % 5)]
        calls.append(lambda text=text: tokenizer.encode(text).ids)
        calls.append(
            lambda text=text, other=other: (lambda e: (e.ids, e.type_ids, e.offsets))(
                tokenizer.encode(text, other)
            )
        )
        calls.append(
            lambda batch=batch: tokenizer(batch, padding=True, truncation=True, max_length=64)
        )
        calls.append(
            lambda batch=batch: tokenizer(
                batch, text_pair=list(reversed(batch)), padding=True, truncation=True
            )
        )
        calls.append(lambda text=text: sentence.encode(text))
        calls.append(lambda batch=batch: sentence.encode(batch, batch_size=4))
    ids_rng = np.random.default_rng(5)
    for seq_len in (1, 5, 16, 64, 128):
        ids = ids_rng.integers(0, 30522, (3, seq_len))
        mask = (np.arange(seq_len)[None, :] < ids_rng.integers(0, seq_len + 1, 3)[:, None]).astype(
            np.int64
        )
        types = ids_rng.integers(0, 2, (3, seq_len))
        calls.append(
            lambda ids=ids, mask=mask, types=types: encoder(ids, mask, types).last_hidden_state
        )
        lengths = np.array([seq_len, max(seq_len // 2, 1)])
        packed = ids_rng.integers(0, 30522, int(lengths.sum()))
        calls.append(
            lambda packed=packed, lengths=lengths: (
                encoder.encode_packed(packed, lengths).last_hidden_state
            )
        )
    return calls


def test_threads_sharing_models_get_the_serial_results(
    models: tuple[oxiformer.Tokenizer, oxiformer.SentenceEncoder, oxiformer.Encoder],
) -> None:
    calls = make_calls(*models)
    expected = [as_bytes(call()) for call in calls]  # serial, before any thread starts

    def worker(seed: int) -> list[int]:
        order = random.Random(seed)
        mismatches = []
        for _ in range(CALLS_PER_THREAD):
            index = order.randrange(len(calls))
            if as_bytes(calls[index]()) != expected[index]:
                mismatches.append(index)
        return mismatches

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(worker, seed) for seed in range(THREADS)]
        done, not_done = wait(futures, timeout=DEADLOCK_TIMEOUT_S)
        assert not not_done, f"{len(not_done)} threads still running: deadlock?"
    mismatches = [index for future in done for index in future.result()]
    print(f"{THREADS} threads x {CALLS_PER_THREAD} calls over {len(calls)} distinct calls")
    assert mismatches == []


def test_results_do_not_depend_on_the_number_of_threads(
    models: tuple[oxiformer.Tokenizer, oxiformer.SentenceEncoder, oxiformer.Encoder],
) -> None:
    tokenizer, sentence, encoder = models
    texts = make_texts(random.Random(9), 40)
    ids = np.random.default_rng(2).integers(0, 30522, (6, 40))
    mask = np.ones_like(ids)
    mask[2, 10:] = 0
    mask[4] = 0
    before = oxiformer.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 1):
            oxiformer.set_num_threads(threads)
            results.append(
                (
                    as_bytes(tokenizer(texts, texts[::-1], padding=True, truncation=True)),
                    as_bytes([e.offsets for e in tokenizer.encode_batch(texts)]),
                    sentence.encode(texts, batch_size=16).tobytes(),
                    encoder(ids, mask).last_hidden_state.tobytes(),
                    sentence.encoder(ids, mask).last_hidden_state.tobytes(),
                )
            )
    finally:
        oxiformer.set_num_threads(before)
    assert results[0] == results[1] == results[2]


def test_batch_and_one_by_one_agree_and_are_finite(
    models: tuple[oxiformer.Tokenizer, oxiformer.SentenceEncoder, oxiformer.Encoder],
) -> None:
    tokenizer, sentence, _ = models
    texts = make_texts(random.Random(11), 24)
    batch = sentence.encode(texts, batch_size=32)
    single = np.stack([sentence.encode(text) for text in texts])
    assert np.isfinite(batch).all() and np.isfinite(single).all()
    assert max_abs_diff("sentence batch vs single", batch, single) <= 1e-5
    # The padded encoder: each row alone, at its own length, vs inside a padded batch.
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=128)
    padded = sentence.encoder(
        encoded["input_ids"], encoded["attention_mask"], encoded["token_type_ids"]
    ).last_hidden_state
    assert np.isfinite(padded).all()
    worst = 0.0
    for row, length in enumerate(encoded["attention_mask"].sum(axis=1)):
        alone = sentence.encoder(
            encoded["input_ids"][row : row + 1, :length],
            token_type_ids=encoded["token_type_ids"][row : row + 1, :length],
        ).last_hidden_state[0]
        worst = max(worst, max_abs_diff(f"row {row}", padded[row, :length], alone))
    assert worst <= 1e-5


INTERRUPTED_SCRIPT = textwrap.dedent(
    """
    import sys, traceback
    import numpy as np
    import oxiformer

    model = oxiformer.SentenceEncoder.from_pretrained()
    texts = [f"sentence number {i} about " + "things " * (i % 40) for i in range(256)]
    check = model.encode("a check after the interrupt")
    print("started", flush=True)
    try:
        while True:
            model.encode(texts, batch_size=32)
    except KeyboardInterrupt:
        frames = [frame.name for frame in traceback.extract_tb(sys.exc_info()[2])]
        print("interrupted in", frames, flush=True)
    again = model.encode("a check after the interrupt")
    print("clean" if again.tobytes() == check.tobytes() else "changed", flush=True)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
def test_ctrl_c_during_encode_stops_cleanly(tmp_path: Path) -> None:
    script = tmp_path / "interrupted.py"
    script.write_text(INTERRUPTED_SCRIPT, "utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=ctrl_c_reaches_python,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.strip() == "started", first + (process.stderr.read() if process.stderr else "")
        # Let it get well into encoding, then Ctrl-C.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=1.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=DEADLOCK_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
    print(out, err[-2000:])
    assert process.returncode == 0, err
    assert "interrupted in" in out
    assert "encode" in out  # raised from inside SentenceEncoder.encode
    assert out.strip().endswith("clean")
    assert "panicked" not in err and "Fatal" not in err
