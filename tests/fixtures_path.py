"""Where the shared fixtures are: a module of its own, without pytest, so that the benchmark
scripts (``benches/_common.py``) find them with the run-time dependencies alone."""

from __future__ import annotations

import os
from pathlib import Path


def _fixtures() -> Path:
    """``$OXIFORMER_FIXTURES``, else ``shared/fixtures`` in the nearest directory above the
    repository that has one (the repository's parent for a clone; further up for a worktree
    in a subdirectory)."""
    if os.environ.get("OXIFORMER_FIXTURES"):
        return Path(os.environ["OXIFORMER_FIXTURES"])
    repository = Path(__file__).resolve().parents[1]
    for directory in repository.parents:
        if (directory / "shared" / "fixtures").is_dir():
            return directory / "shared" / "fixtures"
    return repository.parent / "shared" / "fixtures"


#: ``../shared/fixtures`` next to the repository (or further up, or ``$OXIFORMER_FIXTURES``).
FIXTURES = _fixtures()
