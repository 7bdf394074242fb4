"""Checks of the arguments of the public API.

A wrong argument is an ``OxiformerError`` subclass (``InputError`` unless the caller says
otherwise) naming the argument, and the index of a text in a batch; never a ``TypeError``,
``OverflowError`` or ``IndexError`` from deeper down, and never an item silently dropped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Union

import numpy as np

from oxiformer.errors import InputError, OxiformerError

__all__ = [
    "TextItem",
    "count",
    "describe",
    "flag",
    "integer",
    "option_error",
    "optional_flag",
    "path",
    "text_items",
]

#: One input of a text API: a text, or a (text, text_pair) pair.
TextItem = Union[str, tuple[str, str]]

#: Largest count passed on to the Rust core (a Rust ``usize``/``i64`` holds it).
MAX_COUNT = 2**63 - 1


def describe(value: object) -> str:
    """``value`` for an error message: its type, and a short repr."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def option_error(
    error: type[OxiformerError], where: str, options: Mapping[str, Any], name: str, expected: str
) -> OxiformerError:
    """The error for a wrong ``options[name]``, after ``where`` (a file; empty: an argument)."""
    prefix = f"{where}: " if where else ""
    return error(f"{prefix}'{name}' must be {expected}, got {options[name]!r}")


def integer(name: str, value: object, error: type[OxiformerError] = InputError) -> int:
    """``value`` as an int: Python's or numpy's (bools and floats refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise error(f"{name} must be an integer, got {describe(value)}")
    return int(value)


def count(
    name: str,
    value: object,
    minimum: int = 1,
    error: type[OxiformerError] = InputError,
) -> int:
    """``value`` as an int from ``minimum`` to :data:`MAX_COUNT` (bools and floats refused)."""
    number = integer(name, value, error)
    if number < minimum:
        raise error(f"{name} must be at least {minimum}, got {number}")
    if number > MAX_COUNT:
        raise error(f"{name} must be at most {MAX_COUNT}, got {number}")
    return number


def flag(name: str, value: object, error: type[OxiformerError] = InputError) -> bool:
    """``value`` as a bool: only True or False (numpy's too) are accepted."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise error(f"{name} must be True or False, got {describe(value)}")


def optional_flag(name: str, value: object) -> bool | None:
    """``None``, or :func:`flag`."""
    return None if value is None else flag(name, value)


def path(name: str, value: object, error: type[OxiformerError] = InputError) -> Path:
    """``value`` as a path: a str or an ``os.PathLike`` of str."""
    if isinstance(value, str) or (
        isinstance(value, os.PathLike) and isinstance(os.fspath(value), str)
    ):
        return Path(value)
    raise error(f"{name} must be a path (str or os.PathLike), got {describe(value)}")


def text_items(
    items: object,
    name: str = "texts",
    pairs: bool = True,
    error: type[OxiformerError] = InputError,
) -> list[TextItem]:
    """The items of a batch of texts, each a str or, when ``pairs``, a (text, text_pair) tuple
    or list of two str. Anything else raises ``error`` naming its index: results must line up
    with inputs, so nothing is dropped."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
        raise error(f"{name} must be a list of texts, got {describe(items)}")
    if isinstance(items, (list, tuple)) and all(type(item) is str for item in items):
        return list(items)  # the common case, at C speed
    out: list[TextItem] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            out.append(str(item))
        elif (
            pairs
            and isinstance(item, (tuple, list))
            and len(item) == 2
            and all(isinstance(part, str) for part in item)
        ):
            out.append((str(item[0]), str(item[1])))
        else:
            expected = "a str or a (text, text_pair) pair of str" if pairs else "a str"
            raise error(f"{name}[{index}] is {_item(item)}, expected {expected}")
    return out


def _item(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        kinds = ", ".join(type(part).__name__ for part in value[:4])
        more = ", ..." if len(value) > 4 else ""
        return f"a {type(value).__name__} of {len(value)} ({kinds}{more})"
    return describe(value)
