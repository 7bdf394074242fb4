"""PyTorch checkpoints written without torch, for the reader's tests.

The layout is torch.save's (zip format, pickle protocol 2): ``<folder>/data.pkl``,
``<folder>/data/<key>``, ``<folder>/byteorder``, ``<folder>/version``. The pickle is made by
Python's own pickler from stand-ins registered under torch's names, so that it is the same
byte for byte as torch's: ``test_torch_checkpoint.py`` checks that against a file torch wrote.
"""

from __future__ import annotations

import collections
import io
import pickle
import sys
import types
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# numpy dtype (as stored) -> storage class name
STORAGE_NAMES = {
    "float32": "FloatStorage",
    "float64": "DoubleStorage",
    "float16": "HalfStorage",
    "int64": "LongStorage",
    "int32": "IntStorage",
    "int16": "ShortStorage",
    "int8": "CharStorage",
    "uint8": "ByteStorage",
    "bool": "BoolStorage",
}


@dataclass(eq=False)
class Storage:
    """A flat storage: its data (1-D), and its class name when the dtype does not say it
    (``BFloat16Storage`` holds uint16 bits)."""

    data: npt.NDArray[Any]
    kind: str = ""
    key: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.kind = self.kind or STORAGE_NAMES[self.data.dtype.name]


@dataclass(eq=False)
class View:
    """A tensor in a storage: offset, sizes and strides in elements."""

    storage: Storage
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _fake_torch() -> tuple[types.ModuleType, types.ModuleType]:
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args: Any) -> None:  # only its name is pickled
        raise AssertionError(args)

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    for name in [*STORAGE_NAMES.values(), "BFloat16Storage", "ComplexFloatStorage"]:
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils  # type: ignore[attr-defined]
    return torch, utils


class _Tensor:
    def __init__(self, view: View, rebuild: Any) -> None:
        self.view, self.rebuild = view, rebuild

    def __reduce__(self) -> tuple[Any, ...]:
        v = self.view
        hooks: collections.OrderedDict[str, Any] = collections.OrderedDict()
        return (self.rebuild, (v.storage, v.offset, v.shape, v.strides, False, hooks))


class _Pickler(pickle.Pickler):
    def __init__(self, file: Any, torch: types.ModuleType, legacy: bool) -> None:
        super().__init__(file, protocol=2)
        self.torch, self.legacy = torch, legacy

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Storage):
            storage_class = getattr(self.torch, obj.kind)
            pid = ("storage", storage_class, obj.key, "cpu", obj.data.size)
            return (*pid, None) if self.legacy else pid  # legacy: no view of another storage
        return None


def as_view(array: npt.NDArray[Any]) -> View:
    """A contiguous tensor in a storage of its own."""
    strides = [1] * array.ndim
    for axis in range(array.ndim - 2, -1, -1):
        strides[axis] = strides[axis + 1] * array.shape[axis + 1]
    return View(Storage(np.ascontiguousarray(array).reshape(-1)), 0, array.shape, tuple(strides))


def views_of(tensors: dict[str, View | npt.NDArray[Any]]) -> dict[str, View]:
    """Every tensor as a view, storage keys '0', '1', ... in order of first use."""
    views = {name: v if isinstance(v, View) else as_view(v) for name, v in tensors.items()}
    keys: dict[int, str] = {}
    for view in views.values():
        view.storage.key = keys.setdefault(id(view.storage), str(len(keys)))
    return views


def pickle_bytes(views: dict[str, View], top: Any = None, legacy: bool = False) -> bytes:
    """The ``data.pkl`` torch.save writes for ``OrderedDict(views)``, or for ``top(that
    dict)``, a structure around it; ``legacy``: the object's pickle of the legacy format."""
    torch, utils = _fake_torch()
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        state = collections.OrderedDict(
            (name, _Tensor(view, utils._rebuild_tensor_v2)) for name, view in views.items()
        )
        buffer = io.BytesIO()
        _Pickler(buffer, torch, legacy).dump(state if top is None else top(state))
        return buffer.getvalue()
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def write_checkpoint(
    path: Path,
    tensors: dict[str, View | npt.NDArray[Any]],
    *,
    folder: str = "archive",
    byteorder: str | None = "little",
    top: Any = None,
    data: bytes | None = None,
) -> None:
    """``torch.save(OrderedDict(tensors), path)`` as torch writes it; ``data`` replaces the
    pickle (to write a hostile one)."""
    views = views_of(tensors)
    storages = {view.storage.key: view.storage for view in views.values()}
    order = ">" if byteorder == "big" else "<"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{folder}/data.pkl", data or pickle_bytes(views, top))
        if byteorder is not None:
            archive.writestr(f"{folder}/byteorder", byteorder)
        for key, storage in storages.items():
            raw = storage.data.astype(storage.data.dtype.newbyteorder(order))
            archive.writestr(f"{folder}/data/{key}", raw.tobytes())
        archive.writestr(f"{folder}/version", "3\n")


LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def write_legacy_checkpoint(
    path: Path,
    tensors: dict[str, View | npt.NDArray[Any]],
    *,
    keys: list[str] | None = None,
    long_size: int = 8,
    top: Any = None,
) -> None:
    """``torch.save(OrderedDict(tensors), path, _use_new_zipfile_serialization=False)`` as
    torch writes it: storage keys ``keys`` (in order of first use; torch takes ids), C
    ``long`` of ``long_size`` bytes in the system's record."""
    views = views_of(tensors)
    if keys is not None:
        renamed = dict(zip([str(index) for index in range(len(keys))], keys))
        for view in views.values():
            view.storage.key = renamed.get(view.storage.key, view.storage.key)
    storages = {view.storage.key: view.storage for view in views.values()}
    system = {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": long_size},
    }
    with open(path, "wb") as out:
        for header in (LEGACY_MAGIC, 1001, system):
            pickle.dump(header, out, protocol=2)
        out.write(pickle_bytes(views, top, legacy=True))
        pickle.dump(sorted(storages), out, protocol=2)
        for key in sorted(storages):
            data = storages[key].data
            out.write(data.size.to_bytes(8, "little"))
            out.write(data.astype(data.dtype.newbyteorder("<")).tobytes())
