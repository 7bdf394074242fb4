"""Hashes of oxiformer's outputs on fixed inputs, run on the SIMD paths ``OXIFORMER_SIMD``
picks (see ``test_simd.py``): every path must give the same bits.

    OXIFORMER_SIMD=avx2 python tests/simd_hashes.py [--minilm]

prints one JSON object: ``paths`` (``oxiformer.simd_info()``) and ``hashes`` (sha256 of the
float32 outputs, C order): tiny-bert's ``last_hidden_state`` on its golden inputs in fp32 and
int8, its classifiers' logits, and with ``--minilm`` MiniLM's sentence embeddings of a few
texts in fp32 and int8.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

TINY_BERT = "tiny-bert/seqcls"
TEXTS = [
    "A man is eating food.",
    "Ein Mann isst etwas. Das Wetter ist schön, nicht wahr?",
    "一个男人在吃东西。",
    "oxiformer runs BERT on every CPU and gives the same bits",
]


def sha256(array: Any) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


def tiny_bert_hash(fixtures: Path, dtype: str | None) -> str:
    import oxiformer

    directory = fixtures / TINY_BERT
    golden = np.load(directory / "golden.npz")
    encoder = oxiformer.Encoder.from_pretrained(directory, dtype=dtype)
    output = encoder(
        golden["input_ids"],
        attention_mask=golden["attention_mask"],
        token_type_ids=golden["token_type_ids"],
    )
    return sha256(output.last_hidden_state)


def classifier_hashes(fixtures: Path) -> dict[str, str]:
    """The logits of tiny-bert's sequence classifier (pooler, head) in fp32 and int8, and of
    its token classifier, on the golden inputs: the heads run after the encoder."""
    import oxiformer

    golden = np.load(fixtures / TINY_BERT / "golden.npz")
    inputs = {name: golden[name] for name in ("attention_mask", "token_type_ids")}
    hashes = {}
    for dtype in (None, "int8"):
        model = oxiformer.SequenceClassifier.from_pretrained(fixtures / TINY_BERT, dtype=dtype)
        logits = model(golden["input_ids"], **inputs).logits
        hashes[f"tiny-bert seqcls logits {dtype or 'fp32'}"] = sha256(logits)
    tagger = oxiformer.TokenClassifier.from_pretrained(fixtures / "tiny-bert" / "tokcls")
    hashes["tiny-bert tokcls logits fp32"] = sha256(tagger(golden["input_ids"], **inputs).logits)
    return hashes


def main() -> None:
    import oxiformer

    fixtures = Path(sys.argv[sys.argv.index("--fixtures") + 1])
    hashes = {
        "tiny-bert fp32": tiny_bert_hash(fixtures, None),
        "tiny-bert int8": tiny_bert_hash(fixtures, "int8"),
        **classifier_hashes(fixtures),
    }
    if "--minilm" in sys.argv:
        model = oxiformer.SentenceEncoder.from_pretrained()
        hashes["minilm fp32"] = sha256(model.encode(TEXTS))
        hashes["minilm int8"] = sha256(model.quantize().encode(TEXTS))
    print(json.dumps({"paths": oxiformer.simd_info(), "hashes": hashes}))


if __name__ == "__main__":
    main()
