"""What one generated token costs, with and without the key/value cache, at a short and a
long decoder prefix; greedy and 4 beams.

A bert2bert with random weights of MiniLM's sizes (hidden 384, 6 layers each side, 12 heads,
intermediate 1536, vocabulary 30522; ``--hidden`` etc. change them) generates from a
32-token source, after a decoder prefix of 8 or 120 tokens, with no end token (every step
runs). The cost of a token is ``(T(1 + n) - T(1)) / n`` with ``T(k)`` the best time of
``generate(max_new_tokens=k)`` over the repeats (the two alternate, so a slow phase of this
shared machine hits both): the encoder, the prefix and the first token cancel out.
With the cache a step computes the new token only (plus attention over the prefix); without
it, the whole prefix again (the cross-attention's keys and values over the encoder output
stay computed once either way).

    python benches/bench_generate.py            # prints two markdown tables

The second table times the decoder's step alone (``DecoderState.step`` on one new token per
row, cache filled to the prefix; median of 50), without the search around it.

Threads: ``OXIFORMER_BENCH_THREADS`` (default 2).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import numpy as np
import oxiformer
from _common import machine_header
from oxiformer import _core
from oxiformer.generation import GenerationSettings

SEED = 1234


def random_tensors(expected: dict[str, tuple[int, ...]], rng: np.random.Generator) -> Any:
    """Weights of BERT's initializer scale (std 0.02), LayerNorms at 1, biases at 0."""
    tensors = {}
    for name, shape in expected.items():
        if "LayerNorm.weight" in name:
            tensors[name] = np.ones(shape, dtype=np.float32)
        elif name.endswith(".bias"):
            tensors[name] = np.zeros(shape, dtype=np.float32)
        else:
            tensors[name] = rng.normal(scale=0.02, size=shape).astype(np.float32)
    return tensors


def build(args: argparse.Namespace) -> oxiformer.EncoderDecoder:
    config = {
        "vocab_size": args.vocab,
        "hidden_size": args.hidden,
        "num_hidden_layers": args.layers,
        "num_attention_heads": args.heads,
        "intermediate_size": 4 * args.hidden,
        "max_position_embeddings": 512,
    }
    rng = np.random.default_rng(SEED)
    encoder_config = _core.EncoderConfig(config)
    encoder = oxiformer.Encoder.from_tensors(
        encoder_config, random_tensors(_core.expected_tensors(encoder_config), rng)
    )
    decoder_config = _core.DecoderConfig(
        {**config, "is_decoder": True, "add_cross_attention": True}
    )
    tensors = random_tensors(_core.decoder_tensors(decoder_config, args.hidden), rng)
    decoder = _core.Decoder(decoder_config, tensors, args.hidden)
    # No end token: every step runs.
    return oxiformer.EncoderDecoder(encoder, decoder, GenerationSettings(101, (), 0))


def seconds(run: Any) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--tokens", type=int, default=16, help="tokens timed per run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    threads = int(os.environ.get("OXIFORMER_BENCH_THREADS", "2"))
    oxiformer.set_num_threads(threads)
    print(machine_header(threads))
    model = build(args)
    rng = np.random.default_rng(SEED + 1)
    source = rng.integers(1000, 30000, size=(1, 32), dtype=np.int64)
    print(
        f"bert2bert hidden {args.hidden}, {args.layers}+{args.layers} layers, vocab "
        f"{args.vocab}; source 32 tokens; {threads} threads; best of {args.repeats}\n"
    )
    print("| prefix | search | with cache ms/token | without cache ms/token | ratio |")
    print("|---:|---|---:|---:|---:|")
    for prefix in (8, 120):
        decoder_ids = rng.integers(1000, 30000, size=(1, prefix), dtype=np.int64)
        decoder_ids[:, 0] = 101  # the start token: the prefix is used as it is
        for beams, search in ((1, "greedy"), (4, "4 beams")):
            cells = []
            for use_cache in (True, False):

                def generate(
                    new: int,
                    use_cache: bool = use_cache,
                    beams: int = beams,
                    decoder_ids: Any = decoder_ids,
                ) -> Any:
                    return model.generate(
                        source,
                        max_new_tokens=new,
                        num_beams=beams,
                        decoder_input_ids=decoder_ids,
                        use_cache=use_cache,
                    )

                generate(2)  # warm up
                once, more = [], []
                for _ in range(args.repeats):
                    once.append(seconds(lambda generate=generate: generate(1)))
                    more.append(seconds(lambda generate=generate: generate(1 + args.tokens)))
                cells.append((min(more) - min(once)) / args.tokens * 1e3)
            ratio = cells[1] / cells[0]
            print(f"| {prefix} | {search} | {cells[0]:.2f} | {cells[1]:.2f} | {ratio:.1f}x |")
    step_alone(model, source)


def step_alone(model: oxiformer.EncoderDecoder, source: Any) -> None:
    """Median time of one cached decoder step per prefix length and row count."""
    hidden = model.encoder(source).last_hidden_state
    memory = model.decoder.memory(hidden, np.ones(source.shape, dtype=np.int64))
    print("\n| prefix | rows (beams) | decoder step, median ms |")
    print("|---:|---:|---:|")
    for prefix in (8, 120):
        for beams in (1, 4):
            state = model.decoder.start(memory, beams, prefix + 60)
            state.step(np.full((beams, prefix), 1000, dtype=np.int64))
            token = np.full((beams, 1), 1000, dtype=np.int64)
            times = [seconds(lambda s=state, t=token: s.step(t)) for _ in range(50)]
            print(f"| {prefix} | {beams} | {statistics.median(times) * 1e3:.2f} |")


if __name__ == "__main__":
    main()
