"""oxiformer.weights: the three file formats, name and shape checks, and malformed files."""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from helpers import (
    TINY_BERT_SEQCLS,
    max_abs_diff,
    require_fixtures,
    to_safetensors,
    write_safetensors,
)
from oxiformer import WeightsError, _core
from oxiformer.weights import (
    find_weights,
    has_pooler,
    read_tensors,
    release_pages,
    save_npz,
    select_encoder_tensors,
)

Tensors = dict[str, npt.NDArray[Any]]

TINY_CONFIG = _core.EncoderConfig(
    {
        "vocab_size": 11,
        "hidden_size": 6,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 8,
        "max_position_embeddings": 5,
        "type_vocab_size": 2,
    },
    "tiny",
)
EXPECTED = _core.expected_tensors(TINY_CONFIG, False)
WORDS = "embeddings.word_embeddings.weight"
QUERY = "encoder.layer.0.attention.self.query.weight"


def tiny_tensors(prefix: str = "") -> Tensors:
    rng = np.random.default_rng(0)
    return {
        prefix + name: rng.normal(size=shape).astype(np.float32) for name, shape in EXPECTED.items()
    }


def select(tensors: Tensors, source: str = "model-file.bin") -> dict[str, npt.NDArray[np.float32]]:
    return select_encoder_tensors(tensors, EXPECTED, source)


def assert_weights_error(call: Any, *fragments: str) -> str:
    with pytest.raises(WeightsError) as info:
        call()
    message = str(info.value)
    print(message)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# ---- the three formats ------------------------------------------------------------------------


def test_three_formats_give_identical_tensors(tmp_path: Path) -> None:
    require_fixtures("tiny-bert/seqcls")
    from_safetensors = read_tensors(TINY_BERT_SEQCLS / "model.safetensors")
    from_npz = read_tensors(TINY_BERT_SEQCLS / "weights.npz")
    npy_dir = tmp_path / "weights"
    npy_dir.mkdir()
    for name, array in from_npz.items():
        np.save(npy_dir / f"{name}.npy", array)
    from_npy = read_tensors(npy_dir)
    assert sorted(from_safetensors) == sorted(from_npz) == sorted(from_npy)
    for label, tensors in (("safetensors", from_safetensors), ("npy dir", from_npy)):
        assert all(tensors[name].dtype == array.dtype for name, array in from_npz.items())
        diffs = [max_abs_diff(f"{label} {name}", tensors[name], a) for name, a in from_npz.items()]
        assert max(diffs) == 0.0
        print(f"{label} vs npz over {len(diffs)} tensors: max abs diff {max(diffs)}")
    # .npy and safetensors are memory-mapped, and selecting float32 C arrays copies nothing.
    config = _core.EncoderConfig((TINY_BERT_SEQCLS / "config.json").read_text(), "config.json")
    expected = _core.expected_tensors(config, True)
    for tensors in (from_safetensors, from_npy):
        word = tensors["bert.embeddings.word_embeddings.weight"]
        assert isinstance(word.base, np.memmap) or isinstance(word, np.memmap)
        selected = select_encoder_tensors(tensors, expected, "x")
        assert np.shares_memory(selected[WORDS], word)
        assert selected[WORDS].flags.c_contiguous and selected[WORDS].flags.aligned


def test_safetensors_half_precision_is_upcast(tmp_path: Path) -> None:
    values = np.array([[1.5, -2.0, 3.140625], [0.0, -0.0, -0.15625]], dtype=np.float32)
    assert not (values.view(np.uint32) & 0xFFFF).any(), "values must be exact in bfloat16"
    f16 = values.astype("<f2").tobytes()
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    ids = np.arange(4, dtype="<i8").tobytes()
    header = {
        "__metadata__": {"format": "pt"},
        "half": {"dtype": "F16", "shape": [2, 3], "data_offsets": [0, 12]},
        "brain": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [12, 24]},
        "position_ids": {"dtype": "I64", "shape": [1, 4], "data_offsets": [24, 56]},
    }
    write_safetensors(tmp_path / "model.safetensors", header, f16 + bf16 + ids)
    tensors = read_tensors(tmp_path / "model.safetensors")
    assert sorted(tensors) == ["brain", "half", "position_ids"]
    assert tensors["half"].dtype == tensors["brain"].dtype == np.float32
    assert max_abs_diff("F16 upcast", tensors["half"], values) == 0.0
    assert max_abs_diff("BF16 upcast", tensors["brain"], values) == 0.0
    assert tensors["position_ids"].dtype == np.int64
    assert tensors["position_ids"].tolist() == [[0, 1, 2, 3]]


def test_save_npz_round_trip_is_uncompressed(tmp_path: Path) -> None:
    tensors = tiny_tensors("bert.")
    path = tmp_path / "weights.npz"
    save_npz(path, tensors)
    assert [p.name for p in tmp_path.iterdir()] == ["weights.npz"]
    with zipfile.ZipFile(path) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    loaded = read_tensors(path)
    assert list(loaded) == list(tensors)
    for name, array in tensors.items():
        assert loaded[name].dtype == array.dtype
        assert max_abs_diff(f"saved {name}", loaded[name], array) == 0.0


def test_save_npz_refuses_objects_and_leaves_nothing_behind(tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    tensors: Tensors = {WORDS: np.zeros(3, np.float32), QUERY: np.array([None], dtype=object)}
    assert_weights_error(lambda: save_npz(path, tensors), str(path), QUERY, "Python objects")
    assert list(tmp_path.iterdir()) == []


def test_find_weights_order_of_preference(tmp_path: Path) -> None:
    message = assert_weights_error(lambda: find_weights(tmp_path), str(tmp_path))
    for candidate in ("weights.npz", "model.safetensors", "weights/"):
        assert candidate in message
    (tmp_path / "weights").mkdir()
    assert find_weights(tmp_path) == tmp_path / "weights"
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert find_weights(tmp_path) == tmp_path / "model.safetensors"
    (tmp_path / "weights.npz").write_bytes(b"")
    assert find_weights(tmp_path) == tmp_path / "weights.npz"


# ---- selecting the encoder's tensors ------------------------------------------------------------


def test_select_strips_prefix_and_skips_heads_and_buffers() -> None:
    tensors = tiny_tensors("bert.")
    tensors["bert.embeddings.position_ids"] = np.arange(5, dtype=np.int64)[None]
    tensors["bert.pooler.dense.weight"] = np.zeros((6, 6), np.float32)
    tensors["bert.pooler.dense.bias"] = np.zeros(6, np.float32)
    tensors["classifier.weight"] = np.zeros((3, 6), np.int64)  # heads are never checked
    tensors["cls.predictions.bias"] = np.zeros(11, np.float32)
    tensors["qa_outputs.weight"] = np.full((2, 6), np.nan, np.float32)
    selected = select(tensors)
    assert list(selected) == list(EXPECTED)
    assert has_pooler(tensors)
    assert not has_pooler(tiny_tensors())


def test_select_reads_legacy_layer_norm_names() -> None:
    tensors = tiny_tensors()
    legacy = {
        name.replace("LayerNorm.weight", "LayerNorm.gamma").replace(
            "LayerNorm.bias", "LayerNorm.beta"
        ): value
        for name, value in tensors.items()
    }
    assert any(name.endswith(".gamma") for name in legacy)
    selected = select(legacy)
    for name, array in tensors.items():
        assert selected[name] is array


def test_select_converts_to_float32_c_contiguous() -> None:
    tensors = tiny_tensors()
    original = tensors[WORDS]
    tensors[WORDS] = original.astype(np.float64)
    tensors[QUERY] = np.asfortranarray(tensors[QUERY])
    tensors["embeddings.LayerNorm.bias"] = tensors["embeddings.LayerNorm.bias"].astype(np.float16)
    selected = select(tensors)
    for name, array in selected.items():
        assert array.dtype == np.float32 and array.flags.c_contiguous, name
    assert max_abs_diff("float64 -> float32", selected[WORDS], original) == 0.0
    assert max_abs_diff("Fortran -> C", selected[QUERY], tensors[QUERY]) == 0.0


def test_select_lists_every_problem_in_one_error() -> None:
    tensors = tiny_tensors("bert.")
    del tensors["bert." + QUERY]
    tensors["bert." + WORDS] = np.zeros((11, 7), np.float32)
    tensors["bert.encoder.layer.0.attention.self.rotary.weight"] = np.zeros(3, np.float32)
    message = assert_weights_error(
        lambda: select(tensors, "my-model.safetensors"),
        "my-model.safetensors",
        "3 problem(s)",
        f"missing tensor '{QUERY}' (expected [6, 6])",
        f"'bert.{WORDS}' has shape [11, 7], expected [11, 6]",
        "unexpected tensor 'bert.encoder.layer.0.attention.self.rotary.weight'",
    )
    assert message.count("\n  - ") == 3


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.uint16, np.complex64, np.bool_])
def test_select_refuses_non_float_dtypes(dtype: type[np.generic]) -> None:
    tensors = tiny_tensors()
    tensors[QUERY] = tensors[QUERY].astype(dtype)
    assert_weights_error(
        lambda: select(tensors), "model-file.bin", QUERY, np.dtype(dtype).name, "floating-point"
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_select_refuses_non_finite_weights(bad: float) -> None:
    tensors = tiny_tensors()
    tensors[QUERY][2, 3] = bad
    assert_weights_error(lambda: select(tensors), "model-file.bin", QUERY, "NaN or Inf")


def test_select_refuses_two_names_for_one_tensor() -> None:
    tensors = tiny_tensors()
    tensors["bert." + QUERY] = tensors[QUERY]
    assert_weights_error(lambda: select(tensors), "model-file.bin", f"'bert.{QUERY}'", "both")


# ---- malformed files ----------------------------------------------------------------------------


def test_truncated_npz(tmp_path: Path) -> None:
    good = tmp_path / "good.npz"
    save_npz(good, tiny_tensors())
    bad = tmp_path / "weights.npz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert_weights_error(lambda: read_tensors(bad), str(bad), "not an .npz archive")


def test_npz_with_corrupted_member(tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    save_npz(path, {WORDS: np.arange(1000, dtype=np.float32)})
    data = bytearray(path.read_bytes())
    data[1000:1060] = b"\xff" * 60  # inside the member's array data: the CRC no longer matches
    path.write_bytes(bytes(data))
    tensors = read_tensors(path)  # headers only: the data is read (and checked) on lookup
    assert_weights_error(lambda: tensors[WORDS], str(path), WORDS, "CRC")


def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    path.write_text("these are not the weights you are looking for")
    assert_weights_error(lambda: read_tensors(path), str(path), "not an .npz archive")


def test_npz_with_pickled_object_array(tmp_path: Path) -> None:
    path = tmp_path / "weights.npz"
    np.savez(path, **{WORDS: np.array([{"evil": "pickle"}], dtype=object)})  # np.savez pickles
    assert_weights_error(lambda: read_tensors(path), str(path), WORDS)


def test_truncated_npy(tmp_path: Path) -> None:
    directory = tmp_path / "weights"
    directory.mkdir()
    np.save(directory / f"{WORDS}.npy", np.zeros((100, 6), np.float32))
    file = directory / f"{WORDS}.npy"
    file.write_bytes(file.read_bytes()[:300])
    assert_weights_error(lambda: read_tensors(directory), str(file), WORDS)


def test_npy_with_object_array(tmp_path: Path) -> None:
    directory = tmp_path / "weights"
    directory.mkdir()
    np.save(directory / f"{QUERY}.npy", np.array([None, 1], dtype=object))
    assert_weights_error(lambda: read_tensors(directory), QUERY, str(directory))


def test_empty_npy_directory(tmp_path: Path) -> None:
    assert_weights_error(lambda: read_tensors(tmp_path), str(tmp_path), "no .npy")


GOOD_ENTRY = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}


@pytest.mark.parametrize(
    ("header", "data_size", "header_size", "fragments"),
    [
        ({"w": GOOD_ENTRY}, 24, 10**6, ["runs past the end"]),
        ({"w": GOOD_ENTRY}, 24, 2**63, ["exceeds the limit"]),
        ({"w": {**GOOD_ENTRY, "data_offsets": [0, 48]}}, 24, None, ["'w'", "outside the data"]),
        ({"w": {**GOOD_ENTRY, "data_offsets": [24, 0]}}, 24, None, ["'w'", "outside the data"]),
        ({"w": {**GOOD_ENTRY, "dtype": "F8_E4M3"}}, 24, None, ["'w'", "unsupported dtype"]),
        ({"w": {**GOOD_ENTRY, "shape": [2, 4]}}, 24, None, ["'w'", "needs 32 bytes"]),
        ({"w": {**GOOD_ENTRY, "shape": [2, -3]}}, 24, None, ["'w'", "non-negative integers"]),
        ({"w": {"dtype": "F32", "shape": [2]}}, 24, None, ["'w'", "data_offsets"]),
        ({"w": [1, 2]}, 24, None, ["'w'", "not a JSON object"]),
        (
            {"a": GOOD_ENTRY, "b": {**GOOD_ENTRY, "data_offsets": [12, 36]}},
            36,
            None,
            ["'a'", "'b'", "overlap"],
        ),
    ],
    ids=[
        "header-past-end",
        "huge-header",
        "offsets-past-data",
        "offsets-reversed",
        "unknown-dtype",
        "shape-size-mismatch",
        "negative-shape",
        "no-offsets",
        "entry-not-object",
        "overlapping",
    ],
)
def test_safetensors_header_lies(
    tmp_path: Path,
    header: dict[str, Any],
    data_size: int,
    header_size: int | None,
    fragments: list[str],
) -> None:
    path = tmp_path / "model.safetensors"
    write_safetensors(path, header, bytes(data_size), header_size)
    assert_weights_error(lambda: read_tensors(path), str(path), *fragments)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\x05\x00", "too short"),
        (struct.pack("<Q", 7) + b"{nope!}", "not valid JSON"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    ],
    ids=["too-short", "not-json", "not-object"],
)
def test_safetensors_not_a_header(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    assert_weights_error(lambda: read_tensors(path), str(path), fragment)


def test_truncated_safetensors(tmp_path: Path) -> None:
    good = tmp_path / "good.safetensors"
    to_safetensors(good, tiny_tensors())
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(good.read_bytes()[:-10])
    last = list(EXPECTED)[-1]
    assert_weights_error(lambda: read_tensors(bad), str(bad), f"'{last}'", "outside the data")


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    assert_weights_error(lambda: read_tensors(tmp_path / "nothing.npz"), "nothing.npz", "no such")
    other = tmp_path / "weights.h5"
    other.write_bytes(b"\0" * 16)
    assert_weights_error(lambda: read_tensors(other), str(other), "unknown weights format")


def _rss_file_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssFile:"):
                return int(line.split()[1])
    return -1


def test_release_pages_drops_mapped_pages_and_keeps_the_data(tmp_path: Path) -> None:
    """Loading hands each memory-mapped tensor back to the kernel once Rust has copied it."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc")
    big = np.arange(8 * 2**20 // 4, dtype=np.float32).reshape(2048, -1)  # 8 MiB
    path = tmp_path / "big.npy"
    np.save(path, big)
    mapped = np.load(path, mmap_mode="r")
    before = _rss_file_kib()
    assert float(mapped.sum(dtype=np.float64)) == float(big.sum(dtype=np.float64))
    touched = _rss_file_kib()
    release_pages(mapped)
    released = _rss_file_kib()
    print(f"RssFile: {before} KiB, after reading {touched} KiB, after release {released} KiB")
    assert touched - before > 6 * 1024
    assert touched - released > 6 * 1024
    np.testing.assert_array_equal(mapped, big)  # read again from the file
    in_memory = big.copy()
    release_pages(in_memory)  # not file-backed: left alone
    np.testing.assert_array_equal(in_memory, big)


# ---- lazy reading: headers first, data on lookup (issue 18) ------------------------------------


def npy_bytes(array: npt.NDArray[Any]) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_npz_members_are_read_only_when_looked_up(tmp_path: Path) -> None:
    """An unused member is never decompressed: here one whose CRC does not match its data
    loads with the model (zipfile checks the CRC once all the data is decompressed), and fails
    only when it is asked for."""
    path = tmp_path / "weights.npz"
    tensors = tiny_tensors()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in tensors.items():
            archive.writestr(name + ".npy", npy_bytes(array))
        archive.writestr("cls.predictions.bias.npy", npy_bytes(np.ones(50_000, np.float32)))
    with zipfile.ZipFile(path) as archive:
        crc = archive.getinfo("cls.predictions.bias.npy").CRC
    data = path.read_bytes()
    assert data.count(struct.pack("<I", crc)) == 2  # the local header and the central directory
    path.write_bytes(data.replace(struct.pack("<I", crc), struct.pack("<I", crc ^ 0xFFFFFFFF)))

    lazy = read_tensors(path)
    assert lazy.spec("cls.predictions.bias").shape == (50_000,)
    selected = select(lazy)  # reads exactly the expected tensors
    for name, array in tensors.items():
        assert selected[name].tobytes() == array.tobytes()
    assert_weights_error(
        lambda: read_tensors(path)["cls.predictions.bias"], str(path), "'cls.predictions.bias'"
    )


def test_npz_member_declaring_more_data_than_it_holds(tmp_path: Path) -> None:
    """A header declaring (10**12,) floats is refused from the header, before any allocation."""
    path = tmp_path / "weights.npz"
    header = npy_bytes(np.zeros(4, np.float32))
    huge = header.replace(b"(4,)", b"(1000000000000,)")
    fixed = huge[:10] + huge[10:].replace(b" " * 12, b"", 1)  # keep the header length
    assert np.lib.format.read_magic(__import__("io").BytesIO(fixed)) == (1, 0)
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in tiny_tensors().items():
            archive.writestr(name + ".npy", npy_bytes(array))
        archive.writestr("extra.npy", fixed)
    assert_weights_error(
        lambda: read_tensors(path), str(path), "'extra.npy'", "(1000000000000,)", "16 bytes"
    )


def test_safetensors_absurd_shape_and_deep_header_are_weights_errors(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    header = {"w": {"dtype": "F32", "shape": [0, 2**62], "data_offsets": [0, 0]}}
    write_safetensors(path, header, b"")
    assert_weights_error(lambda: read_tensors(path), str(path), "'w'", "too large")
    deep = b"[" * 200_000 + b"]" * 200_000
    path.write_bytes(struct.pack("<Q", len(deep)) + deep)
    assert_weights_error(lambda: read_tensors(path), str(path), "nested too deeply")
