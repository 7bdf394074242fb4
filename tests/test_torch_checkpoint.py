"""PyTorch checkpoints (pytorch_model.bin) read without torch.

Files torch itself wrote pin both formats (``tests/data/torch/``: the zip format from candle's
tests, the legacy one from Pickle.jl's; see its README). The writers in ``torch_writer.py`` are
checked byte for byte against them before they make the rest.
"""

from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import oxiformer
import oxiformer.cli
import pytest
from helpers import FIXTURES, assert_minilm_copy, assert_seqcls_copy, require_fixtures
from oxiformer.weights import find_weights, read_tensors
from torch_writer import (
    Storage,
    View,
    pickle_bytes,
    views_of,
    write_checkpoint,
    write_legacy_checkpoint,
)

TORCH_FILES = Path(__file__).parent / "data" / "torch"
EIGHT = np.arange(1, 9, dtype=np.int64).reshape(2, 4)


def test_reads_the_files_torch_wrote() -> None:
    plain = read_tensors(TORCH_FILES / "test.pt")
    assert list(plain) == ["test"] and plain.spec("test").dtype == np.int64
    np.testing.assert_array_equal(plain["test"], EIGHT)
    # A Fortran-ordered tensor (strides 1, 2, 6): its values in C order, in a copy of its own.
    fortran = read_tensors(TORCH_FILES / "fortran_tensor_3d.pth")["tensor_fortran"]
    np.testing.assert_array_equal(fortran, np.arange(1, 25).reshape(2, 3, 4))
    assert fortran.flags.c_contiguous and fortran.flags.owndata
    with pytest.raises(oxiformer.WeightsError, match="under 'model_state_dict'"):
        read_tensors(TORCH_FILES / "test_with_key.pt")


def test_the_test_writer_writes_what_torch_writes() -> None:
    for name, top in (("test", None), ("test_with_key", lambda s: {"model_state_dict": s})):
        with zipfile.ZipFile(TORCH_FILES / f"{name}.pt") as archive:
            real = archive.read(f"{name}/data.pkl")
        assert pickle_bytes(views_of({"test": EIGHT}), top) == real


def test_reads_the_legacy_files_torch_wrote(tmp_path: Path) -> None:
    legacy = TORCH_FILES / "legacy"
    # An nn.Linear(5, 3) state dict (with torch's _metadata): weights drawn from
    # U(-1/sqrt(5), 1/sqrt(5)); rewritten by the test writer, the same bytes.
    linear = read_tensors(legacy / "linear_state.bin")
    weight, bias = np.array(linear["weight"]), np.array(linear["bias"])
    assert weight.shape == (3, 5) and bias.shape == (3,) and weight.dtype == np.float32
    assert np.abs(weight).max() <= 5**-0.5 and np.abs(bias).max() <= 5**-0.5
    assert len(np.unique(weight)) == 15
    copy = tmp_path / "linear_state.bin"
    write_legacy_checkpoint(
        copy,
        {"weight": weight, "bias": bias},
        keys=["46702432", "40056784"],
        long_size=4,  # the saving system's C long (Windows)
        top=lambda state: with_metadata(state, {"": {"version": 1}}),
    )
    assert copy.read_bytes() == (legacy / "linear_state.bin").read_bytes()
    # Views of one storage: a reshape, a slice, strides, an offset with strides.
    views = {name: read_tensors(legacy / f"{name}.bin") for name in ("reshape", "slice")}
    flat = np.array(views["reshape"]["weight0"]).reshape(-1)
    np.testing.assert_array_equal(views["reshape"]["weight1"], flat)
    flat = np.array(views["slice"]["weight0"]).reshape(-1)
    np.testing.assert_array_equal(views["slice"]["weight1"], flat[7:9])
    strided = read_tensors(legacy / "strides.bin")
    flat = np.array(strided["weight0"]).reshape(-1)
    np.testing.assert_array_equal(strided["weight1"], flat[5:6])
    np.testing.assert_array_equal(strided["weight2"], flat[0:1])
    offset = read_tensors(legacy / "offset-strides.bin")
    flat = np.array(offset["weight0"]).reshape(-1)
    want = np.lib.stride_tricks.as_strided(flat[137:], (4, 5), (48 * 4, 3 * 4))
    np.testing.assert_array_equal(offset["weight1"], want)
    booleans = read_tensors(legacy / "bool.bin")
    assert booleans["b"].dtype == np.bool_ and booleans["b"].shape == (3, 3)


@pytest.fixture(scope="module")
def minilm_tensors(minilm_dir: Path) -> dict[str, np.ndarray]:
    tensors = read_tensors(minilm_dir / "model.safetensors")
    return {name: np.array(tensors[name]) for name in tensors}


def with_metadata(
    state: collections.OrderedDict, metadata: dict[str, Any] | None = None
) -> collections.OrderedDict:
    """The state dict as ``nn.Module.state_dict()`` returns it: with a ``_metadata``
    attribute, which torch.save pickles too (a BUILD of the OrderedDict)."""
    metadata = metadata or {"": {"version": 1}, "bert": {"version": 1}}
    state._metadata = collections.OrderedDict(metadata)
    return state


def bin_model(
    root: Path,
    source: Path,
    views: dict[str, View | np.ndarray],
    top: Any = None,
    write: Any = write_checkpoint,
) -> Path:
    """``source``'s files with its weights replaced by a ``pytorch_model.bin``."""
    root.mkdir(parents=True)
    for item in source.iterdir():
        if item.name not in ("model.safetensors", "weights.npz"):
            (root / item.name).symlink_to(item)
    write(root / "pytorch_model.bin", views, top=top)
    return root


def test_minilm_from_one_shared_storage_matches_sentence_transformers(
    minilm_dir: Path, minilm_tensors: dict[str, np.ndarray], minilm_golden: dict, tmp_path: Path
) -> None:
    # Every tensor a view at its offset into one storage, as torch saves tied weights.
    flat = np.concatenate([array.reshape(-1) for array in minilm_tensors.values()])
    storage, views, offset = Storage(flat), {}, 0
    for name, array in minilm_tensors.items():
        strides = tuple(s // array.itemsize for s in array.strides)
        views[name] = View(storage, offset, array.shape, strides)
        offset += array.size
    model_dir = bin_model(tmp_path / "minilm", minilm_dir, views)
    assert find_weights(model_dir).name == "pytorch_model.bin"
    assert_minilm_copy(model_dir, minilm_dir, minilm_golden)


def test_minilm_from_a_legacy_checkpoint(
    minilm_dir: Path, minilm_tensors: dict[str, np.ndarray], tmp_path: Path
) -> None:
    views = dict(minilm_tensors)
    write = write_legacy_checkpoint
    model_dir = bin_model(tmp_path / "legacy", minilm_dir, views, with_metadata, write)
    texts = ["a legacy checkpoint", "saved by torch 1.5"]
    got = oxiformer.SentenceEncoder.from_pretrained(model_dir).encode(texts)
    want = oxiformer.SentenceEncoder.from_pretrained(minilm_dir).encode(texts)
    assert got.tobytes() == want.tobytes()


def test_classifier_from_pytorch_model_bin_matches_golden(tmp_path: Path) -> None:
    require_fixtures("tiny-bert/seqcls")
    source = FIXTURES / "tiny-bert" / "seqcls"
    tensors = read_tensors(source / "model.safetensors")
    views: dict[str, View | np.ndarray] = {name: np.array(tensors[name]) for name in tensors}
    # One weight stored transposed (as after `.t()`): strides (1, rows) over its storage.
    weight = np.array(tensors["classifier.weight"])
    views["classifier.weight"] = View(Storage(weight.T.reshape(-1)), 0, weight.shape, (1, 3))
    model_dir = bin_model(tmp_path / "seqcls", source, views, with_metadata)
    assert_seqcls_copy(model_dir, source, "pytorch_model.bin")


def test_dtypes_byte_orders_and_views(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = rng.standard_normal((3, 5)).astype(np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)
    tensors: dict[str, View | np.ndarray] = {
        "f32": values,
        "f64": values.astype(np.float64),
        "f16": values.astype(np.float16),
        "bf16": View(Storage(bf16.reshape(-1), "BFloat16Storage"), 0, (3, 5), (5, 1)),
        "i64": np.arange(6, dtype=np.int64).reshape(2, 3),
        "u8": np.arange(4, dtype=np.uint8),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 4), np.float32),
        "scalar": np.array(2.5, np.float32),
    }
    want = {
        "f32": values,
        "f64": values.astype(np.float64),
        "f16": values.astype(np.float16).astype(np.float32),
        "bf16": (bf16.astype(np.uint32) << 16).view(np.float32),
        "i64": tensors["i64"],
        "u8": tensors["u8"],
        "mask": tensors["mask"],
        "empty": tensors["empty"],
        "scalar": tensors["scalar"],
    }
    for order in ("little", "big", None):
        path = tmp_path / f"{order}.pt"
        write_checkpoint(path, tensors, byteorder=order)
        loaded = read_tensors(path)
        for name, expected in want.items():
            array = loaded[name]
            assert loaded.spec(name).dtype == array.dtype == expected.dtype.newbyteorder("=")
            assert array.shape == expected.shape == loaded.spec(name).shape
            np.testing.assert_array_equal(array, expected, err_msg=f"{name} ({order})")


def test_hostile_pickles_are_refused_before_they_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    command = f"touch {marker}".encode()
    hostile = {
        "os.system": b"\x80\x02cos\nsystem\nX"
        + len(command).to_bytes(4, "little")
        + command
        + b"\x85R.",
        "builtins.eval": b"\x80\x02cbuiltins\neval\nX\x03\x00\x00\x001+1\x85R.",
        "a model class": b"\x80\x02ctransformers.models.bert\nBertModel\n)R.",
    }
    for label, data in hostile.items():
        path = tmp_path / "evil.bin"
        write_checkpoint(path, {"x": EIGHT}, data=data)
        with pytest.raises(oxiformer.WeightsError) as caught:
            read_tensors(path)
        print(label, "->", caught.value)
        assert "does not load" in str(caught.value) and "evil.bin" in str(caught.value)
    assert not marker.exists()


def write_member(path: Path, name: str, data: bytes, folder: str = "archive") -> None:
    """``path`` (a checkpoint) with member ``name`` replaced by ``data`` (None: dropped)."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members[f"{folder}/{name}"] = data
    with zipfile.ZipFile(path, "w") as archive:
        for member, content in members.items():
            if content is not None:
                archive.writestr(member, content)


def test_broken_checkpoints_name_the_file_and_the_problem(tmp_path: Path) -> None:
    def case(label: str) -> Path:
        path = tmp_path / f"{label}.bin"
        write_checkpoint(path, {"weight": np.ones((2, 3), np.float32)})
        return path

    errors = {}
    short = case("short")
    write_member(short, "data/0", b"\0" * 20)
    errors["short"] = short
    missing = case("missing")
    write_member(missing, "data/0", None)  # type: ignore[arg-type]
    errors["missing"] = missing
    past = tmp_path / "past.bin"
    write_checkpoint(past, {"weight": View(Storage(np.ones(6, np.float32)), 2, (2, 3), (3, 1))})
    errors["past"] = past
    complex_kind = tmp_path / "complex.bin"
    write_checkpoint(
        complex_kind,
        {"z": View(Storage(np.ones(4, np.float32), "ComplexFloatStorage"), 0, (2,), (1,))},
    )
    errors["complex"] = complex_kind
    listed = tmp_path / "list.bin"
    write_checkpoint(listed, {"weight": np.ones(3, np.float32)}, top=lambda s: list(s.values()))
    errors["list"] = listed
    order = case("order")
    write_member(order, "byteorder", b"middle")
    errors["order"] = order
    legacy = tmp_path / "legacy.bin"
    legacy.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, 2) + pickle.dumps(1001, 2))
    errors["legacy"] = legacy
    whole = tmp_path / "whole.bin"
    write_legacy_checkpoint(whole, {"weight": np.ones((2, 3), np.float32)})
    cut = tmp_path / "cut.bin"
    cut.write_bytes(whole.read_bytes()[:-4])
    errors["cut"] = cut
    count = tmp_path / "count.bin"
    data = whole.read_bytes()
    count.write_bytes(data[:-32] + (5).to_bytes(8, "little") + data[-24:])
    errors["count"] = count
    protocol = tmp_path / "protocol.bin"
    protocol.write_bytes(data.replace(pickle.dumps(1001, 2), pickle.dumps(1002, 2), 1))
    errors["protocol"] = protocol
    script = tmp_path / "script.pt"
    with zipfile.ZipFile(script, "w") as archive:
        archive.writestr("m/constants.pkl", b"")
        archive.writestr("m/code/__torch__.py", b"")
    errors["script"] = script
    text = tmp_path / "text.bin"
    text.write_text("not a checkpoint")
    errors["text"] = text
    truncated = case("truncated")
    truncated.write_bytes(truncated.read_bytes()[:-30])
    errors["truncated"] = truncated
    messages = {}
    for label, path in errors.items():
        with pytest.raises(oxiformer.WeightsError) as caught:
            tensors = read_tensors(path)
            for name in tensors:
                tensors[name]
        messages[label] = str(caught.value)
        print(label, "->", messages[label])
        assert str(path) in messages[label]
    expected = {
        "short": "holds 20 bytes, its 6 elements of FloatStorage need 24",
        "missing": "storage '0' is missing",
        "past": "reaches element 7 of a storage of 6",
        "complex": "torch.ComplexFloatStorage",
        "list": "holds a list, not a dict",
        "order": "unknown byte order 'middle'",
        "legacy": "ends inside a pickle (truncated?)",
        "cut": "storage '0' runs past the end of the file",
        "count": "records 5 elements, the object 6",
        "protocol": "protocol 1002, not 1001",
        "script": "TorchScript",
        "text": "not a PyTorch checkpoint",
        "truncated": "truncated or corrupt",
    }
    for label, text in expected.items():
        assert text in messages[label], label


def test_safetensors_wins_over_a_checkpoint(tmp_path: Path) -> None:
    both = tmp_path / "both"
    both.mkdir()
    (both / "model.safetensors").write_bytes(b"")
    write_checkpoint(both / "pytorch_model.bin", {"x": EIGHT})
    assert find_weights(both).name == "model.safetensors"


def test_convert_writes_safetensors_from_a_pytorch_checkpoint(
    minilm_dir: Path, minilm_tensors: dict[str, np.ndarray], tmp_path: Path
) -> None:
    source = bin_model(tmp_path / "bin", minilm_dir, dict(minilm_tensors))
    out = tmp_path / "out"
    oxiformer.cli.main(["convert", str(source), str(out)])
    converted = read_tensors(find_weights(out))
    assert find_weights(out).suffix != ".bin"
    for name in ("embeddings.word_embeddings.weight", "encoder.layer.5.output.dense.bias"):
        np.testing.assert_array_equal(converted[name], minilm_tensors[name])
