"""One engine of a benchmark in a process of its own (see ``_common.Turns``).

    python benches/_engine.py SPEC_JSON

Loads the engine SPEC_JSON describes, prints ``{"ready": true}``, then answers one JSON line
per command on stdin:
- ``{"op": "encoder", "batch": B, "seq": S, "repeats": R}``: the encoder on a B x S batch of
  random ids (the same ids in every engine: a fixed seed), no padding; one warm-up call, then
  the best of R calls, as ``{"best": seconds}``;
- ``{"op": "texts", "file": PATH, "batch_size": 32, "repeats": R}``: text to normalized
  sentence embeddings for the JSON list of texts in PATH (oxiformer: ``SentenceEncoder.encode``;
  ORT: HF tokenizers, padded batches in input order, or with ``"by_length": true`` batched by
  token count, longest first, to pad the least; mean pooling), with a warm-up call on the
  first batch;
- ``{"op": "outputs", "inputs": NPZ, "output": NPY}``: the encoder's ``last_hidden_state`` on
  the ``input_ids``, ``attention_mask`` and ``token_type_ids`` of NPZ, saved to NPY (to check
  that the engines compute the same thing);
- ``{"op": "quit"}``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import hf_tokenizer, minilm_dir, ort_pipeline, ort_session

VOCAB_RANGE = (1000, 30000)
FEED = ("input_ids", "attention_mask", "token_type_ids")
Array = Any


def best_of(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


class Oxiformer:
    def __init__(self, spec: dict[str, Any]) -> None:
        import oxiformer

        oxiformer.set_num_threads(spec["threads"])
        model_dir = spec["model"] or minilm_dir()
        dtype = None if spec["dtype"] == "float32" else spec["dtype"]
        self.model = oxiformer.SentenceEncoder.from_pretrained(model_dir, dtype=dtype)

    def encoder(self, ids: Array, mask: Array, types: Array) -> Callable[[], Array]:
        return lambda: self.model.encoder(ids, mask, types).last_hidden_state

    def texts(self, texts: list[str], batch_size: int, by_length: bool) -> Callable[[], object]:
        # encode packs its batches without padding; the order makes no difference
        return lambda: self.model.encode(texts, batch_size=batch_size)


class OnnxRuntime:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.session = ort_session(Path(spec["model"]), spec["threads"])
        self.tokenizer_file = spec.get("tokenizer")

    def encoder(self, ids: Array, mask: Array, types: Array) -> Callable[[], Array]:
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return lambda: self.session.run(None, feed)[0]

    def texts(self, texts: list[str], batch_size: int, by_length: bool) -> Callable[[], object]:
        model_dir = Path(self.tokenizer_file).parent if self.tokenizer_file else minilm_dir()
        tokenizer = hf_tokenizer(model_dir)
        return lambda: ort_pipeline(self.session, tokenizer, texts, batch_size, by_length)


def main() -> None:
    spec = json.loads(sys.argv[1])
    engine = Oxiformer(spec) if spec["kind"] == "oxiformer" else OnnxRuntime(spec)

    def answer(reply: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()

    answer({"ready": True})
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "quit":
            answer({"bye": True})
            return
        if op == "encoder":
            rng = np.random.default_rng(command.get("seed", 0))
            ids = rng.integers(*VOCAB_RANGE, (command["batch"], command["seq"]), dtype=np.int64)
            run = engine.encoder(ids, np.ones_like(ids), np.zeros_like(ids))
            run()
        elif op == "texts":
            texts = json.loads(Path(command["file"]).read_text(encoding="utf-8"))
            batch_size = command.get("batch_size", 32)
            by_length = bool(command.get("by_length", False))
            engine.texts(texts[:batch_size], batch_size, by_length)()
            run = engine.texts(texts, batch_size, by_length)
        elif op == "outputs":
            with np.load(command["inputs"]) as inputs:
                arrays = [inputs[name].astype(np.int64) for name in FEED]
            np.save(command["output"], engine.encoder(*arrays)())
            answer({"saved": command["output"]})
            continue
        else:
            answer({"error": f"unknown op {op!r}"})
            continue
        answer({"best": best_of(run, command.get("repeats", 1))})


if __name__ == "__main__":
    main()
