"""PyTorch checkpoints (``pytorch_model.bin``, ``.pt``, ``.pth``) read with numpy alone.

``torch.save`` (torch 1.6 and later) writes a zip archive with one top folder: ``data.pkl``, a
pickle of the saved object in which each tensor is a call of
``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and each storage a
persistent id ``("storage", torch.FloatStorage, key, location, numel)``; ``data/<key>``, each
storage's bytes (stored uncompressed); ``byteorder``, ``little`` or ``big``. Before 1.6 (and
with ``_use_new_zipfile_serialization=False``) it wrote the legacy format: pickles one after
the other (a magic number, the protocol 1001, the system's sizes, the object, the list of
storage keys), then each storage as an 8-byte little-endian element count and its bytes, in
that list's order, little-endian.

The pickle is read by an unpickler that knows only those names, ``_rebuild_parameter`` and
``collections.OrderedDict``: any other global in it (``os.system``, a model class) is refused
before it can be called, as ``torch.load(weights_only=True)`` refuses it. So reading a
checkpoint runs no code from it. The top-level object must be a dict (a ``state_dict``); its
tensor values are the tensors, by key. Storages are memory-mapped, and a tensor is read when it
is looked up: half-precision storages are upcast to float32, other dtypes returned as stored.
Every storage's size and every tensor's extent are checked against the file when it is
opened. TorchScript archives and the tar format of torch before 0.4 are refused.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer._files import open_regular
from oxiformer.errors import WeightsError

__all__ = ["TORCH_SUFFIXES", "open_checkpoint"]

#: File suffixes read as PyTorch checkpoints.
TORCH_SUFFIXES = (".bin", ".pt", ".pth")

#: Largest ``data.pkl`` read (a state dict's holds names and shapes only: some KB).
MAX_PICKLE_BYTES = 64 << 20

# Storage classes -> numpy dtype as stored (little-endian; BFloat16 read as uint16 bits).
_STORAGES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
_HALF = ("HalfStorage", "BFloat16Storage")

# The start of a legacy (torch < 1.6) file: pickle protocol 2, then the magic number as a long.
_LEGACY_MAGIC = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)[2:]
_LEGACY_PROTOCOL = 1001
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... name length, extra length
_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, RecursionError)


@dataclass(frozen=True)
class _StorageClass:
    """What ``torch.FloatStorage`` and its kin unpickle to."""

    name: str


@dataclass(frozen=True)
class _Storage:
    kind: str
    key: str
    numel: int


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _rebuild_tensor(
    storage: object, offset: object, size: object, stride: object, *_: object
) -> _Tensor:
    """``torch._utils._rebuild_tensor_v2``: a tensor's place in its storage, checked."""
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"a tensor's storage is {type(storage).__name__}")
    if not (
        isinstance(offset, int)
        and _is_count(offset)
        and isinstance(size, tuple)
        and isinstance(stride, tuple)
        and all(map(_is_count, size + stride))
        and len(size) == len(stride)
    ):
        raise pickle.UnpicklingError(
            f"a tensor has offset {offset!r:.40}, size {size!r:.80}, stride {stride!r:.80} "
            "(expected non-negative integers, as many strides as sizes)"
        )
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data: object, *_: object) -> object:
    """``torch._utils._rebuild_parameter``: an ``nn.Parameter`` is its tensor here."""
    return data


class _Unpickler(pickle.Unpickler):
    """Knows tensors, storages and ``OrderedDict``; refuses every other global. Keeps each
    storage it meets, by key."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name in (
            "_rebuild_parameter",
            "_rebuild_parameter_with_state",
        ):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGES:
            return _StorageClass(name)
        if module == "torch" and name.endswith("Storage"):
            raise pickle.UnpicklingError(
                f"holds a torch.{name}, a dtype oxiformer does not read "
                f"(supported: {', '.join(_STORAGES)})"
            )
        raise pickle.UnpicklingError(
            f"holds a pickled {module}.{name}, which oxiformer does not load (it reads "
            "tensors in dicts only, and runs no code from a checkpoint)"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        # zip: (storage, class, key, location, numel); legacy: the same and a view's place
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.80}")
        kind, key, numel = pid[1], pid[2], pid[4]
        if not (isinstance(kind, _StorageClass) and isinstance(key, str) and _is_count(numel)):
            raise pickle.UnpicklingError(f"malformed storage id {pid!r:.80}")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError(
                f"storage '{key}' is a view of another storage (torch before 1.0), which "
                "oxiformer does not read"
            )
        storage = _Storage(kind.name, key, numel)
        if self.storages.setdefault(key, storage) != storage:
            raise pickle.UnpicklingError(f"storage '{key}' is declared twice, differently")
        return storage


@dataclass(frozen=True)
class _Layout:
    """Where each storage's bytes lie: ``spans`` (start, bytes) in the file, ``packed`` zip
    members to decompress (not written by torch.save, but a zip tool may compress them)."""

    spans: dict[str, tuple[int, int]]
    packed: dict[str, zipfile.ZipInfo]
    big_endian: bool


def open_checkpoint(
    path: Path,
) -> tuple[dict[str, tuple[tuple[int, ...], np.dtype[Any]]], Callable[[str], npt.NDArray[Any]]]:
    """``({name: (shape, dtype as returned)}, load)`` for the checkpoint at ``path``: the
    pickle read and every tensor checked now, ``load(name)`` maps its data."""
    with open_regular(path, WeightsError) as handle:
        file_size = os.fstat(handle.fileno()).st_size
        start = handle.read(64)
        handle.seek(0)
        try:
            if start[2:].startswith(_LEGACY_MAGIC):
                tensors, layout = _read_legacy(path, handle, file_size)
            elif zipfile.is_zipfile(handle):
                tensors, layout = _read_zip(path, handle, file_size)
            else:
                raise WeightsError(f"{path}: {_not_a_checkpoint(start)}")
        except WeightsError:
            raise
        except pickle.UnpicklingError as err:
            raise WeightsError(f"{path}: {err}") from None
        except EOFError as err:
            raise WeightsError(f"{path}: the file ends inside a pickle (truncated?)") from err
        except (*_READ_ERRORS, KeyError, IndexError, TypeError, AttributeError) as err:
            raise WeightsError(
                f"{path}: cannot read it as a PyTorch checkpoint ({err!r:.200})"
            ) from err
    for name, tensor in tensors.items():
        _check_extent(path, name, tensor)

    def dtype_of(storage: _Storage) -> np.dtype[Any]:
        stored = _STORAGES[storage.kind]
        return stored.newbyteorder(">") if layout.big_endian else stored

    specs = {
        name: (
            tensor.shape,
            np.dtype(np.float32)
            if tensor.storage.kind in _HALF
            else dtype_of(tensor.storage).newbyteorder("="),
        )
        for name, tensor in tensors.items()
    }
    storages: dict[_Storage, npt.NDArray[Any]] = {}  # by key and dtype
    mapped: list[npt.NDArray[np.uint8]] = []

    def storage(item: _Storage) -> npt.NDArray[Any]:
        if item not in storages:
            dtype = dtype_of(item)
            if item.key in layout.packed:
                with open_regular(path, WeightsError) as handle, zipfile.ZipFile(handle) as zf:
                    raw: npt.NDArray[Any] = np.frombuffer(zf.read(layout.packed[item.key]), dtype)
            else:
                begin, size = layout.spans[item.key]
                if size == 0:
                    raw = np.zeros(0, dtype)
                else:
                    if not mapped:  # the whole file, mapped once for every storage
                        with open_regular(path, WeightsError) as handle:
                            mapped.append(np.memmap(handle, dtype=np.uint8, mode="r"))
                    raw = mapped[0][begin : begin + size].view(dtype)
            storages[item] = raw
        return storages[item]

    def load(name: str) -> npt.NDArray[Any]:
        tensor = tensors[name]
        try:
            array = _view(storage(tensor.storage), tensor)
        except _READ_ERRORS as err:
            raise WeightsError(f"{path}: cannot read tensor '{name}' ({err})") from err
        kind = tensor.storage.kind
        if kind == "BFloat16Storage":
            # bfloat16 is the top half of a float32: shift the bits into place.
            return (array.astype(np.uint32) << 16).view(np.float32)
        if kind == "HalfStorage":
            return array.astype(np.float32)
        if not array.dtype.isnative:
            return array.astype(array.dtype.newbyteorder("="))
        return array

    return specs, load


def _not_a_checkpoint(start: bytes) -> str:
    if start.startswith(b"PK\x03\x04"):
        return "a zip archive whose directory cannot be read (truncated or corrupt?)"
    return (
        "not a PyTorch checkpoint (torch.save writes a zip archive, or before torch 1.6 a "
        "series of pickles; this is neither)"
    )


# ---- zip archives (torch 1.6 and later) ---------------------------------------------------------


def _read_zip(path: Path, handle: Any, file_size: int) -> tuple[dict[str, _Tensor], _Layout]:
    try:
        archive = zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, ValueError, EOFError) as err:
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({err})") from err
    with archive:
        prefix = _top_folder(path, archive)
        info = archive.getinfo(prefix + "data.pkl")
        if info.file_size > MAX_PICKLE_BYTES:
            raise WeightsError(
                f"{path}: its data.pkl is {info.file_size} bytes (limit {MAX_PICKLE_BYTES}): "
                "not a state dict"
            )
        tensors = _tensors_of(path, _Unpickler(io.BytesIO(archive.read(info))).load())
        try:
            order = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
        except KeyError:
            order = "little"
        if order not in ("little", "big"):
            raise WeightsError(f"{path}: unknown byte order {order!r} in the archive")
        spans: dict[str, tuple[int, int]] = {}
        packed: dict[str, zipfile.ZipInfo] = {}
        # Each storage once (tied weights share one; a key has one declaration: _Unpickler).
        storages = {tensor.storage.key: tensor.storage for tensor in tensors.values()}
        for key, storage in storages.items():
            member = _member(path, archive, prefix, storage)
            if member.compress_type != zipfile.ZIP_STORED:
                packed[key] = member
                continue
            begin = _data_start(path, handle, member)
            if begin + member.file_size > file_size:
                raise WeightsError(
                    f"{path}: the data of storage '{key}' runs past the end of the file"
                )
            spans[key] = (begin, member.file_size)
    return tensors, _Layout(spans, packed, order == "big")


def _top_folder(path: Path, archive: zipfile.ZipFile) -> str:
    names = archive.namelist()
    pickles = [name for name in names if name.count("/") == 1 and name.endswith("/data.pkl")]
    if len(pickles) != 1:
        if any(name.endswith("/constants.pkl") for name in names):
            raise WeightsError(
                f"{path}: a TorchScript archive (torch.jit.save), not a state dict; save "
                "model.state_dict() with torch.save, or as safetensors"
            )
        found = "no data.pkl" if not pickles else f"{len(pickles)} data.pkl files"
        raise WeightsError(f"{path}: not a PyTorch checkpoint ({found} in the archive)")
    return pickles[0].removesuffix("data.pkl")


def _member(
    path: Path, archive: zipfile.ZipFile, prefix: str, storage: _Storage
) -> zipfile.ZipInfo:
    name = f"{prefix}data/{storage.key}"
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise WeightsError(f"{path}: storage '{storage.key}' is missing ({name})") from None
    _check_size(path, storage, info.file_size)
    return info


def _data_start(path: Path, handle: Any, info: zipfile.ZipInfo) -> int:
    """Where a member's data starts: after its local header, whose extra field torch pads."""
    handle.seek(info.header_offset)
    header = handle.read(_LOCAL_HEADER.size)
    if len(header) < _LOCAL_HEADER.size:
        raise WeightsError(f"{path}: member {info.filename} lies past the end of the file")
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if signature != b"PK\x03\x04":
        raise WeightsError(f"{path}: member {info.filename} has a corrupt local header")
    return int(info.header_offset + _LOCAL_HEADER.size + name_length + extra_length)


# ---- the legacy format (torch before 1.6) -------------------------------------------------------


def _read_legacy(path: Path, handle: Any, file_size: int) -> tuple[dict[str, _Tensor], _Layout]:
    _Unpickler(handle).load()  # the magic number
    protocol = _Unpickler(handle).load()
    if protocol != _LEGACY_PROTOCOL:
        raise WeightsError(
            f"{path}: legacy PyTorch format of protocol {protocol!r:.20}, not {_LEGACY_PROTOCOL}"
        )
    _Unpickler(handle).load()  # sizes of the saving system's C types: not needed
    unpickler = _Unpickler(handle)
    tensors = _tensors_of(path, unpickler.load())
    keys = _Unpickler(handle).load()
    if not (isinstance(keys, list) and all(isinstance(key, str) for key in keys)):
        raise WeightsError(f"{path}: the list of storage keys is malformed")
    spans: dict[str, tuple[int, int]] = {}
    offset = handle.tell()
    for key in keys:
        storage = unpickler.storages.get(key)
        if storage is None or key in spans:
            raise WeightsError(f"{path}: storage key '{key}' is not one the object names once")
        handle.seek(offset)
        count = int.from_bytes(handle.read(8), "little")
        if count != storage.numel:
            raise WeightsError(
                f"{path}: storage '{key}' records {count} elements, the object "
                f"{storage.numel} (corrupt?)"
            )
        size = count * _STORAGES[storage.kind].itemsize
        _check_size(path, storage, size)
        if offset + 8 + size > file_size:
            raise WeightsError(
                f"{path}: storage '{key}' runs past the end of the file (truncated?)"
            )
        spans[key] = (offset + 8, size)
        offset += 8 + size
    missing = sorted({tensor.storage.key for tensor in tensors.values()} - set(spans))
    if missing:
        raise WeightsError(f"{path}: storage '{missing[0]}' is missing from the file")
    # Legacy storages are written little-endian whatever the saving system's byte order.
    return tensors, _Layout(spans, {}, big_endian=False)


# ---- both ---------------------------------------------------------------------------------------


def _tensors_of(path: Path, loaded: object) -> dict[str, _Tensor]:
    """The tensors of the saved object, by key: it must be a dict (a state dict)."""
    if not isinstance(loaded, Mapping):
        raise WeightsError(
            f"{path}: holds a {type(loaded).__name__}, not a dict of tensors (a state_dict)"
        )
    tensors = {key: value for key, value in loaded.items() if isinstance(value, _Tensor)}
    if not tensors:
        nested = [
            key
            for key, value in loaded.items()
            if isinstance(value, Mapping) and any(isinstance(v, _Tensor) for v in value.values())
        ]
        keys = ", ".join(repr(key) for key in list(loaded)[:5])
        hint = (
            f"the tensors are under {nested[0]!r}: save checkpoint[{nested[0]!r}] alone"
            if nested
            else "a state_dict saved at the top level, as Hugging Face's pytorch_model.bin"
        )
        raise WeightsError(
            f"{path}: no tensors at the top level of its dict (keys: {keys or 'none'}); "
            f"oxiformer reads {hint}"
        )
    bad = [key for key in tensors if not isinstance(key, str)]
    if bad:
        raise WeightsError(f"{path}: tensor key {bad[0]!r} is not a string")
    return tensors


def _check_size(path: Path, storage: _Storage, size: int) -> None:
    needed = storage.numel * _STORAGES[storage.kind].itemsize
    if size != needed:
        raise WeightsError(
            f"{path}: storage '{storage.key}' holds {size} bytes, its "
            f"{storage.numel} elements of {storage.kind} need {needed} (truncated or corrupt?)"
        )


def _check_extent(path: Path, name: str, tensor: _Tensor) -> None:
    """Every element of the tensor lies inside its storage."""
    if math.prod(tensor.shape) == 0:
        return
    last = tensor.offset + sum(
        (size - 1) * step for size, step in zip(tensor.shape, tensor.strides)
    )
    if last >= tensor.storage.numel:
        raise WeightsError(
            f"{path}: tensor '{name}' (shape {list(tensor.shape)}, strides "
            f"{list(tensor.strides)}, offset {tensor.offset}) reaches element {last} of a "
            f"storage of {tensor.storage.numel}"
        )


def _view(storage: npt.NDArray[Any], tensor: _Tensor) -> npt.NDArray[Any]:
    """The tensor's elements: a view of the storage when they lie in C order, else a copy."""
    count = math.prod(tensor.shape)
    if count == 0:
        return np.zeros(tensor.shape, storage.dtype)
    contiguous = 1
    in_order = True
    for size, step in zip(reversed(tensor.shape), reversed(tensor.strides)):
        if size > 1 and step != contiguous:
            in_order = False
        contiguous *= size
    if in_order:
        return storage[tensor.offset : tensor.offset + count].reshape(tensor.shape)
    strides = tuple(step * storage.itemsize for step in tensor.strides)
    picked = np.lib.stride_tricks.as_strided(
        storage[tensor.offset :], tensor.shape, strides, writeable=False
    )
    return np.array(picked, order="C")


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
