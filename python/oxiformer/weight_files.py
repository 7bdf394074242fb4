"""Weight files read lazily: every header first, data only for the tensors looked up.

:func:`read_tensors` opens an ``.npz`` archive, a directory of ``.npy`` files, an HF
``model.safetensors`` or a PyTorch ``pytorch_model.bin`` (or the index of a checkpoint sharded
over several of these) and returns a :class:`TensorFile`, a
read-only mapping ``{stored name: array}``. Opening reads and checks the headers only: names,
dtypes (no Python objects: no pickle is loaded, except a PyTorch checkpoint's, by an unpickler
that knows tensors only), shapes, and that the bytes each header declares are in the file. An
array is read (an ``.npz`` member decompressed) or memory-mapped (``.npy``, safetensors,
PyTorch) when it is looked up, so an unused member costs nothing, and a header that declares
more data than the file holds is a :class:`WeightsError` before anything is allocated. Only
regular files are opened (``oxiformer._files``): a FIFO or a device in place of a weight file
is refused."""

from __future__ import annotations

import contextlib
import json
import math
import os
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from oxiformer._files import check_regular, open_regular
from oxiformer._types import PathLike
from oxiformer.errors import WeightsError
from oxiformer.sharded_weights import is_index, open_sharded, shard_paths
from oxiformer.torch_checkpoint import TORCH_SUFFIXES, open_checkpoint

__all__ = [
    "MAX_SAFETENSORS_HEADER",
    "TensorFile",
    "TensorSpec",
    "check_unchanged",
    "file_stamp",
    "read_tensors",
]


#: Largest safetensors header accepted (the safetensors crate's own limit).
MAX_SAFETENSORS_HEADER = 100_000_000

#: Largest array size numpy can index, in bytes.
_MAX_BYTES = np.iinfo(np.intp).max

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

_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, RecursionError)


@dataclass(frozen=True)
class TensorSpec:
    """What a header says about one tensor (``dtype`` as returned: half floats as float32)."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]


class TensorFile(Mapping[str, npt.NDArray[Any]]):
    """The tensors of one weights file, by stored name, read when looked up (then kept)."""

    def __init__(
        self,
        path: Path,
        specs: Mapping[str, TensorSpec],
        load: Callable[[str], npt.NDArray[Any]],
    ) -> None:
        self.path = path
        self._specs = dict(specs)
        self._load = load
        self._loaded: dict[str, npt.NDArray[Any]] = {}

    def spec(self, name: str) -> TensorSpec:
        return self._specs[name]

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        if name not in self._specs:
            raise KeyError(name)
        if name not in self._loaded:
            try:
                self._loaded[name] = self._load(name)
            except MemoryError:
                spec = self._specs[name]
                size = math.prod(spec.shape) * spec.dtype.itemsize
                raise WeightsError(
                    f"{self.path}: not enough memory to read tensor '{name}' ({size} bytes)"
                ) from None
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"TensorFile({str(self.path)!r}, {len(self)} tensors)"


def read_tensors(path: PathLike) -> TensorFile:
    """The tensors of a weights file, by stored name (headers read and checked, data not yet).

    ``path`` is a ``.npz`` archive (read without pickles), a directory of ``.npy`` files
    (memory-mapped; the name is the file stem), a ``.safetensors`` file (memory-mapped;
    F16 and BF16 upcast to float32, other dtypes returned as stored) or a PyTorch checkpoint
    (``.bin``, ``.pt``, ``.pth``: :mod:`oxiformer.torch_checkpoint`, the same), or the
    ``*.index.json`` of a checkpoint sharded over several such files
    (:mod:`oxiformer.sharded_weights`).
    """
    path = Path(path)
    if path.is_dir():
        return _open_npy_dir(path)
    if is_index(path):
        shards = open_sharded(path, read_tensors)
        merged = {name: shard.spec(name) for name, shard in shards.items()}
        return TensorFile(path, merged, lambda name: shards[name][name])
    if path.suffix not in (".npz", ".safetensors", *TORCH_SUFFIXES):
        check_regular(path, WeightsError)
        raise WeightsError(
            f"{path}: unknown weights format (expected .npz, .safetensors, a PyTorch "
            "checkpoint (.bin, .pt, .pth) or a directory of .npy)"
        )
    try:
        if path.suffix == ".npz":
            return _open_npz(path)
        if path.suffix in TORCH_SUFFIXES:
            specs, load = open_checkpoint(path)
            return TensorFile(path, {name: TensorSpec(*spec) for name, spec in specs.items()}, load)
        return _open_safetensors(path)
    except OSError as err:
        raise WeightsError(f"{path}: cannot read weights ({err})") from err


def file_stamp(path: PathLike) -> tuple[Any, ...]:
    """What changes when a weights file (or a ``.npy`` directory's files, or a sharded
    checkpoint's index and shards) is rewritten: device, inode, size and modification time of
    each file."""
    path = Path(path)
    files = sorted(path.glob("*.npy")) if path.is_dir() else [path]
    if is_index(path):
        # an index that no longer reads differs from the stamp already
        with contextlib.suppress(WeightsError):
            files += sorted(set(shard_paths(path).values()))
    stamps: list[tuple[Any, ...]] = []
    for file in files:
        try:
            info = os.stat(file)
        except OSError:
            stamps.append((str(file), None))
            continue
        stamps.append((str(file), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(stamps)


def check_unchanged(path: PathLike, stamp: tuple[Any, ...] | None, what: str) -> None:
    """Raise a :class:`WeightsError` unless ``path`` still has the ``stamp`` it had when a
    model was loaded from it (None: never loaded), so that ``what`` (``"its tensors"``) can be
    read from it again."""
    if stamp is None or file_stamp(path) != stamp:
        raise WeightsError(
            f"{path}: the weights file changed (or is gone) since this model was loaded, so "
            f"{what} cannot be read again; load the model again"
        )


# ---- .npy headers ------------------------------------------------------------------------------


def _npy_header(stream: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """(shape, fortran order, dtype) from the header of a ``.npy`` stream, left just after it."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
    return tuple(shape), bool(fortran), dtype


def _checked_spec(
    where: str, shape: tuple[int, ...], dtype: np.dtype[Any], data_bytes: int
) -> TensorSpec:
    """The spec of a ``.npy`` array whose data part holds ``data_bytes`` bytes."""
    if dtype.hasobject:
        raise WeightsError(f"{where} holds Python objects (pickles are never loaded)")
    if not all(isinstance(size, int) and size >= 0 for size in shape):
        raise WeightsError(f"{where}: shape {shape} is not a list of sizes")
    needed = math.prod(shape) * dtype.itemsize
    if math.prod(size for size in shape if size) * dtype.itemsize > _MAX_BYTES:
        raise WeightsError(f"{where}: shape {shape} is too large for an array")
    if needed != data_bytes:
        raise WeightsError(
            f"{where}: its header declares shape {shape} of {dtype} ({needed} bytes), "
            f"the file holds {data_bytes} bytes of data (truncated or corrupt?)"
        )
    return TensorSpec(shape, dtype)


def _read_into(stream: IO[bytes], spec: TensorSpec, fortran: bool) -> npt.NDArray[Any]:
    count = math.prod(spec.shape)
    array = np.empty(count, dtype=spec.dtype)
    view = array.reshape(-1).view(np.uint8).data
    done = 0
    while done < len(view):
        got = stream.readinto(view[done : done + (16 << 20)])  # type: ignore[attr-defined]
        if not got:
            raise EOFError(f"the data ends after {done} of {len(view)} bytes")
        done += got
    shaped: npt.NDArray[Any] = (
        array.reshape(spec.shape[::-1]).transpose() if fortran else array.reshape(spec.shape)
    )
    return shaped


# ---- .npz ------------------------------------------------------------------------------------


def _open_npz(path: Path) -> TensorFile:
    specs: dict[str, TensorSpec] = {}
    members: dict[str, tuple[str, bool]] = {}
    with open_regular(path, WeightsError) as handle:
        # else np.load would try it as a .npy, then as a pickle
        if not zipfile.is_zipfile(handle):
            raise WeightsError(f"{path}: not an .npz archive (not a zip file; truncated?)")
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, ValueError, EOFError) as err:
            raise WeightsError(f"{path}: not a readable .npz archive ({err})") from err
        with archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                name = info.filename.removesuffix(".npy")
                where = f"{path}: member '{info.filename}'"
                if not info.filename.endswith(".npy"):
                    raise WeightsError(f"{where} is not a .npy array")
                if name in specs:
                    raise WeightsError(f"{where} appears twice")
                try:
                    with archive.open(info) as member:
                        shape, fortran, dtype = _npy_header(member)
                        header_bytes = member.tell()
                except _READ_ERRORS as err:
                    raise WeightsError(f"{path}: cannot read tensor '{name}' ({err})") from err
                specs[name] = _checked_spec(where, shape, dtype, info.file_size - header_bytes)
                members[name] = (info.filename, fortran)

    def load(name: str) -> npt.NDArray[Any]:
        member_name, fortran = members[name]
        try:
            handle = open_regular(path, WeightsError)
            with handle, zipfile.ZipFile(handle) as archive, archive.open(member_name) as member:
                _npy_header(member)
                array = _read_into(member, specs[name], fortran)
                if member.read(1):  # also what makes zipfile check the CRC
                    raise ValueError("more data than its header declares")
        except _READ_ERRORS as err:
            raise WeightsError(f"{path}: cannot read tensor '{name}' ({err})") from err
        return array

    return TensorFile(path, specs, load)


# ---- a directory of .npy ---------------------------------------------------------------------


def _open_npy_dir(directory: Path) -> TensorFile:
    files = sorted(directory.glob("*.npy"))
    if not files:
        raise WeightsError(f"{directory}: directory holds no .npy files")
    specs: dict[str, TensorSpec] = {}
    layout: dict[str, tuple[Path, int, bool]] = {}
    for file in files:
        where = f"{file}: tensor '{file.stem}'"
        with open_regular(file, WeightsError) as handle:
            try:
                shape, fortran, dtype = _npy_header(handle)
            except _READ_ERRORS as err:
                raise WeightsError(f"{where}: cannot read ({err})") from err
            header_bytes = handle.tell()
            file_bytes = os.fstat(handle.fileno()).st_size
        specs[file.stem] = _checked_spec(where, shape, dtype, file_bytes - header_bytes)
        layout[file.stem] = (file, header_bytes, fortran)

    def load(name: str) -> npt.NDArray[Any]:
        file, offset, fortran = layout[name]
        spec = specs[name]
        if math.prod(spec.shape) == 0:
            return np.empty(spec.shape, spec.dtype, order="F" if fortran else "C")
        with open_regular(file, WeightsError) as handle:
            try:
                return np.memmap(
                    handle,
                    dtype=spec.dtype,
                    mode="r",
                    offset=offset,
                    shape=spec.shape,
                    order="F" if fortran else "C",
                )
            except _READ_ERRORS as err:
                raise WeightsError(f"{file}: cannot read tensor '{name}' ({err})") from err

    return TensorFile(directory, specs, load)


# ---- safetensors -----------------------------------------------------------------------------


def _open_safetensors(path: Path) -> TensorFile:
    with open_regular(path, WeightsError) as file:
        file_size = os.fstat(file.fileno()).st_size
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
    except RecursionError as err:
        raise WeightsError(f"{path}: safetensors header is nested too deeply") from err
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: safetensors header is not a JSON object")
    header.pop("__metadata__", None)

    data_size = file_size - 8 - header_size
    layout = {name: _tensor_layout(path, name, entry, data_size) for name, entry in header.items()}
    _check_no_overlap(path, layout)
    specs = {
        name: TensorSpec(shape, np.dtype(np.float32) if kind in ("F16", "BF16") else dtype)
        for name, (kind, shape, _, _) in layout.items()
        for dtype in [_SAFETENSORS_DTYPES[kind]]
    }
    mapped: list[npt.NDArray[np.uint8]] = []

    def data() -> npt.NDArray[np.uint8]:
        """The data section, memory-mapped once for every tensor."""
        if not mapped:
            if data_size == 0:
                mapped.append(np.zeros(0, dtype=np.uint8))
            else:
                with open_regular(path, WeightsError) as handle:
                    mapped.append(
                        np.memmap(
                            handle,
                            dtype=np.uint8,
                            mode="r",
                            offset=8 + header_size,
                            shape=(data_size,),
                        )
                    )
        return mapped[0]

    def load(name: str) -> npt.NDArray[Any]:
        kind, shape, begin, end = layout[name]
        raw = data()[begin:end].view(_SAFETENSORS_DTYPES[kind]).reshape(shape)
        if kind == "BF16":
            # bfloat16 is the top half of a float32: shift the bits into place.
            return (raw.astype(np.uint32) << 16).view(np.float32)
        if kind == "F16":
            return raw.astype(np.float32)
        return raw

    return TensorFile(path, specs, load)


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
    itemsize = _SAFETENSORS_DTYPES[dtype_name].itemsize
    if math.prod(size for size in shape if size) * max(itemsize, 4) > _MAX_BYTES:
        raise fail(f"shape {_shape(shape)} is too large for an array")
    expected_bytes = math.prod(shape) * itemsize
    if end - begin != expected_bytes:
        raise fail(
            f"shape {_shape(shape)} of {dtype_name} needs {expected_bytes} bytes, "
            f"data_offsets [{begin}, {end}] hold {end - begin}"
        )
    return dtype_name, tuple(shape), begin, end


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _shape(shape: list[int] | tuple[int, ...]) -> str:
    return "[" + ", ".join(str(size) for size in shape) + "]"


def _check_no_overlap(
    path: Path, layout: Mapping[str, tuple[str, tuple[int, ...], int, int]]
) -> None:
    spans = sorted((begin, end, name) for name, (_, _, begin, end) in layout.items() if end > begin)
    for (_, previous_end, previous), (begin, _, name) in zip(spans, spans[1:]):
        if begin < previous_end:
            raise WeightsError(f"{path}: tensors '{previous}' and '{name}' overlap in the data")
