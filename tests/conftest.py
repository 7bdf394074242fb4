"""Session-wide fixtures; plain helpers live in ``helpers.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from helpers import (
    FIXTURES,
    MINILM_GOLDEN,
    load_golden,
    load_model,
    minilm_model_dir,
    require_fixtures,
)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return minilm_model_dir()


@pytest.fixture(scope="session")
def minilm_golden() -> dict[str, npt.NDArray[Any]]:
    require_fixtures("minilm/golden.npz")
    return load_golden(MINILM_GOLDEN)


@pytest.fixture(scope="session")
def minilm_model(
    minilm_dir: Path,
) -> tuple[dict[str, Any], dict[str, npt.NDArray[np.float32]]]:
    """(config, encoder tensors) of all-MiniLM-L6-v2, loaded once."""
    return load_model(minilm_dir)


@pytest.fixture(scope="session")
def fixtures() -> Path:
    require_fixtures()
    return FIXTURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Name the SIMD paths the tests ran end to end (``test_simd.py``), for the CI log."""
    import sys

    module = sys.modules.get("test_simd")
    ran = sorted(getattr(module, "RAN", ()))
    if ran:
        terminalreporter.write_line(f"SIMD paths run end to end: {', '.join(ran)}")
