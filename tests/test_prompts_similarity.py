"""sentence-transformers' prompts (``encode(prompt_name=...)``, ``include_prompt``) and
``model.similarity``, against their definitions: a prompt is text put before each sentence,
its tokens (with [CLS]) left out of pooling when ``include_prompt`` is false, and the
similarity functions are cosine, dot, and negated euclidean and manhattan distances (float64
NumPy references). No sentence-transformers golden exists here for these (no PyTorch)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import oxiformer
import pytest
from oxiformer.similarity import similarity, similarity_pairwise

TEXTS = ["what is the capital of France?", "Paris is the capital of France.", "", "a b c"]
PROMPTS = {"query": "query: ", "passage": "passage: "}


def st_dir(
    root: Path, minilm_dir: Path, settings: dict | None, pooling: dict | None = None
) -> Path:
    """MiniLM's files with the given config_sentence_transformers.json and pooling."""
    root = root / "model"
    root.mkdir(parents=True)
    for item in minilm_dir.iterdir():
        if item.name not in ("config_sentence_transformers.json", "1_Pooling"):
            (root / item.name).symlink_to(item)
    (root / "1_Pooling").mkdir()
    config = {"word_embedding_dimension": 384, "pooling_mode_mean_tokens": True}
    (root / "1_Pooling" / "config.json").write_text(json.dumps({**config, **(pooling or {})}))
    if settings is not None:
        (root / "config_sentence_transformers.json").write_text(json.dumps(settings))
    return root


@pytest.fixture(scope="module")
def plain(minilm_dir: Path) -> oxiformer.SentenceEncoder:
    return oxiformer.SentenceEncoder.from_pretrained(minilm_dir)


def test_prompts_are_put_before_the_sentences(
    minilm_dir: Path, tmp_path: Path, plain: oxiformer.SentenceEncoder
) -> None:
    settings = {"prompts": PROMPTS, "default_prompt_name": "query", "similarity_fn_name": "dot"}
    model = oxiformer.SentenceEncoder.from_pretrained(st_dir(tmp_path, minilm_dir, settings))
    assert model.prompts == PROMPTS and model.default_prompt_name == "query"
    passages = model.encode(TEXTS, prompt_name="passage")
    assert passages.tobytes() == plain.encode(["passage: " + t for t in TEXTS]).tobytes()
    # No prompt given: the default one.
    assert model.encode(TEXTS).tobytes() == plain.encode(["query: " + t for t in TEXTS]).tobytes()
    # A prompt text wins over a prompt name, with a warning, as in sentence-transformers.
    with pytest.warns(UserWarning, match="prompt_name is ignored"):
        own = model.encode(TEXTS[0], prompt="search: ", prompt_name="passage")
    assert own.tobytes() == plain.encode("search: " + TEXTS[0]).tobytes()
    with pytest.raises(oxiformer.InputError, match=r"unknown prompt_name 'doc'.*'query'"):
        model.encode(TEXTS, prompt_name="doc")
    with pytest.raises(oxiformer.InputError, match="has no prompts"):
        plain.encode(TEXTS, prompt_name="query")
    # sentence-transformers v5's task methods pick the prompt by name.
    assert model.encode_query(TEXTS).tobytes() == model.encode(TEXTS, prompt_name="query").tobytes()
    assert model.encode_document(TEXTS).tobytes() == passages.tobytes()
    own = model.encode_document(TEXTS[:1], prompt="doc: ")
    assert own.tobytes() == plain.encode(["doc: " + TEXTS[0]]).tobytes()
    assert plain.encode_document(TEXTS).tobytes() == plain.encode(TEXTS).tobytes()
    assert model.get_sentence_embedding_dimension() == 384
    # The model's similarity function is dot here.
    scores = model.similarity(passages[:2], passages)
    want = passages[:2].astype(np.float64) @ passages.astype(np.float64).T
    assert scores.shape == (2, 4) and np.abs(scores - want).max() < 1e-5
    # save_pretrained keeps the settings.
    again = oxiformer.SentenceEncoder.from_pretrained(model.save_pretrained(tmp_path / "saved"))
    assert again.settings == model.settings
    assert again.encode(TEXTS).tobytes() == model.encode(TEXTS).tobytes()


def test_include_prompt_false_pools_after_the_prompt(
    minilm_dir: Path, tmp_path: Path, plain: oxiformer.SentenceEncoder
) -> None:
    modes = {"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True}
    pooling = {**modes, "include_prompt": False, "pooling_mode_cls_token": True}
    path = st_dir(tmp_path, minilm_dir, {"prompts": PROMPTS}, pooling)
    model = oxiformer.SentenceEncoder.from_pretrained(path)
    got = model.encode(TEXTS, prompt_name="query")
    # sentence-transformers' prompt_length: the prompt's tokens with [CLS], without [SEP].
    skip = len(plain.tokenizer(["query: "])["input_ids"][0]) - 1
    assert skip == 3  # [CLS] query :
    tokens = plain.encode(["query: " + t for t in TEXTS], output_value="token_embeddings")
    for row, hidden in zip(got, tokens):
        kept = hidden[skip:].astype(np.float64)
        want = np.concatenate([hidden[0], kept.max(axis=0), kept.mean(axis=0)])
        want /= np.linalg.norm(want)  # MiniLM's pipeline ends in Normalize
        assert np.abs(row - want).max() < 1e-6
    # Without a prompt nothing is left out: the same bits as the pooling with the prompt.
    other = oxiformer.SentenceEncoder.from_pretrained(
        st_dir(tmp_path / "b", minilm_dir, None, {**modes, "pooling_mode_cls_token": True})
    )
    assert model.encode(TEXTS).tobytes() == other.encode(TEXTS).tobytes()
    saved = oxiformer.SentenceEncoder.from_pretrained(model.save_pretrained(tmp_path / "c"))
    assert not saved.pooling.include_prompt


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"prompts": PROMPTS, "default_prompt_name": "doc"}, "'default_prompt_name' 'doc'"),
        ({"similarity_fn_name": "jaccard"}, "unknown 'similarity_fn_name' 'jaccard'"),
        ({"prompts": ["query: "]}, "'prompts' must map names to prompt texts"),
        ([1], "expected a JSON object"),
    ],
)
def test_bad_settings_name_the_file(
    settings: object, message: str, minilm_dir: Path, tmp_path: Path
) -> None:
    path = st_dir(tmp_path, minilm_dir, None)
    (path / "config_sentence_transformers.json").write_text(json.dumps(settings))
    with pytest.raises(oxiformer.ConfigError) as caught:
        oxiformer.SentenceEncoder.from_pretrained(path)
    assert message in str(caught.value) and "config_sentence_transformers.json" in str(caught.value)


def reference(a: np.ndarray, b: np.ndarray, fn: str) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    if fn == "cosine":
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
    if fn in ("cosine", "dot"):
        return a @ b.T
    differences = a[:, None, :] - b[None, :, :]
    if fn == "euclidean":
        return -np.sqrt((differences**2).sum(axis=-1))
    return -np.abs(differences).sum(axis=-1)


@pytest.mark.parametrize("fn", ["cosine", "dot", "euclidean", "manhattan"])
def test_similarity_functions_match_their_definitions(fn: str) -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((70, 33)).astype(np.float32)  # more rows than a distance block
    b = rng.standard_normal((9, 33)).astype(np.float32)
    scores = similarity(a, b, fn)
    assert scores.shape == (70, 9) and scores.dtype == np.float32
    diff = np.abs(scores - reference(a, b, fn)).max()
    pairs = similarity_pairwise(a[:9], b, fn)
    pair_diff = np.abs(pairs - np.diag(reference(a[:9], b, fn))).max()
    print(f"{fn}: max abs diff {diff:.2e}, pairwise {pair_diff:.2e}")
    assert diff < 1e-4 and pair_diff < 1e-4 and pairs.shape == (9,)
    assert similarity(a[0], b, fn).shape == (1, 9)  # one vector is one row
    assert similarity(a[:0], b, fn).shape == (0, 9)


def test_similarity_refuses_what_it_cannot_compare() -> None:
    a = np.ones((2, 4), np.float32)
    cases = {
        "different sizes (4 and 3)": lambda: similarity(a, np.ones((2, 3))),
        "finite": lambda: similarity(a, np.full((1, 4), np.nan)),
        "unknown similarity function 'cos'": lambda: similarity(a, a, "cos"),
        "a has 2 rows, b has 1": lambda: similarity_pairwise(a, a[:1]),
        "1-D or 2-D": lambda: similarity(np.ones((2, 2, 2)), a),
    }
    for message, call in cases.items():
        with pytest.raises(oxiformer.InputError) as caught:
            call()
        assert message in str(caught.value)


def test_cli_embed_takes_a_prompt_name(
    minilm_dir: Path, tmp_path: Path, plain: oxiformer.SentenceEncoder
) -> None:
    path = st_dir(tmp_path, minilm_dir, {"prompts": PROMPTS})
    out = tmp_path / "out.npy"
    command = [sys.executable, "-m", "oxiformer", "embed", "-q", "-m", str(path)]
    result = subprocess.run(
        [*command, "--prompt-name", "passage", "-o", str(out), *TEXTS[:2]],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    want = plain.encode(["passage: " + t for t in TEXTS[:2]])
    assert np.load(out).tobytes() == want.tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bad = subprocess.run(
            [*command, "--prompt-name", "doc", "x"], capture_output=True, text=True, check=False
        )
    assert bad.returncode != 0 and "unknown prompt_name 'doc'" in bad.stderr
