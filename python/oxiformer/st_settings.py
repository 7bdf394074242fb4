"""sentence-transformers' model settings (``config_sentence_transformers.json``): the prompts
that ``encode(prompt_name=...)`` prepends, the default prompt, and the similarity function.

``{"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": null,
"similarity_fn_name": "cosine"}``, as e5, bge, gte and arctic-embed ship them. A missing file
or key means no prompts and cosine similarity.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oxiformer._files import read_json
from oxiformer.errors import ConfigError, InputError
from oxiformer.similarity import SIMILARITY_FUNCTIONS

__all__ = ["SETTINGS_FILE", "Settings"]

SETTINGS_FILE = "config_sentence_transformers.json"


@dataclass(frozen=True)
class Settings:
    """Prompts by name, the default prompt's name, the similarity function's name."""

    prompts: Mapping[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    similarity_fn_name: str = "cosine"

    def __post_init__(self) -> None:
        """Checked values (:meth:`load` puts the file's name before the errors)."""
        if not isinstance(self.prompts, Mapping) or not all(
            isinstance(name, str) and isinstance(text, str) for name, text in self.prompts.items()
        ):
            raise ConfigError("'prompts' must map names to prompt texts")
        if self.default_prompt_name is not None and self.default_prompt_name not in self.prompts:
            raise ConfigError(
                f"'default_prompt_name' {self.default_prompt_name!r} is not one of the "
                f"prompts ({', '.join(map(repr, self.prompts)) or 'none'})"
            )
        if self.similarity_fn_name not in SIMILARITY_FUNCTIONS:
            raise ConfigError(
                f"unknown 'similarity_fn_name' {self.similarity_fn_name!r} "
                f"(supported: {', '.join(SIMILARITY_FUNCTIONS)})"
            )

    @classmethod
    def load(cls, directory: Path) -> Settings:
        """The settings in ``directory``'s :data:`SETTINGS_FILE` (defaults when absent)."""
        path = directory / SETTINGS_FILE
        if not (path.exists() or path.is_symlink()):
            return cls()
        raw = read_json(path, ConfigError)
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        prompts = raw.get("prompts") or {}
        default = raw.get("default_prompt_name")
        function = raw.get("similarity_fn_name") or "cosine"
        try:
            return cls(dict(prompts) if isinstance(prompts, dict) else prompts, default, function)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None

    def to_config(self) -> dict[str, Any]:
        """The file's keys, as sentence-transformers writes them."""
        return {
            "prompts": dict(self.prompts),
            "default_prompt_name": self.default_prompt_name,
            "similarity_fn_name": self.similarity_fn_name,
        }

    def prompt(self, prompt_name: str | None, prompt: str | None) -> str | None:
        """The prompt ``encode`` prepends, chosen as sentence-transformers chooses it: ``prompt``
        if given (it wins over ``prompt_name``, with a warning), else the prompt named
        ``prompt_name``, else the default prompt, else none."""
        if prompt is not None and not isinstance(prompt, str):
            raise InputError(f"prompt must be a string, got {type(prompt).__name__}")
        if prompt_name is not None and not isinstance(prompt_name, str):
            raise InputError(f"prompt_name must be a string, got {type(prompt_name).__name__}")
        if prompt is not None:
            if prompt_name is not None:
                warnings.warn(
                    "encode: both prompt and prompt_name given; prompt_name is ignored",
                    stacklevel=3,
                )
            return prompt
        if prompt_name is not None:
            if prompt_name not in self.prompts:
                known = ", ".join(map(repr, self.prompts)) or "none: the model has no prompts"
                raise InputError(f"unknown prompt_name {prompt_name!r} (the model's: {known})")
            return self.prompts[prompt_name]
        if self.default_prompt_name is not None:
            return self.prompts[self.default_prompt_name]
        return None
