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
def bert2bert() -> Any:
    """tiny-bert2bert, the encoder-decoder of the fixtures, loaded once."""
    import oxiformer

    require_fixtures("tiny-bert2bert")
    return oxiformer.EncoderDecoder.from_pretrained(FIXTURES / "tiny-bert2bert")


@pytest.fixture(scope="session")
def bert2bert_inputs() -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """(input_ids, attention_mask) of tiny-bert2bert's golden generation."""
    require_fixtures("tiny-bert2bert")
    golden = load_golden(FIXTURES / "tiny-bert2bert" / "golden.npz")
    return golden["input_ids"], golden["attention_mask"]


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
