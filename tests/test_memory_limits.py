"""Running out of memory is a typed error, not an aborted process (issue 18, point 5).

Each case runs in a child process whose address space is capped (RLIMIT_AS) at what it uses
once the models are loaded plus ``HEADROOM``, so nothing here takes more than that from the
shared machine. Huge batches run in bounded chunks and succeed within the cap; requests that
cannot fit (the output alone is larger) raise an error saying how much was needed.
"""

from __future__ import annotations

import json

from helpers import LIMIT_MEMORY, TINY_BERT_SEQCLS, require_fixtures, run_python

require_fixtures("tiny-bert/seqcls")

HEADROOM = 700 << 20

CHILD = (
    LIMIT_MEMORY
    + """
import json, sys
import numpy as np
import oxiformer

tiny = oxiformer.SentenceEncoder.from_pretrained(sys.argv[1])
minilm = oxiformer.Encoder.from_pretrained(oxiformer.pretrained.model_dir(None))
one_tiny = tiny.encoder(np.full((1, 1), 101)).last_hidden_state
one_hi = tiny.encode(["hi"])
minilm(np.full((2, 3), 101))  # every thread has run once: their memory is counted below
limit_memory(int(sys.argv[2]))
report = {}

def attempt(name, call):
    try:
        report[name] = ["ok", call()]
    except oxiformer.OxiformerError as err:
        report[name] = [type(err).__name__, str(err)]
    except MemoryError as err:
        report[name] = ["MemoryError", str(err)]

def tiny_huge_batch():
    # 10**6 one-token sequences: 128 MB of output, the scratch space chunked
    out = tiny.encoder(np.full((10**6, 1), 101)).last_hidden_state
    return [list(out.shape), bool((out[::99_999] == one_tiny[0]).all())]

def encode_huge_batch_size():
    # one batch of 400,000 sentences: run in bounded pieces
    out = tiny.encode(["hi"] * 400_000, batch_size=400_000)
    return [list(out.shape), bool((out[::39_999] == one_hi).all())]

attempt("tiny encoder 10**6 x 1", tiny_huge_batch)
attempt("encode batch_size=400000", encode_huge_batch_size)
attempt("minilm encoder 10**6 x 1", lambda: minilm(np.full((10**6, 1), 101)) and None)
attempt(
    "padding to 16M tokens",
    lambda: tiny.tokenizer(["a"] * 10, padding="max_length", max_length=16_000_000) and None,
)
print(json.dumps(report))
"""
)


def test_huge_batches_run_in_chunks_and_oversized_requests_are_typed_errors() -> None:
    result = run_python(CHILD, str(TINY_BERT_SEQCLS), str(HEADROOM), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    print(json.dumps(report, indent=1))
    assert report["tiny encoder 10**6 x 1"] == ["ok", [[1_000_000, 1, 32], True]]
    assert report["encode batch_size=400000"] == ["ok", [[400_000, 32], True]]
    kind, message = report["minilm encoder 10**6 x 1"]
    assert kind == "InputError"
    assert "not enough memory for the output of 1000000 tokens: it needs 1.4 GiB" in message
    kind, message = report["padding to 16M tokens"]
    assert kind == "TokenizerError"
    assert "not enough memory" in message and "16000000 tokens" in message
