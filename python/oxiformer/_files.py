"""Files as oxiformer reads and writes them.

Reading: only regular files (a symlink to one is fine). A FIFO would block the load forever and
a device such as ``/dev/zero`` would be read until memory runs out, so both are refused before
anything is read, and small files (JSON configurations) are read whole only up to a size cap.

Writing: every output goes to a temporary file in the target's directory, is flushed to disk,
then renamed over the target. A failure on the way (full disk, file-size limit, interruption)
leaves the previous file exactly as it was and no temporary file behind, and the error names the
target.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

import numpy as np
import numpy.typing as npt

from oxiformer._types import PathLike
from oxiformer.errors import OxiformerError

__all__ = [
    "MAX_JSON_BYTES",
    "atomic_write",
    "check_regular",
    "open_regular",
    "read_json",
    "umask",
    "write_npy",
    "write_text",
]


#: Largest JSON configuration read (config.json, modules.json, 1_Pooling/config.json, ...).
#: Real ones are a few KiB.
MAX_JSON_BYTES = 16 << 20

# POSIX flags (absent on Windows, where a FIFO cannot be a model file anyway).
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def check_regular(path: PathLike, error: type[OxiformerError]) -> os.stat_result:
    """``os.stat`` of ``path`` (symlinks followed), which must be a regular file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror or err})") from err
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: is {_kind(info.st_mode)}, not a regular file")
    return info


def open_regular(path: PathLike, error: type[OxiformerError]) -> BinaryIO:
    """``path`` opened for binary reading; anything but a regular file raises ``error``.

    Checked before opening (a device is never opened) and again on the open descriptor (the
    path cannot be swapped in between); opened non-blocking, so a FIFO cannot hang the open.
    """
    check_regular(path, error)
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _CLOEXEC)
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror or err})") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: is {_kind(info.st_mode)}, not a regular file")
        if _NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_json(path: PathLike, error: type[OxiformerError], limit: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in ``path`` (a regular file of at most ``limit`` bytes, UTF-8).

    Every problem (missing, special or oversized file, bad UTF-8, bad JSON, nesting too deep
    for Python's parser) raises ``error`` naming the file.
    """
    with open_regular(path, error) as handle:
        size = os.fstat(handle.fileno()).st_size
        data = handle.read(limit + 1) if size <= limit else b""
    if size > limit or len(data) > limit:
        raise error(
            f"{path}: {max(size, len(data))} bytes is too large for a JSON file here "
            f"(the limit is {limit} bytes)"
        )
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise error(f"{path}: cannot read: not UTF-8 text (at byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise error(f"{path}: not valid JSON ({err})") from err
    except RecursionError as err:
        raise error(f"{path}: JSON nested too deeply") from err


def umask() -> int:
    """The process's umask, read without changing it (``os.umask`` would, for every thread)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"Umask:"):
                return int(line.split()[1], 8)
    return 0o022


@contextlib.contextmanager
def atomic_write(path: PathLike, text: bool = False) -> Iterator[IO[Any]]:
    """A file object whose content replaces ``path`` when the ``with`` block ends without error.

    The data goes to a temporary file next to ``path`` (same file system), is flushed and
    synced, then renamed over ``path``. On any error the temporary file is removed, ``path``
    is left as it was, and an ``OSError`` naming ``path`` is raised (``filename`` set).
    """
    path = Path(path)
    existed = path.exists()
    out: IO[Any] | None = None
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise _write_error(path, err, existed) from err
    try:
        out = os.fdopen(fd, "w", encoding="utf-8") if text else os.fdopen(fd, "wb")
        with out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        mode = stat.S_IMODE(os.stat(path).st_mode) if existed else 0o666 & ~umask()
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException as failure:
        if out is None:  # fdopen failed: the descriptor is still ours to close
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(failure, OSError) and not isinstance(failure, BrokenPipeError):
            raise _write_error(path, failure, existed) from failure
        raise
    _sync_directory(path.parent)


def _write_error(path: Path, err: OSError, existed: bool) -> OSError:
    reason = err.strerror or str(err)
    left = "the file is unchanged" if existed else "nothing was written"
    return OSError(err.errno or errno.EIO, f"cannot write ({reason}; {left})", str(path))


def _sync_directory(directory: Path) -> None:
    """Make the rename durable (best effort: not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(path: PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) through :func:`atomic_write`."""
    with atomic_write(path, text=True) as out:
        out.write(text)


def write_npy(handle: IO[bytes], array: npt.NDArray[Any]) -> None:
    """``np.save`` into ``handle`` through Python's own writes (numpy's ``tofile`` reports a
    short write without its cause, e.g. "768000 requested and 255968 written")."""
    array = np.ascontiguousarray(array)
    if array.dtype.hasobject:
        raise TypeError("cannot save an array of Python objects")
    header = np.lib.format.header_data_from_array_1_0(array)
    np.lib.format.write_array_header_1_0(handle, header)
    handle.write(array.reshape(-1).view(np.uint8).data)
