"""Checkpoints sharded over several files, as Hugging Face's ``save_pretrained`` writes them
when a model is larger than ``max_shard_size``: ``model.safetensors.index.json`` (or
``pytorch_model.bin.index.json``) maps every tensor name to the shard that holds it::

    {"metadata": {"total_size": 1340616704},
     "weight_map": {"embeddings.word_embeddings.weight": "model-00001-of-00002.safetensors", ...}}

The shards are opened as any weights file (their headers read and checked, their data
memory-mapped when a tensor is looked up); the index decides which shard a name is read
from, as transformers' loader does. Every shard must lie in the index's directory, exist, and
hold the tensors the index assigns to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from oxiformer._files import open_regular
from oxiformer.errors import WeightsError

__all__ = ["INDEX_SUFFIX", "is_index", "open_sharded", "shard_paths"]

#: How the index of a sharded checkpoint is named: ``{weights file name}.index.json``.
INDEX_SUFFIX = ".index.json"

#: Largest index file read (an index of 10,000 tensors is about 1 MB).
_MAX_INDEX_BYTES = 64 << 20

Shard = TypeVar("Shard", bound=Mapping[str, Any])


def is_index(path: Path) -> bool:
    """Whether ``path`` names the index of a sharded checkpoint."""
    return path.name.endswith(INDEX_SUFFIX)


def shard_paths(index: Path) -> dict[str, Path]:
    """The weight map of ``index``: tensor name -> the shard file that holds it (checked: a
    JSON object whose ``weight_map`` maps names to file names in the index's directory)."""
    try:
        with open_regular(index, WeightsError) as stream:
            text = stream.read(_MAX_INDEX_BYTES + 1)
    except OSError as err:
        raise WeightsError(f"{index}: cannot read this index of shards ({err})") from err
    if len(text) > _MAX_INDEX_BYTES:
        raise WeightsError(f"{index}: index larger than {_MAX_INDEX_BYTES} bytes")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise WeightsError(f"{index}: not a valid JSON index ({err})") from None
    weight_map = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise WeightsError(f"{index}: no 'weight_map' object naming each tensor's shard")
    shards: dict[str, Path] = {}
    for name, file in weight_map.items():
        if not isinstance(file, str) or not _plain_file_name(file):
            raise WeightsError(
                f"{index}: tensor '{name}' is mapped to {file!r}, not the name of a file in "
                "the index's directory"
            )
        shards[name] = index.parent / file
    return shards


def open_sharded(index: Path, open_shard: Callable[[Path], Shard]) -> dict[str, Shard]:
    """Tensor name -> its shard, each shard opened once with ``open_shard`` (by path); a
    :class:`WeightsError` names a shard that is missing, is itself an index, or lacks a tensor
    the index assigns to it."""
    weight_map = shard_paths(index)
    opened: dict[Path, Shard] = {}
    for path in dict.fromkeys(weight_map.values()):
        if is_index(path):
            raise WeightsError(f"{index}: shard {path.name} is itself an index")
        if not path.exists():
            raise WeightsError(f"{index}: shard {path.name} is missing from {index.parent}")
        opened[path] = open_shard(path)
    for name, path in weight_map.items():
        if name not in opened[path]:
            raise WeightsError(f"{index}: tensor '{name}' is not in its shard {path.name}")
    return {name: opened[path] for name, path in weight_map.items()}


def _plain_file_name(file: str) -> bool:
    return bool(file) and file not in (".", "..") and "/" not in file and "\\" not in file
