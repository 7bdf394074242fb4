"""One set of bits on every CPU: each SIMD path this host runs gives the portable path's
outputs bitwise, end to end, in fp32 and int8 (the kernels' own path tests are in Rust:
``cargo test``); the paths can be forced with ``OXIFORMER_SIMD``, and a path the CPU lacks is
a clear error.

A path the host lacks is skipped with the reason, unless ``OXIFORMER_REQUIRE_SIMD`` (a comma
list such as ``avx512,avx512vnni``) names it: then the skip is a failure. Under
``qemu-x86_64`` (Debian's ``qemu-user``), the portable and AVX2 paths also run on emulated
CPUs without AVX-512 (``-cpu IvyBridge``: no AVX2/FMA; ``-cpu Haswell``: AVX2), whatever this
machine has.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import oxiformer
import pytest
from helpers import FIXTURES, require_fixtures

require_fixtures("tiny-bert/seqcls")

SCRIPT = Path(__file__).resolve().parent / "simd_hashes.py"
STORED = Path(__file__).resolve().parent / "data" / "simd_hashes.json"

#: OXIFORMER_SIMD values to run: (fp32 path, int8 path).
PATHS = [
    ("portable", "portable"),
    ("avx2", "avx2"),
    ("avx2", "avxvnni"),
    ("avx512", "avx512vnni"),
    ("neon", "neon"),
    ("neon", "neondot"),
]
#: The paths the tests of this session ran, for the summary line (see conftest).
RAN: set[str] = set()


def run_hashes(value: str, *extra: str, prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    env = {**os.environ, "OXIFORMER_SIMD": value}
    command = [*prefix, sys.executable, str(SCRIPT), "--fixtures", str(FIXTURES), *extra]
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return report


def skip_or_fail(path: str) -> None:
    required = {p.strip() for p in os.environ.get("OXIFORMER_REQUIRE_SIMD", "").split(",")}
    info = oxiformer.simd_info()
    message = f"this CPU lacks the {path} path (it has: {', '.join(info['features']) or 'none'})"
    if path in required:
        pytest.fail(f"OXIFORMER_REQUIRE_SIMD names {path}, but {message}")
    pytest.skip(message)


def test_simd_info_names_the_paths_in_use() -> None:
    info = oxiformer.simd_info()
    assert info["fp32"] in ("portable", "avx2", "avx512", "neon")
    assert info["int8"] in ("portable", "avx2", "avxvnni", "avx512vnni", "neon", "neondot")
    assert info["fp32"] in info["available"]["fp32"]
    assert info["int8"] in info["available"]["int8"]
    assert "portable" in info["available"]["fp32"]
    print(f"simd_info: {info}")


def test_oxiformer_simd_forces_a_path() -> None:
    code = "import json, oxiformer; print(json.dumps(oxiformer.simd_info()))"
    env = {**os.environ, "OXIFORMER_SIMD": "portable"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    info = json.loads(result.stdout)
    assert (info["fp32"], info["int8"], info["forced"]) == ("portable", "portable", "portable")


@pytest.mark.parametrize("value", ["avx3", "portable,avx9", "portable,portable,portable"])
def test_an_unknown_path_is_a_config_error(value: str) -> None:
    code = (
        "import oxiformer\n"
        "try:\n    oxiformer.Encoder.from_pretrained(__import__('sys').argv[1])\n"
        "except oxiformer.ConfigError as err:\n    print('ConfigError:', err)\n"
    )
    env = {**os.environ, "OXIFORMER_SIMD": value}
    result = subprocess.run(
        [sys.executable, "-c", code, str(FIXTURES / "tiny-bert" / "seqcls")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ConfigError: OXIFORMER_SIMD"), result.stdout


def test_a_path_the_cpu_lacks_is_a_config_error() -> None:
    info = oxiformer.simd_info()
    missing = [p for p in ("avx2", "avx512", "neon") if p not in info["available"]["fp32"]]
    assert missing, "this CPU has every path"
    env = {**os.environ, "OXIFORMER_SIMD": missing[0]}
    code = "import oxiformer; oxiformer.simd_info()"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode != 0
    assert "ConfigError" in result.stderr and "this CPU has" in result.stderr, result.stderr


@pytest.fixture(scope="module")
def portable_hashes() -> dict[str, str]:
    hashes: dict[str, str] = run_hashes("portable", "--minilm")["hashes"]
    RAN.add("portable")
    return hashes


@pytest.mark.parametrize(("fp32", "int8"), PATHS[1:], ids=lambda p: str(p))
def test_every_path_gives_the_portable_bits(
    fp32: str, int8: str, portable_hashes: dict[str, str]
) -> None:
    available = oxiformer.simd_info()["available"]
    for path, kind in ((fp32, "fp32"), (int8, "int8")):
        if path not in available[kind]:
            skip_or_fail(path)
    report = run_hashes(f"{fp32},{int8}", "--minilm")
    assert (report["paths"]["fp32"], report["paths"]["int8"]) == (fp32, int8)
    assert report["hashes"] == portable_hashes, f"{fp32},{int8} differs from portable"
    RAN.update({fp32, int8})


def test_the_bits_are_the_stored_ones(portable_hashes: dict[str, str]) -> None:
    """The same bits on every machine: tiny-bert's outputs hash to what they hashed to when
    the file was written (on an AVX-512 Xeon, every path)."""
    stored = json.loads(STORED.read_text())
    assert {k: portable_hashes[k] for k in stored} == stored


@pytest.mark.parametrize("cpu", ["IvyBridge", "Haswell"])
def test_emulated_cpus_give_the_same_bits(cpu: str, portable_hashes: dict[str, str]) -> None:
    """The whole wheel on a CPU model without AVX-512 (IvyBridge: no AVX2 or FMA, so the
    portable path; Haswell: AVX2 + FMA), under QEMU's user-mode emulation."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        pytest.skip("qemu-x86_64 not installed (Debian: apt-get install qemu-user)")
    report = run_hashes("", prefix=(qemu, "-cpu", cpu))
    expected = "portable" if cpu == "IvyBridge" else "avx2"
    assert report["paths"]["fp32"] == expected, report["paths"]
    tiny = {k: v for k, v in portable_hashes.items() if k.startswith("tiny-bert")}
    assert report["hashes"] == tiny
    RAN.add(f"{expected} (qemu -cpu {cpu})")
