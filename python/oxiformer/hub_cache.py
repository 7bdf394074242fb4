"""Models a Hugging Face library already downloaded: a model id (``"org/name"``) found in the
local Hugging Face cache, without the network.

transformers, sentence-transformers and ``huggingface-cli download`` keep a model in
``$HF_HUB_CACHE`` (else ``$HUGGINGFACE_HUB_CACHE``, else ``$HF_HOME/hub``, else
``$XDG_CACHE_HOME/huggingface/hub``, else ``~/.cache/huggingface/hub``), under
``models--{org}--{name}/snapshots/{commit}/``, with ``refs/main`` holding the commit of the
main branch. oxiformer reads that snapshot as a model directory; ``revision=`` picks another:
a branch or tag the cache has a ref for (``refs/{revision}``), or a full commit hash whose
snapshot it holds, as ``huggingface_hub`` resolves revisions offline. A bare name
(``"all-MiniLM-L6-v2"``) is also looked for under ``sentence-transformers/``, as
sentence-transformers does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from oxiformer.errors import ConfigError

__all__ = [
    "cache_dir",
    "cached_snapshot",
    "candidates",
    "check_revision",
    "is_model_id",
    "not_found_hint",
]

#: A Hugging Face model id: ``name`` or ``org/name``, each part ASCII letters, digits, ``-``,
#: ``_`` and ``.``, neither starting nor ending with ``-`` or ``.``.
_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_MODEL_ID = re.compile(rf"(?:{_PART}/)?{_PART}")

#: A full commit hash, as snapshots are named.
_COMMIT = re.compile(r"[0-9a-f]{40}")

#: A branch or tag name (or ``refs/pr/N``): git's ref characters, relative, no ``..``.
_REVISION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,254}")

#: The organisation sentence-transformers tries for a bare name.
_BARE_NAME_ORG = "sentence-transformers"


def cache_dir() -> Path:
    """The Hugging Face hub cache, as ``huggingface_hub`` finds it."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = os.environ.get(variable)
        if value:
            return Path(os.path.expandvars(value)).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(os.path.expandvars(home)).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def is_model_id(text: str) -> bool:
    """Whether ``text`` has the form of a model id (not that such a model exists)."""
    return bool(_MODEL_ID.fullmatch(text)) and ".." not in text and "--" not in text


def _repo_folder(model_id: str) -> str:
    return "models--" + model_id.replace("/", "--")


def _snapshot(repo: Path, model_id: str, revision: str | None = None) -> Path:
    """The snapshot of ``revision`` (a ref or a commit hash); without one, of ``refs/main``,
    else the only snapshot."""
    snapshots = repo / "snapshots"
    if revision is not None:
        return _revision_snapshot(repo, model_id, revision)
    ref = repo / "refs" / "main"
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8").strip()
        if commit and (snapshots / commit).is_dir():
            return snapshots / commit
    found = _listed(snapshots)
    if len(found) == 1:
        return snapshots / found[0]
    if not found:
        raise ConfigError(
            f"{model_id}: the Hugging Face cache entry {repo} holds no snapshot; download the "
            f"model again (huggingface-cli download {model_id}) or pass a model directory"
        )
    raise ConfigError(
        f"{model_id}: the Hugging Face cache entry {repo} has no refs/main and "
        f"{len(found)} snapshots ({', '.join(found)}); pass the directory of the one to use"
    )


def _revision_snapshot(repo: Path, model_id: str, revision: str) -> Path:
    snapshots = repo / "snapshots"
    if _COMMIT.fullmatch(revision) and (snapshots / revision).is_dir():
        return snapshots / revision
    ref = repo / "refs" / revision
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8").strip()
        if _COMMIT.fullmatch(commit) and (snapshots / commit).is_dir():
            return snapshots / commit
        raise ConfigError(
            f"{model_id}: revision {revision!r} points to commit {commit!r}, whose snapshot "
            f"is not in the Hugging Face cache entry {repo}; download it again "
            f"(huggingface-cli download {model_id} --revision {revision})"
        )
    refs = sorted(
        p.relative_to(repo / "refs").as_posix() for p in (repo / "refs").rglob("*") if p.is_file()
    )
    listed = ", ".join(_listed(snapshots)) or "none"
    raise ConfigError(
        f"{model_id}: revision {revision!r} is not in the Hugging Face cache entry {repo} "
        f"(refs: {', '.join(refs) or 'none'}; snapshots: {listed}); "
        f"download it (huggingface-cli download {model_id} --revision {revision}) or pass a "
        "branch, tag or full commit hash the cache holds"
    )


def _listed(snapshots: Path) -> list[str]:
    return sorted(p.name for p in snapshots.iterdir() if p.is_dir()) if snapshots.is_dir() else []


def check_revision(revision: object) -> str | None:
    """``revision`` if it can name a branch, tag or commit (None: the main branch)."""
    if revision is None:
        return None
    if (
        not isinstance(revision, str)
        or not _REVISION.fullmatch(revision)
        or ".." in revision
        or "//" in revision
    ):
        raise ConfigError(f"revision must be a branch, tag or commit hash, got {revision!r}")
    return revision


def candidates(model_id: str) -> list[str]:
    """The model ids ``model_id`` is looked up as, in order."""
    ids = [model_id]
    if "/" not in model_id:
        ids.append(f"{_BARE_NAME_ORG}/{model_id}")
    return ids


def cached_snapshot(model_id: str, revision: str | None = None) -> Path | None:
    """The directory of ``model_id``'s cached snapshot (of ``revision``, see the module doc),
    or ``None`` when the cache has no entry for it; a ``ConfigError`` when the entry exists but
    which snapshot to read is not clear, or it lacks ``revision``."""
    if not is_model_id(model_id):
        return None
    revision = check_revision(revision)
    root = cache_dir()
    for candidate in candidates(model_id):
        repo = root / _repo_folder(candidate)
        if repo.is_dir():
            return _snapshot(repo, candidate, revision)
    return None


def not_found_hint(model_id: str) -> str:
    """What the error for a missing ``model_id`` adds: where it was looked for, how to get it."""
    root = cache_dir()
    ids = candidates(model_id)
    looked = " or ".join(_repo_folder(candidate) for candidate in ids)
    # A bare name: the hub wants the organisation too, sentence-transformers' one is a guess.
    download = model_id if len(ids) == 1 else f"{ids[-1]}, or the model's org/name"
    return (
        f"; not in the Hugging Face cache either (no {looked} under {root}). oxiformer reads "
        f"models offline: download it once (huggingface-cli download {download}) or pass a "
        "model directory"
    )
