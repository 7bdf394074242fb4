"""Weights from NumPy files: ``.npz``, a directory of ``.npy``, or an HF ``model.safetensors``.

Only numpy is needed: safetensors files are parsed by hand (an 8-byte little-endian header
length, a JSON header, then the data section) and memory-mapped, as are ``.npy`` files.
Every error names the file, and the tensor when there is one.

Reading (:func:`read_tensors`) returns the tensors as stored, under their stored names.
:func:`select_encoder_tensors` then checks them by HF name against the shapes the encoder
expects and returns exactly those, as float32 C-contiguous arrays.
"""

from __future__ import annotations

import ctypes
import json
import math
import mmap
import os
import sys
import zipfile
import zlib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from oxiformer.errors import WeightsError
from oxiformer.families import (
    base_prefixes,
    canonical_tensor_name,
    encoder_family,
    encoder_namespaces,
)

__all__ = [
    "find_weights",
    "has_pooler",
    "read_tensors",
    "release_pages",
    "save_npz",
    "select_encoder_tensors",
]

PathLike = Union[str, "os.PathLike[str]"]

#: File names :func:`find_weights` looks for, most preferred first.
WEIGHT_CANDIDATES = ("weights.npz", "model.safetensors", "weights/")

#: Largest safetensors header accepted (the safetensors crate's own limit).
MAX_SAFETENSORS_HEADER = 100_000_000

# safetensors dtype -> numpy dtype as stored (little-endian). BF16 is read as uint16 bits.
_SAFETENSORS_DTYPES: dict[str, np.dtype[Any]] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}


def read_tensors(path: PathLike) -> dict[str, npt.NDArray[Any]]:
    """Read every tensor of a weights file, by stored name.

    ``path`` is a ``.npz`` archive (read without pickles), a directory of ``.npy`` files
    (memory-mapped; the name is the file stem) or a ``.safetensors`` file (memory-mapped;
    F16 and BF16 upcast to float32, other dtypes returned as stored).
    """
    path = Path(path)
    if path.is_dir():
        return _read_npy_dir(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        if path.suffix == ".npz":
            return _read_npz(path)
        if path.suffix == ".safetensors":
            return _read_safetensors(path)
    except OSError as err:
        raise WeightsError(f"{path}: cannot read weights ({err})") from err
    raise WeightsError(
        f"{path}: unknown weights format (expected .npz, .safetensors or a directory of .npy)"
    )


def find_weights(model_dir: PathLike) -> Path:
    """The weights of a model directory: ``weights.npz``, ``model.safetensors`` or ``weights/``."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise WeightsError(f"{model_dir}: not a model directory")
    npz, safetensors, npy_dir = (model_dir / name for name in WEIGHT_CANDIDATES)
    if npz.is_file():
        return npz
    if safetensors.is_file():
        return safetensors
    if npy_dir.is_dir():
        return npy_dir
    raise WeightsError(f"{model_dir}: no weights found (looked for {', '.join(WEIGHT_CANDIDATES)})")


def save_npz(path: PathLike, tensors: Mapping[str, npt.ArrayLike]) -> None:
    """Write ``tensors`` to a plain (uncompressed, pickle-free) ``.npz`` archive at ``path``.

    The archive is written next to ``path`` and renamed into place, so a failed write never
    leaves a half-written ``path``. Object arrays are refused (:class:`WeightsError`).
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, value in tensors.items():
                array = np.asanyarray(value)
                if array.dtype.hasobject:
                    raise WeightsError(f"{path}: tensor '{name}' holds Python objects")
                with zf.open(name + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def release_pages(array: npt.NDArray[Any]) -> None:
    """Drop the resident pages of ``array`` when it is a view of a read-only memory-mapped
    file (as :func:`read_tensors` returns for safetensors and ``.npy`` files): the data stays
    valid and is read again from the file if touched. Loading calls this once the Rust core
    holds its own copy, so that the file's pages and the copy are not resident together (peak
    RSS). A no-op for any other array, and off Linux."""
    base: Any = array
    while base is not None and not isinstance(base, np.memmap):
        base = base.base if isinstance(base, np.ndarray) else None
    if base is None or base.mode != "r" or _LIBC is None or array.nbytes == 0:
        return
    start = array.__array_interface__["data"][0]
    first = -(-start // _PAGE) * _PAGE  # whole pages inside the array only
    last = (start + array.nbytes) // _PAGE * _PAGE
    if last > first:
        _LIBC.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), _MADV_DONTNEED)


def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.madvise.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()
_PAGE = mmap.PAGESIZE
_MADV_DONTNEED = 4  # Linux


def has_pooler(tensors: Mapping[str, object]) -> bool:
    """Whether the checkpoint has a pooler (``pooler.dense.weight``, ``bert.`` prefix or not)."""
    return any(_strip_prefix(name) == _POOLER_WEIGHT for name in tensors)


def select_encoder_tensors(
    tensors: Mapping[str, npt.NDArray[Any]],
    expected: Mapping[str, tuple[int, ...]],
    source: str,
    int8: Collection[str] = (),
) -> dict[str, npt.NDArray[Any]]:
    """Check ``tensors`` against the ``expected`` HF names and shapes; return exactly those.

    Tensors named in ``int8`` are quantized weights: they must be int8 and are returned as
    int8 C-contiguous arrays; ``*.outlier_index`` tensors are channel indices, returned as
    int64 (every other tensor is float, converted to float32).

    - Stored names are read under their BERT names (the core's family table): a leading
      ``bert.`` (``distilbert.``, ``electra.``) is stripped; ``LayerNorm.gamma`` / ``.beta``
      (TF-converted checkpoints) are read as ``LayerNorm.weight`` / ``.bias``; DistilBERT's
      ``transformer.layer.{i}`` modules are read under BERT's names.
    - Skipped, not errors: heads the encoder does not use (everything outside the encoder's
      namespaces ``embeddings.``, ``encoder.``, ``pooler.``, ``transformer.``,
      ``embeddings_project.``: ``classifier.*``, ``cls.*``, ``qa_outputs.*``),
      ``pooler.*`` when no pooler is expected, buffers ``*.position_ids``, and a stored
      ``embeddings.position_embeddings.weight`` when positions are computed (sinusoidal).
    - Errors: a missing expected tensor, a wrong shape, a non-float dtype (int, bool, complex,
      object...), an unexpected tensor inside the encoder's namespaces, two stored names for
      one tensor, and NaN or Inf values. Non-finite weights are refused because they can only
      poison every output; checking costs one pass over the weights at load time.

    All problems are listed in one :class:`WeightsError` naming ``source`` and each tensor.
    The arrays returned are float32 and C-contiguous (and aligned): float32 C-contiguous
    inputs, memory maps included, are returned without a copy.
    """
    found: dict[str, tuple[str, npt.NDArray[Any]]] = {}
    problems: list[str] = []
    for stored_name, array in tensors.items():
        name = _canonical_name(stored_name)
        if name in expected:
            if name in found:
                problems.append(f"'{stored_name}' and '{found[name][0]}' are both tensor '{name}'")
            else:
                found[name] = (stored_name, array)
        elif not _is_skipped(name) and name.startswith(encoder_namespaces()):
            problems.append(f"unexpected tensor '{stored_name}' {_shape(array.shape)}")

    selected: dict[str, npt.NDArray[Any]] = {}
    int8_names = set(int8)
    for name, shape in expected.items():
        if name not in found:
            problems.append(f"missing tensor '{name}' (expected {_shape(shape)})")
            continue
        stored_name, array = found[name]
        if tuple(array.shape) != tuple(shape):
            problems.append(
                f"tensor '{stored_name}' has shape {_shape(array.shape)}, expected {_shape(shape)}"
            )
        elif name in int8_names:
            if array.dtype != np.int8:
                problems.append(
                    f"tensor '{stored_name}' has dtype {array.dtype}, expected int8 "
                    "(a quantized weight)"
                )
            else:
                selected[name] = np.require(array, requirements=["C", "A"])
        elif name.endswith(".outlier_index"):
            if array.dtype.kind not in "iu":
                problems.append(
                    f"tensor '{stored_name}' has dtype {array.dtype}, expected integer channel "
                    "indices"
                )
            else:
                selected[name] = np.ascontiguousarray(array, dtype=np.int64)
        elif array.dtype.kind != "f":
            problems.append(
                f"tensor '{stored_name}' has dtype {array.dtype}, expected a floating-point dtype"
            )
        elif not np.isfinite(array).all():
            problems.append(f"tensor '{stored_name}' contains NaN or Inf")
        else:
            converted = np.require(array, dtype=np.float32, requirements=["C", "A"])
            selected[name] = converted
    if problems:
        listing = "".join(f"\n  - {problem}" for problem in problems)
        raise WeightsError(f"{source}: {len(problems)} problem(s) with the weights:{listing}")
    return selected


def _strip_prefix(name: str) -> str:
    for prefix in base_prefixes():
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _canonical_name(stored_name: str) -> str:
    """The BERT name of a stored tensor (the core's family table)."""
    return canonical_tensor_name(stored_name)


_BERT = encoder_family({"model_type": "bert"})
_POOLER_WEIGHT = f"{_BERT['pooler']}.weight"
_POSITIONS_WEIGHT = f"{_BERT['embeddings']['position']}.weight"


def _is_skipped(name: str) -> bool:
    return (
        name.endswith("position_ids")
        or name.startswith(_BERT["pooler"].split(".")[0] + ".")
        or name == _POSITIONS_WEIGHT
    )


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(size) for size in shape) + "]"


def _read_npz(path: Path) -> dict[str, npt.NDArray[Any]]:
    if not zipfile.is_zipfile(path):  # else np.load would try it as a .npy, then as a pickle
        raise WeightsError(f"{path}: not an .npz archive (not a zip file; truncated?)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise WeightsError(f"{path}: not a readable .npz archive ({err})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise WeightsError(f"{path}: not an .npz archive (it holds a single .npy array)")
    tensors: dict[str, npt.NDArray[Any]] = {}
    with archive:
        for name in archive.files:
            try:
                value = archive[name]
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
                raise WeightsError(f"{path}: cannot read tensor '{name}' ({err})") from err
            if not isinstance(value, np.ndarray):
                raise WeightsError(f"{path}: member '{name}' is not a .npy array")
            tensors[name] = value
    return tensors


def _read_npy_dir(directory: Path) -> dict[str, npt.NDArray[Any]]:
    files = sorted(directory.glob("*.npy"))
    if not files:
        raise WeightsError(f"{directory}: directory holds no .npy files")
    tensors: dict[str, npt.NDArray[Any]] = {}
    for file in files:
        try:
            array = np.load(file, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise WeightsError(f"{file}: cannot read tensor '{file.stem}' ({err})") from err
        tensors[file.stem] = array
    return tensors


def _read_safetensors(path: Path) -> dict[str, npt.NDArray[Any]]:
    file_size = path.stat().st_size
    with path.open("rb") as file:
        prefix = file.read(8)
        if len(prefix) < 8:
            raise WeightsError(f"{path}: too short to be a safetensors file ({file_size} bytes)")
        header_size = int.from_bytes(prefix, "little")
        if header_size > MAX_SAFETENSORS_HEADER:
            raise WeightsError(
                f"{path}: safetensors header length {header_size} exceeds the limit "
                f"{MAX_SAFETENSORS_HEADER} (not a safetensors file?)"
            )
        if 8 + header_size > file_size:
            raise WeightsError(
                f"{path}: safetensors header length {header_size} runs past the end of the "
                f"file ({file_size} bytes; truncated?)"
            )
        header_bytes = file.read(header_size)
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(f"{path}: safetensors header is not valid JSON ({err})") from err
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: safetensors header is not a JSON object")
    header.pop("__metadata__", None)

    data_size = file_size - 8 - header_size
    layout = {name: _tensor_layout(path, name, entry, data_size) for name, entry in header.items()}
    _check_no_overlap(path, layout)

    if data_size > 0:
        data: npt.NDArray[np.uint8] = np.memmap(
            path, dtype=np.uint8, mode="r", offset=8 + header_size, shape=(data_size,)
        )
    else:
        data = np.zeros(0, dtype=np.uint8)
    tensors: dict[str, npt.NDArray[Any]] = {}
    for name, (dtype_name, shape, begin, end) in layout.items():
        raw = data[begin:end].view(_SAFETENSORS_DTYPES[dtype_name]).reshape(shape)
        if dtype_name == "BF16":
            # bfloat16 is the top half of a float32: shift the bits into place.
            tensors[name] = (raw.astype(np.uint32) << 16).view(np.float32)
        elif dtype_name == "F16":
            tensors[name] = raw.astype(np.float32)
        else:
            tensors[name] = raw
    return tensors


def _tensor_layout(
    path: Path, name: str, entry: object, data_size: int
) -> tuple[str, tuple[int, ...], int, int]:
    """Validate one header entry: (dtype name, shape, begin, end) within the data section."""

    def fail(message: str) -> WeightsError:
        return WeightsError(f"{path}: tensor '{name}': {message}")

    if not isinstance(entry, dict):
        raise fail("header entry is not a JSON object")
    dtype_name = entry.get("dtype")
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if dtype_name not in _SAFETENSORS_DTYPES:
        known = ", ".join(_SAFETENSORS_DTYPES)
        raise fail(f"unsupported dtype {dtype_name!r} (supported: {known})")
    if not (isinstance(shape, list) and all(_is_count(size) for size in shape)):
        raise fail(f"shape {shape!r} is not a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
        raise fail(f"data_offsets {offsets!r} is not a pair of non-negative integers")
    begin, end = offsets
    if not begin <= end <= data_size:
        raise fail(
            f"data_offsets [{begin}, {end}] lie outside the data section ({data_size} bytes)"
        )
    expected_bytes = math.prod(shape) * _SAFETENSORS_DTYPES[dtype_name].itemsize
    if end - begin != expected_bytes:
        raise fail(
            f"shape {_shape(tuple(shape))} of {dtype_name} needs {expected_bytes} bytes, "
            f"data_offsets [{begin}, {end}] hold {end - begin}"
        )
    return dtype_name, tuple(shape), begin, end


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_no_overlap(
    path: Path, layout: Mapping[str, tuple[str, tuple[int, ...], int, int]]
) -> None:
    spans = sorted((begin, end, name) for name, (_, _, begin, end) in layout.items() if end > begin)
    for (_, previous_end, previous), (begin, _, name) in zip(spans, spans[1:]):
        if begin < previous_end:
            raise WeightsError(f"{path}: tensors '{previous}' and '{name}' overlap in the data")
