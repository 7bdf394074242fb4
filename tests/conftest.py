"""Shared fixtures for the tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixture_paths import FIXTURES, minilm_dir


@pytest.fixture(scope="session")
def minilm() -> Path:
    return minilm_dir()


@pytest.fixture(scope="session")
def fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"fixtures not found at {FIXTURES}")
    return FIXTURES
