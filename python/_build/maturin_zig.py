"""oxiformer's PEP 517 build backend: maturin's, with a manylinux wheel from ``pip wheel .``.

maturin's backend builds with ``--compatibility off`` (a ``linux_x86_64`` wheel, which PyPI
refuses and other distributions' pip will not install) unless pip passes build arguments;
``[tool.maturin] compatibility`` alone reaches ``maturin build`` only. This backend passes
that tag and ``--zig`` (zig links against the tag's glibc, whatever the build machine has),
so ``pip wheel .`` and ``pip install .`` build the wheel ``maturin build --release --zig``
builds. Build arguments given to pip (``--config-settings build-args=...``, or
``MATURIN_PEP517_ARGS``) replace these. Editable installs are maturin's, unchanged.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import maturin
from maturin import (
    build_editable,
    build_sdist,
    get_requires_for_build_editable,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
    "prepare_metadata_for_build_editable",
    "prepare_metadata_for_build_wheel",
]


def build_wheel(
    wheel_directory: str,
    config_settings: Mapping[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    settings = dict(config_settings or {})
    given = {"build-args", "maturin.build-args"} & settings.keys()
    if not given and not os.environ.get("MATURIN_PEP517_ARGS"):
        compatibility = maturin.get_config()["compatibility"]
        settings["build-args"] = ["--compatibility", compatibility, "--zig"]
        # cargo-zigbuild runs `python3 -m ziglang`; the python3 on PATH may not be the one
        # this build environment installed ziglang for.
        os.environ.setdefault("CARGO_ZIGBUILD_PYTHON_PATH", sys.executable)
    return str(maturin.build_wheel(wheel_directory, settings, metadata_directory))
