"""Checkpoints sharded over several files (``model.safetensors.index.json`` and
``pytorch_model.bin.index.json``, as ``save_pretrained(max_shard_size=...)`` writes them):
the same outputs, bit for bit, as the one-file checkpoint they were split from, and an error
naming the index and the shard for every way an index can be wrong."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import oxiformer
import oxiformer.cli
import pytest
from helpers import (
    FIXTURES,
    assert_minilm_copy,
    assert_seqcls_copy,
    require_fixtures,
    to_safetensors,
)
from oxiformer.ray import model_files
from oxiformer.weight_files import check_unchanged, file_stamp
from oxiformer.weights import find_weights, read_tensors
from torch_writer import write_checkpoint

INDEX = "model.safetensors.index.json"


def shard(
    root: Path,
    source: Path,
    parts: int,
    kind: str = "safetensors",
    weight_map: Any = None,
) -> Path:
    """``source``'s files with its weights split into ``parts`` shards, in the order of the
    tensors and with HF's file names, plus their index (``weight_map`` replaces the map)."""
    root.mkdir(parents=True)
    for item in source.iterdir():
        if item.name not in ("model.safetensors", "weights.npz", "pytorch_model.bin"):
            (root / item.name).symlink_to(item)
    tensors = read_tensors(find_weights(source))
    names = list(tensors)
    chunks = np.array_split(np.arange(len(names)), parts)
    mapping, total = {}, 0
    for number, chunk in enumerate(chunks, 1):
        if kind == "safetensors":
            file = f"model-{number:05d}-of-{parts:05d}.safetensors"
            to_safetensors(root / file, {names[i]: np.array(tensors[names[i]]) for i in chunk})
        else:
            file = f"pytorch_model-{number:05d}-of-{parts:05d}.bin"
            write_checkpoint(root / file, {names[i]: np.array(tensors[names[i]]) for i in chunk})
        for i in chunk:
            mapping[names[i]] = file
            total += tensors[names[i]].nbytes
    index = {"metadata": {"total_size": total}, "weight_map": weight_map or mapping}
    index_name = INDEX if kind == "safetensors" else "pytorch_model.bin.index.json"
    (root / index_name).write_text(json.dumps(index))
    return root


def test_minilm_in_three_safetensors_shards_matches_sentence_transformers(
    minilm_dir: Path, minilm_golden: dict, tmp_path: Path
) -> None:
    model_dir = shard(tmp_path / "minilm", minilm_dir, 3)
    assert find_weights(model_dir).name == INDEX
    assert_minilm_copy(model_dir, minilm_dir, minilm_golden)
    # int8 quantizes from the shards as from one file
    texts = ["sharded weights", "quantized at load"]
    got = oxiformer.SentenceEncoder.from_pretrained(model_dir, dtype="int8").encode(texts)
    want = oxiformer.SentenceEncoder.from_pretrained(minilm_dir, dtype="int8").encode(texts)
    assert got.tobytes() == want.tobytes()


def test_classifier_from_pytorch_shards_matches_golden(tmp_path: Path) -> None:
    require_fixtures("tiny-bert/seqcls")
    source = FIXTURES / "tiny-bert" / "seqcls"
    model_dir = shard(tmp_path / "seqcls", source, 2, kind="bin")
    assert find_weights(model_dir).name == "pytorch_model.bin.index.json"
    assert_seqcls_copy(model_dir, source, "2 .bin shards")


def test_convert_joins_the_shards(minilm_dir: Path, tmp_path: Path) -> None:
    model_dir = shard(tmp_path / "sharded", minilm_dir, 2)
    out = tmp_path / "out"
    oxiformer.cli.main(["convert", str(model_dir), str(out)])
    assert find_weights(out).name == "weights.npz"
    joined = read_tensors(find_weights(out))
    original = read_tensors(minilm_dir / "model.safetensors")
    assert len(joined) >= 100
    for name in joined:
        np.testing.assert_array_equal(joined[name], original[name])


def test_one_file_wins_and_safetensors_index_before_bin_index(
    minilm_dir: Path, tmp_path: Path
) -> None:
    model_dir = shard(tmp_path / "both", minilm_dir, 2)
    (model_dir / "pytorch_model.bin.index.json").write_text("{}")
    assert find_weights(model_dir).name == INDEX
    (model_dir / INDEX).unlink()
    assert find_weights(model_dir).name == "pytorch_model.bin.index.json"
    to_safetensors(model_dir / "model.safetensors", {"x": np.zeros(2, np.float32)})
    assert find_weights(model_dir).name == "model.safetensors"


def test_ray_ships_the_shards(minilm_dir: Path, tmp_path: Path) -> None:
    model_dir = shard(tmp_path / "ray", minilm_dir, 3)
    files = model_files(model_dir)
    shards = sorted(p.name for p in model_dir.glob("model-*.safetensors"))
    assert len(shards) == 3
    assert all(name in files for name in [*shards, INDEX])
    assert all(len(files[name]) == (model_dir / name).stat().st_size for name in shards)


def test_a_rewritten_shard_changes_the_stamp(minilm_dir: Path, tmp_path: Path) -> None:
    model_dir = shard(tmp_path / "stamp", minilm_dir, 2)
    index = find_weights(model_dir)
    stamp = file_stamp(index)
    check_unchanged(index, stamp, "its tensors")
    second = model_dir / "model-00002-of-00002.safetensors"
    info = second.stat()
    os.utime(second, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))
    with pytest.raises(oxiformer.WeightsError, match="changed"):
        check_unchanged(index, stamp, "its tensors")


def wrong_index(tmp_path: Path, minilm_dir: Path, edit: Any) -> Path:
    model_dir = shard(tmp_path / "wrong", minilm_dir, 2)
    index = model_dir / INDEX
    document = json.loads(index.read_text())
    edited = edit(document, model_dir)
    index.write_text(edited if isinstance(edited, str) else json.dumps(edited))
    return model_dir


def _drop_second_shard(document: dict, model_dir: Path) -> dict:
    (model_dir / "model-00002-of-00002.safetensors").unlink()
    return document


def _map(name: str, file: Any) -> Any:
    def edit(document: dict, model_dir: Path) -> dict:
        document["weight_map"][name] = file
        return document

    return edit


WORD = "embeddings.word_embeddings.weight"
LAST = "encoder.layer.5.output.LayerNorm.bias"

WRONG_INDEXES = {
    "missing shard": (_drop_second_shard, "shard model-00002-of-00002.safetensors is missing"),
    "not in its shard": (
        _map(LAST, "model-00001-of-00002.safetensors"),
        f"tensor '{LAST}' is not in its shard model-00001-of-00002.safetensors",
    ),
    "outside the directory": (
        _map(WORD, "../model-00001-of-00002.safetensors"),
        "not the name of a file in the index's directory",
    ),
    "a subdirectory": (_map(WORD, "sub/x.safetensors"), "not the name of a file"),
    "not a string": (_map(WORD, 3), f"tensor '{WORD}' is mapped to 3"),
    "an index as shard": (_map(WORD, INDEX), "is itself an index"),
    "no weight map": (lambda document, _: {"metadata": {}}, "no 'weight_map' object"),
    "empty weight map": (lambda document, _: {"weight_map": {}}, "no 'weight_map' object"),
    "a list": (lambda document, _: [1, 2], "no 'weight_map' object"),
    "not JSON": (lambda document, _: "{'weight_map'", "not a valid JSON index"),
}


@pytest.mark.parametrize("case", list(WRONG_INDEXES))
def test_wrong_indexes_are_weights_errors(case: str, minilm_dir: Path, tmp_path: Path) -> None:
    edit, message = WRONG_INDEXES[case]
    model_dir = wrong_index(tmp_path, minilm_dir, edit)
    with pytest.raises(oxiformer.WeightsError) as caught:
        oxiformer.SentenceEncoder.from_pretrained(model_dir)
    print(f"{case}: {caught.value}")
    assert message in str(caught.value)
    assert str(model_dir / INDEX) in str(caught.value)


def test_a_broken_shard_names_the_shard(minilm_dir: Path, tmp_path: Path) -> None:
    model_dir = shard(tmp_path / "broken", minilm_dir, 2)
    second = model_dir / "model-00002-of-00002.safetensors"
    second.write_bytes(second.read_bytes()[:1000])
    with pytest.raises(oxiformer.WeightsError, match=r"model-00002-of-00002\.safetensors"):
        oxiformer.SentenceEncoder.from_pretrained(model_dir)
