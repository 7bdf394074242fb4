"""A reproducible multilingual text corpus built from installed Debian packages.

Fortune cookies (English, German, Spanish, Italian, Russian, Chinese, Polish, Czech/Slovak,
Bulgarian, Portuguese, Esperanto, Irish) and translated manual pages (Japanese, Chinese,
Greek, Vietnamese, Turkish, French), read from the files each package installs
(``dpkg -L``), in a fixed order. Terminal escape codes and backspace overstrikes are
removed. CI installs the packages with::

    apt-get install -y --no-install-recommends fortunes fortunes-de fortunes-es \
        fortunes-it fortunes-ru fortunes-zh fortunes-pl fortunes-cs fortunes-bg fortunes-br \
        fortunes-eo fortunes-ga manpages-ja manpages-zh manpages-el manpages-vi manpages-tr \
        manpages-fr

Run ``python tests/corpus.py`` to print line counts per package.
"""

from __future__ import annotations

import gzip
import re
import subprocess
from functools import cache
from pathlib import Path

PACKAGES = (
    "fortunes",
    "fortunes-de",
    "fortunes-es",
    "fortunes-it",
    "fortunes-ru",
    "fortunes-zh",
    "fortunes-pl",
    "fortunes-cs",
    "fortunes-bg",
    "fortunes-br",
    "fortunes-eo",
    "fortunes-ga",
    "manpages-ja",
    "manpages-zh",
    "manpages-el",
    "manpages-vi",
    "manpages-tr",
    "manpages-fr",
)

APT_INSTALL = "apt-get install -y --no-install-recommends " + " ".join(PACKAGES)

_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|.\x08")


def _package_files(package: str) -> list[Path]:
    """Regular text files the package installs (docs excluded), sorted; [] if absent."""
    try:
        listing = subprocess.run(
            ["dpkg", "-L", package], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    files = []
    for line in listing.splitlines():
        path = Path(line)
        if "/doc/" in line or not path.is_file() or path.is_symlink():
            continue
        if package.startswith("fortunes") and "/fortunes" not in line:
            continue
        if package.startswith("fortunes") and path.suffix in {".dat", ".u8"}:
            continue
        if package.startswith("manpages") and not line.endswith(".gz"):
            continue
        files.append(path)
    return sorted(files)


def _read(path: Path) -> str | None:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None  # a few old fortune files are not UTF-8: skipped, deterministically


def _lines(text: str) -> list[str]:
    text = _ESCAPES.sub("", text)
    lines = []
    for line in text.splitlines():
        line = line.strip()
        if line and line != "%":
            lines.append(line)
    return lines


@cache
def package_lines(package: str) -> tuple[str, ...]:
    """The corpus lines from one package (empty if it is not installed)."""
    out: list[str] = []
    for path in _package_files(package):
        text = _read(path)
        if text is not None:
            out.extend(_lines(text))
    return tuple(out)


def missing_packages() -> list[str]:
    return [package for package in PACKAGES if not package_lines(package)]


def corpus_lines() -> list[str]:
    """Every line of every package, in package order."""
    return [line for package in PACKAGES for line in package_lines(package)]


if __name__ == "__main__":
    total = 0
    for package in PACKAGES:
        lines = package_lines(package)
        size = sum(len(line.encode()) for line in lines)
        total += len(lines)
        print(f"{package:14s} {len(lines):8d} lines {size / 1e6:7.2f} MB")
    print(f"{'total':14s} {total:8d} lines")
    if missing_packages():
        print("missing:", " ".join(missing_packages()))
        print(APT_INSTALL)
