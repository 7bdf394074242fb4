"""The three fixture vocabularies vs HF ``tokenizers.BertWordPieceTokenizer`` on real text.

The corpus (``tests/corpus.py``) comes from Debian fortune and translated man-page packages
in 18 languages. By default every package contributes up to ``PER_PACKAGE`` lines taken with
a fixed stride (about 190,000 lines); ``OXIFORMER_FULL_CORPUS=1`` compares every line
(about 1,070,000). Ids and offsets must match exactly.
"""

from __future__ import annotations

import os
from pathlib import Path

import corpus
import pytest
from helpers import VOCAB_SETTINGS, VOCABS, require_fixtures
from oxiformer import Tokenizer

tokenizers = pytest.importorskip("tokenizers")

PER_PACKAGE = 12_000
CHUNK = 20_000


def sample_lines() -> list[str]:
    missing = corpus.missing_packages()
    if missing:
        pytest.skip(
            "corpus packages not installed: "
            + " ".join(missing)
            + f"; install them with: {corpus.APT_INSTALL}"
        )
    if os.environ.get("OXIFORMER_FULL_CORPUS") == "1":
        return corpus.corpus_lines()
    lines: list[str] = []
    for package in corpus.PACKAGES:
        package_lines = corpus.package_lines(package)
        step = max(1, len(package_lines) // PER_PACKAGE)
        lines.extend(package_lines[::step][:PER_PACKAGE])
    return lines


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return sample_lines()


@pytest.mark.parametrize("name", sorted(VOCAB_SETTINGS))
def test_corpus_matches_hf(name: str, lines: list[str]) -> None:
    filename, options = VOCAB_SETTINGS[name]
    require_fixtures(f"vocabs/{filename}")
    path: Path = VOCABS / filename
    ours = Tokenizer.from_vocab(path, **options)
    theirs = tokenizers.BertWordPieceTokenizer(str(path), **options)
    id_mismatches = 0
    offset_mismatches = 0
    tokens = 0
    examples: list[str] = []
    for start in range(0, len(lines), CHUNK):
        chunk = lines[start : start + CHUNK]
        for line, mine, their in zip(chunk, ours.encode_batch(chunk), theirs.encode_batch(chunk)):
            tokens += len(their.ids)
            if mine.ids != their.ids:
                id_mismatches += 1
                if len(examples) < 5:
                    examples.append(f"ids: {line!r}: {mine.tokens} != {their.tokens}")
            elif mine.offsets != their.offsets:
                offset_mismatches += 1
                if len(examples) < 5:
                    examples.append(f"offsets: {line!r}: {mine.offsets} != {their.offsets}")
    size = sum(len(line.encode()) for line in lines) / 1e6
    print(
        f"{name}: {len(lines)} lines ({size:.1f} MB, {tokens} tokens): "
        f"{id_mismatches} id mismatches, {offset_mismatches} offset mismatches"
    )
    for example in examples:
        print("  ", example)
    assert len(lines) >= 20_000
    assert id_mismatches == 0
    assert offset_mismatches == 0
