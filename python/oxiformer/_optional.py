"""Optional dependencies, imported on use: a missing one is one line that says how to install it.

The core needs numpy and tqdm only; Parquet output needs pyarrow (``oxiformer[parquet]``), the
Ray engine needs Ray Data (``oxiformer[ray]``, which brings pyarrow too).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from oxiformer.errors import DependencyError

__all__ = ["require"]

_EXTRAS = {"pyarrow": "parquet", "ray": "ray"}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (``"pyarrow"``, ``"pyarrow.parquet"``, ``"ray"``, ...) or raise a
    :class:`DependencyError` naming the pip extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        top = module.split(".", 1)[0]
        extra = _EXTRAS.get(top, top)
        raise DependencyError(
            f'{purpose} needs {top}, which is not installed: pip install "oxiformer[{extra}]"'
        ) from err
