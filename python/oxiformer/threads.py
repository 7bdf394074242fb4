"""The size of the one thread pool every oxiformer computation runs on (``rust/threads.rs``).

Results never depend on it. The default is ``OXIFORMER_NUM_THREADS``, else the CPUs available
to the process; either way at most :func:`max_num_threads`, 4 x the CPUs available (more
threads only take turns, and a count such as 100000 would spend seconds starting threads).
A count outside 1..max, or an ``OXIFORMER_NUM_THREADS`` that is not one, is an ``InputError``
at once.
"""

from __future__ import annotations

from oxiformer import _core
from oxiformer._checks import MAX_COUNT, count

__all__ = ["get_num_threads", "max_num_threads", "set_num_threads"]


def set_num_threads(num_threads: int) -> None:
    """Run every computation on ``num_threads`` threads (1 to :func:`max_num_threads`)."""
    number = count("num_threads", num_threads)
    _core.set_num_threads(min(number, MAX_COUNT))


def get_num_threads() -> int:
    """The number of threads of the pool."""
    return _core.get_num_threads()


def max_num_threads() -> int:
    """The most threads :func:`set_num_threads` accepts: 4 x the CPUs available."""
    return _core.max_num_threads()
