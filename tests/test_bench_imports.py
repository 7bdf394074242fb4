"""The benchmark scripts' shared module imports without pytest (a test dependency only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmarks_shared_module_imports_without_pytest() -> None:
    code = (
        "import sys; sys.modules['pytest'] = None; sys.path.insert(0, 'benches'); "
        "import _common; print(_common.FIXTURES)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("minilm")
