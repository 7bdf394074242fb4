"""Real sentences of many languages, picked deterministically from the corpus of ``corpus.py``.

For accuracy checks that need natural text rather than random ids (int8 against fp32, in
``benches/research/int8_accuracy.py`` and the int8 engine's tests). A *sentence* here is one corpus
line that reads as one: it starts with a capital (or with a letter of a script without case,
such as CJK), ends with sentence punctuation (``. ! ?`` or ``。！？``, possibly then a closing
quote), holds no roff markup, markup-like or box-drawing characters, and has ``min_tokens`` to
``max_tokens`` tokens under the MiniLM tokenizer, ``[CLS]`` and ``[SEP]`` included.

Every candidate belongs to one of two disjoint splits, by a CRC-32 of its text: about 1 in 5
to ``"calibration"`` (for calibrating a quantization scheme), the rest to ``"evaluation"``.
Within a split each corpus package's sentences are shuffled with a fixed seed, then taken
round-robin over the packages, so any ``n`` spreads over every language (a package that runs
short, such as Esperanto or Greek, gives what it has). The result depends only on ``n``, the
split, and the installed Debian package versions.

    python tests/multilingual.py 1000     # counts per package, and a few samples
"""

from __future__ import annotations

import random
import re
import sys
import zlib
from functools import cache
from typing import Literal, NamedTuple

import corpus

__all__ = ["Sentence", "labelled_sentences", "multilingual_sentences"]

Split = Literal["evaluation", "calibration"]

SEED = 20240808
CALIBRATION_ONE_IN = 5

_END = re.compile(r"[.!?。！？][\"»”」』)]?$")
# roff requests and escapes, markup, code, tables, attributions, URLs
_NOT_PROSE = re.compile(r"^[.'\-*]|\\|[<>│├┼─|{}\[\]=_#@$%^~`]|https?:|\s-\w")


class Sentence(NamedTuple):
    package: str
    """The Debian package it comes from (``fortunes-de``, ``manpages-ja``...)."""
    text: str


def _reads_as_sentence(line: str) -> bool:
    first = line[0]
    uncased = first.isalpha() and not first.isupper() and not first.islower()  # CJK, kana...
    starts_well = first.isupper() or uncased
    letters = sum(char.isalpha() for char in line)
    return (
        starts_well
        and _END.search(line) is not None
        and _NOT_PROSE.search(line) is None
        and letters >= 0.6 * len(line)
    )


def _split_of(text: str) -> Split:
    crc = zlib.crc32(text.encode("utf-8"))
    return "calibration" if crc % CALIBRATION_ONE_IN == 0 else "evaluation"


@cache
def _candidates(split: Split, min_tokens: int, max_tokens: int) -> tuple[tuple[Sentence, ...], ...]:
    """Per package, in ``corpus.PACKAGES`` order: its sentences of ``split``, shuffled."""
    from oxiformer import Tokenizer
    from oxiformer.pretrained import default_model_dir

    missing = corpus.missing_packages()
    if missing:
        raise RuntimeError(
            f"corpus packages not installed: {' '.join(missing)}; install them with: "
            f"{corpus.APT_INSTALL}"
        )
    tokenizer = Tokenizer.from_pretrained(default_model_dir())
    per_package = []
    for package in corpus.PACKAGES:
        lines = [
            line
            for line in dict.fromkeys(corpus.package_lines(package))  # unique, in order
            if _reads_as_sentence(line) and _split_of(line) == split
        ]
        lengths = [len(encoding.ids) for encoding in tokenizer.encode_batch(lines)]
        kept = [
            Sentence(package, line)
            for line, length in zip(lines, lengths)
            if min_tokens <= length <= max_tokens
        ]
        random.Random(f"{SEED}:{split}:{package}").shuffle(kept)
        per_package.append(tuple(kept))
    return tuple(per_package)


def labelled_sentences(
    n: int, split: Split = "evaluation", *, min_tokens: int = 5, max_tokens: int = 128
) -> list[Sentence]:
    """``n`` sentences with their package, taken round-robin over the packages."""
    pools = _candidates(split, min_tokens, max_tokens)
    available = sum(len(pool) for pool in pools)
    if n > available:
        raise ValueError(f"asked for {n} {split} sentences, the corpus has {available}")
    picked: list[Sentence] = []
    depth = 0
    while len(picked) < n:
        for pool in pools:
            if depth < len(pool) and len(picked) < n:
                picked.append(pool[depth])
        depth += 1
    return picked


def multilingual_sentences(
    n: int, split: Split = "evaluation", *, min_tokens: int = 5, max_tokens: int = 128
) -> list[str]:
    """``n`` real sentences spread over 17 languages (see the module docstring)."""
    return [
        sentence.text
        for sentence in labelled_sentences(n, split, min_tokens=min_tokens, max_tokens=max_tokens)
    ]


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    sentences = labelled_sentences(count)
    for package in corpus.PACKAGES:
        texts = [s.text for s in sentences if s.package == package]
        print(f"{package:14s} {len(texts):5d}  {texts[0] if texts else ''}")
