"""``oxiformer bench``: a quick timing of this machine (the full peer comparison with ONNX
Runtime and HF tokenizers is ``benches/compare.py`` in the source tree)."""

from __future__ import annotations

import time

import numpy as np

from oxiformer import get_num_threads, set_num_threads

__all__ = ["run_bench"]

_WORDS = [
    "the",
    "model",
    "reads",
    "every",
    "sentence",
    "and",
    "turns",
    "it",
    "into",
    "one",
    "vector",
    "that",
    "keeps",
    "its",
    "meaning",
    "across",
    "languages",
    "numbers",
    "dates",
    "and",
    "names",
    "while",
    "staying",
    "fast",
    "on",
    "a",
    "small",
    "laptop",
]


def _sentences(count: int, seed: int = 0) -> list[str]:
    """Deterministic sentences of 4 to 60 words."""
    rng = np.random.default_rng(seed)
    return [
        " ".join(rng.choice(_WORDS, size=int(rng.integers(4, 61)))).capitalize() + "."
        for _ in range(count)
    ]


def run_bench(
    model: str | None = None,
    sentences: int = 256,
    threads: int | None = None,
    quiet: bool = False,
    dtype: str | None = None,
) -> str:
    """Time tokenization + encoding of ``sentences`` sentences; a markdown table."""
    from oxiformer.sentence import SentenceEncoder

    if threads is not None:
        set_num_threads(threads)
    encoder = SentenceEncoder.from_pretrained(model, dtype=dtype)
    texts = _sentences(sentences)
    encoder.encode(texts[:8])  # warm-up
    rows = []
    for shape in ((1, 16), (1, 128), (32, 128)):
        ids = np.random.default_rng(1).integers(1000, 30000, size=shape)
        runs = 3 if shape[0] > 1 else 20
        start = time.perf_counter()
        for _ in range(runs):
            encoder.encoder(ids)
        elapsed = (time.perf_counter() - start) / runs
        rows.append(f"| encoder {shape[0]}x{shape[1]} | {elapsed * 1e3:.1f} ms | |")
    start = time.perf_counter()
    encoder.encode(texts, show_progress_bar=not quiet)
    elapsed = time.perf_counter() - start
    rate = sentences / elapsed
    rows.append(f"| {sentences} sentences end to end | {elapsed:.2f} s | {rate:.0f} sentences/s |")
    header = (
        f"threads: {get_num_threads()}, dtype: {encoder.encoder.dtype}\n\n"
        "| work | time | throughput |\n|---|---|---|"
    )
    return "\n".join([header, *rows])
