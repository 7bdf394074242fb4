"""``encode``'s sentence-transformers options beyond the basics: ``truncate_dim``
(Matryoshka), ``precision`` (int8 / uint8 / binary / ubinary embeddings), ``device`` and
``convert_to_tensor``, against their definitions in sentence-transformers."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import oxiformer
import oxiformer.cli
import pytest
from helpers import FIXTURES, require_fixtures
from oxiformer.embedding_precision import quantize_embeddings, quantized_shape

require_fixtures("minilm/texts.json")
TEXTS: list[str] = json.loads((FIXTURES / "minilm" / "texts.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def model() -> oxiformer.SentenceEncoder:
    return oxiformer.SentenceEncoder.from_pretrained()


@pytest.fixture(scope="module")
def full(model: oxiformer.SentenceEncoder) -> np.ndarray:
    return model.encode(TEXTS)


def test_truncate_dim_keeps_the_first_dimensions(
    model: oxiformer.SentenceEncoder, full: np.ndarray
) -> None:
    # MiniLM ends in Normalize: truncation comes after it, normalize_embeddings after that.
    assert model.encode(TEXTS, truncate_dim=64).tobytes() == full[:, :64].tobytes()
    unit = model.encode(TEXTS, truncate_dim=64, normalize_embeddings=True)
    want = full[:, :64].astype(np.float64)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert np.abs(unit - want).max() < 1e-6
    short = oxiformer.SentenceEncoder.from_pretrained(truncate_dim=100)
    assert short.dimension == 100 and short.encode(TEXTS[:3]).shape == (3, 100)
    assert short.encode(TEXTS[:3], truncate_dim=500).shape == (3, 384)  # at most all of them
    assert short.quantize().truncate_dim == 100
    assert short.encode([]).shape == (0, 100)
    for bad in (0, -3, 2.5, "64", True):
        with pytest.raises(oxiformer.InputError, match="truncate_dim"):
            model.encode(TEXTS[:1], truncate_dim=bad)  # type: ignore[arg-type]
    with pytest.raises(oxiformer.InputError, match="truncate_dim"):
        short.truncate_dim = 0


def test_precisions_as_sentence_transformers_defines_them(
    model: oxiformer.SentenceEncoder, full: np.ndarray
) -> None:
    ubinary = model.encode(TEXTS, precision="ubinary")
    assert ubinary.dtype == np.uint8 and ubinary.shape == (len(TEXTS), 48)
    assert ubinary.tobytes() == np.packbits(full > 0, axis=1).tobytes()
    binary = model.encode(TEXTS, precision="binary")
    assert binary.dtype == np.int8
    assert binary.tobytes() == (ubinary.astype(np.int16) - 128).astype(np.int8).tobytes()
    # int8: each dimension's range over the embeddings onto 256 steps (few embeddings: warned).
    with pytest.warns(UserWarning, match="fewer than 100"):
        int8 = model.encode(TEXTS, precision="int8")
    low, high = full.min(axis=0), full.max(axis=0)
    want = ((full - low) / ((high - low) / 255) - 128).astype(np.int8)
    assert int8.dtype == np.int8 and np.array_equal(int8, want)
    assert (int8.min(axis=0) == -128).all() and (int8.max(axis=0) >= 126).all()
    with pytest.warns(UserWarning):
        uint8 = model.encode(TEXTS, precision="uint8")
    # Both truncate toward zero, as sentence-transformers' casts do: uint8 is not int8 + 128.
    assert np.array_equal(uint8, ((full - low) / ((high - low) / 255)).astype(np.uint8))
    # With calibration embeddings: their ranges; values beyond them are clipped.
    calibrated = quantize_embeddings(full[:5], "uint8", calibration_embeddings=full[5:])
    lo, hi = full[5:].min(axis=0), full[5:].max(axis=0)
    scaled = np.clip((full[:5] - lo) / ((hi - lo) / 255), 0, 255)
    assert np.array_equal(calibrated, scaled.astype(np.uint8))
    single = model.encode(TEXTS[0], precision="ubinary")
    assert single.shape == (48,) and np.array_equal(single, ubinary[0])


def test_options_that_cannot_apply_are_refused(model: oxiformer.SentenceEncoder) -> None:
    assert model.encode("x", device="cpu").shape == (384,)
    cases = {
        "CPU only": dict(device="cuda"),
        "PyTorch tensors": dict(convert_to_tensor=True),
        "unknown precision 'fp16'": dict(precision="fp16"),
        "for sentence embeddings only": dict(precision="int8", output_value="token_embeddings"),
    }
    for message, options in cases.items():
        with pytest.raises(oxiformer.InputError, match=message):
            model.encode(["x"], **options)  # type: ignore[arg-type]
    with pytest.raises(oxiformer.InputError, match="2-D float array"):
        quantize_embeddings(np.ones((2, 3), np.int8), "binary")


def test_cli_truncate_dim(tmp_path: Path, full: np.ndarray) -> None:
    out = tmp_path / "e.npy"
    command = [sys.executable, "-m", "oxiformer", "embed", "-q", "--truncate-dim", "32"]
    result = subprocess.run(
        [*command, "-o", str(out), *TEXTS[:2]], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert np.load(out).tobytes() == full[:2, :32].tobytes()


@pytest.mark.parametrize("precision", ["int8", "ubinary"])
def test_cli_precision(
    precision: str, tmp_path: Path, model: oxiformer.SentenceEncoder, capsys: Any
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # int8 ranges from 3 embeddings
        want = model.encode(TEXTS[:3], precision=precision)
    out = tmp_path / "e.npy"
    oxiformer.cli.main(["embed", "-q", "--precision", precision, "-o", str(out), *TEXTS[:3]])
    got = np.load(out)
    assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    capsys.readouterr()
    oxiformer.cli.main(["embed", "--precision", precision, *TEXTS[:3]])
    captured = capsys.readouterr()
    rows = [json.loads(line)["embedding"] for line in captured.out.splitlines()]
    assert rows == want.tolist() and all(isinstance(v, int) for v in rows[0])
    # a library warning is one line of the command's, not Python's source line
    if precision == "int8":
        assert captured.err == (
            "oxiformer embed: warning: int8 ranges computed from 3 embeddings (fewer than 100): "
            "pass calibration_embeddings or ranges for stable quantization\n"
        )
    else:
        assert captured.err == ""


def test_bits_of_a_width_not_a_multiple_of_8_are_packed_row_by_row(
    model: oxiformer.SentenceEncoder, full: np.ndarray
) -> None:
    # sentence-transformers packs the whole array at once: for 100 dimensions that fails
    # (or mixes rows); here each row gets 13 bytes, its last 4 bits zero.
    bits = model.encode(TEXTS, truncate_dim=100, precision="ubinary")
    assert bits.shape == (len(TEXTS), 13)
    for row, vector in zip(bits, full[:, :100]):
        assert np.array_equal(np.unpackbits(row)[:100], (vector > 0).astype(np.uint8))
        assert not np.unpackbits(row)[100:].any()
    for precision in ("float32", "int8", "uint8", "binary", "ubinary"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # int8 ranges from 36 embeddings
            out = model.encode(TEXTS, truncate_dim=100, precision=precision)
        width, dtype = quantized_shape(100, precision)
        assert out.shape == (len(TEXTS), width) and out.dtype == dtype
