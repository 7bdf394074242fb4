"""Weights from NumPy files: ``.npz``, a directory of ``.npy``, an HF ``model.safetensors`` or
a PyTorch ``pytorch_model.bin``.

Only numpy is needed: safetensors files are parsed by hand (an 8-byte little-endian header
length, a JSON header, then the data section) and memory-mapped, as are ``.npy`` files and
the storages of PyTorch checkpoints (``torch_checkpoint.py``).
Every error names the file, and the tensor when there is one.

Reading (:func:`read_tensors`, in ``weight_files.py``) returns the tensors as stored, under
their stored names, reading only headers until a tensor is looked up.
:func:`select_encoder_tensors` then checks them by HF name against the shapes the encoder
expects (from the headers) and reads exactly those, as float32 C-contiguous arrays.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
import zipfile
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer._files import atomic_write, check_regular
from oxiformer._types import PathLike
from oxiformer.errors import WeightsError
from oxiformer.families import (
    base_prefixes,
    canonical_tensor_name,
    encoder_family,
    encoder_namespaces,
)
from oxiformer.weight_files import TensorFile, read_tensors

__all__ = [
    "find_weights",
    "float_tensor",
    "has_pooler",
    "owned",
    "read_tensors",
    "release_pages",
    "save_npz",
    "select_encoder_tensors",
]


#: File names :func:`find_weights` looks for, most preferred first.
WEIGHT_CANDIDATES = ("weights.npz", "model.safetensors", "weights/", "pytorch_model.bin")

#: The indexes of checkpoints sharded over several files, most preferred first
#: (:mod:`oxiformer.sharded_weights`).
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def find_weights(model_dir: PathLike) -> Path:
    """The weights of a model directory: ``weights.npz``, ``model.safetensors``, ``weights/``
    or ``pytorch_model.bin``, the first found in that order, else the index of a sharded
    checkpoint (``model.safetensors.index.json``, then ``pytorch_model.bin.index.json``).

    A candidate that exists but is not a regular file (a FIFO, a device) is an error, not
    skipped."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise WeightsError(f"{model_dir}: no such model directory")
    for name in (*WEIGHT_CANDIDATES, *SHARD_INDEXES):
        candidate = model_dir / name
        if name.endswith("/"):
            if candidate.is_dir():
                return candidate
        elif candidate.exists() or candidate.is_symlink():
            check_regular(candidate, WeightsError)
            return candidate
    looked = ", ".join((*WEIGHT_CANDIDATES, *SHARD_INDEXES))
    raise WeightsError(f"{model_dir}: no weights found (looked for {looked})")


def save_npz(path: PathLike, tensors: Mapping[str, npt.ArrayLike]) -> None:
    """Write ``tensors`` to a plain (uncompressed, pickle-free) ``.npz`` archive at ``path``.

    The archive is written next to ``path`` and renamed into place, so a failed write never
    leaves a half-written ``path`` (``oxiformer._files.atomic_write``). Object arrays are
    refused (:class:`WeightsError`).
    """
    arrays = {name: np.asanyarray(value) for name, value in tensors.items()}
    for name, array in arrays.items():
        if array.dtype.hasobject:
            raise WeightsError(f"{path}: tensor '{name}' holds Python objects")
    stored = zipfile.ZIP_STORED
    with atomic_write(path) as out, zipfile.ZipFile(out, "w", stored, allowZip64=True) as zf:
        for name, array in arrays.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def float_tensor(
    tensors: Mapping[str, npt.NDArray[Any]], name: str, shape: tuple[int, ...], source: str
) -> npt.NDArray[np.float32]:
    """``tensors[name]``, checked (present, of ``shape``, finite floating point) and copied to
    a C-ordered float32 array owned by the caller; ``source`` starts the errors."""
    array = tensors.get(name)
    if array is None:
        raise WeightsError(f"{source}: missing tensor '{name}' (expected {shape})")
    if tuple(array.shape) != shape:
        raise WeightsError(f"{source}: tensor '{name}' has shape {array.shape}, expected {shape}")
    if array.dtype.kind != "f" or not np.isfinite(array).all():
        raise WeightsError(f"{source}: tensor '{name}' must be finite floating point")
    # A copy, always: a head must not stay a view of a memory-mapped file, which may be
    # rewritten (NaN logits) or truncated (SIGBUS) under a running model.
    return np.array(array, dtype=np.float32, order="C", copy=True)


def owned(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``array``, copied when it is a view of a memory-mapped file: what a model keeps must
    not change (or vanish: SIGBUS) when the file is rewritten under it."""
    if _mapped_base(array) is None:
        return array
    return np.array(array, copy=True)


def _mapped_base(array: npt.NDArray[Any]) -> np.memmap[Any, Any] | None:
    base: Any = array
    while base is not None and not isinstance(base, np.memmap):
        base = base.base if isinstance(base, np.ndarray) else None
    return base


def release_pages(array: npt.NDArray[Any]) -> None:
    """Drop the resident pages of ``array`` when it is a view of a read-only memory-mapped
    file (as :func:`read_tensors` returns for safetensors and ``.npy`` files): the data stays
    valid and is read again from the file if touched. Loading calls this once the Rust core
    holds its own copy, so that the file's pages and the copy are not resident together (peak
    RSS). A no-op for any other array, and off Linux."""
    base = _mapped_base(array)
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
    found: dict[str, str] = {}
    problems: list[str] = []
    for stored_name in tensors:
        name = _canonical_name(stored_name)
        if name in expected:
            if name in found:
                problems.append(f"'{stored_name}' and '{found[name]}' are both tensor '{name}'")
            else:
                found[name] = stored_name
        elif not _is_skipped(name) and name.startswith(encoder_namespaces()):
            shape, _ = _spec(tensors, stored_name)
            problems.append(f"unexpected tensor '{stored_name}' {_shape(shape)}")

    # Shapes and dtypes first (from the headers of a file): data is read only when they fit.
    selected: dict[str, npt.NDArray[Any]] = {}
    int8_names = set(int8)
    for name, shape in expected.items():
        if name not in found:
            problems.append(f"missing tensor '{name}' (expected {_shape(shape)})")
            continue
        stored_name = found[name]
        stored_shape, dtype = _spec(tensors, stored_name)
        if stored_shape != tuple(shape):
            problems.append(
                f"tensor '{stored_name}' has shape {_shape(stored_shape)}, expected {_shape(shape)}"
            )
        elif name in int8_names:
            if dtype != np.int8:
                problems.append(
                    f"tensor '{stored_name}' has dtype {dtype}, expected int8 (a quantized weight)"
                )
            else:
                selected[name] = np.require(tensors[stored_name], requirements=["C", "A"])
        elif name.endswith(".outlier_index"):
            if dtype.kind not in "iu":
                problems.append(
                    f"tensor '{stored_name}' has dtype {dtype}, expected integer channel indices"
                )
            else:
                selected[name] = np.ascontiguousarray(tensors[stored_name], dtype=np.int64)
        elif dtype.kind != "f":
            problems.append(
                f"tensor '{stored_name}' has dtype {dtype}, expected a floating-point dtype"
            )
        else:
            array = np.asarray(tensors[stored_name])
            if not np.isfinite(array).all():
                problems.append(f"tensor '{stored_name}' contains NaN or Inf")
            else:
                selected[name] = np.require(array, dtype=np.float32, requirements=["C", "A"])
    if problems:
        listing = "".join(f"\n  - {problem}" for problem in problems)
        raise WeightsError(f"{source}: {len(problems)} problem(s) with the weights:{listing}")
    return selected


def _spec(tensors: Mapping[str, Any], name: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """(shape, dtype) of a tensor: from the header for a :class:`TensorFile` (nothing read)."""
    if isinstance(tensors, TensorFile):
        spec = tensors.spec(name)
        return spec.shape, spec.dtype
    array = np.asarray(tensors[name])
    return tuple(array.shape), array.dtype


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
