"""Type aliases shared by the package's signatures."""

from __future__ import annotations

import os
from typing import Union

import numpy as np
import numpy.typing as npt

__all__ = ["FloatArray", "IntArray", "PathLike"]

#: A file system path: a str or an ``os.PathLike`` of str.
PathLike = Union[str, "os.PathLike[str]"]
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
