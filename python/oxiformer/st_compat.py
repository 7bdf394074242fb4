"""The ``SentenceTransformer`` methods that code ported from sentence-transformers calls around
``encode``, for :class:`oxiformer.SentenceEncoder`.

- ``device`` is always ``"cpu"``; ``to("cpu")`` and ``eval()`` return the model as it is (it
  runs on the CPU and only infers). ``to`` with any other device is an error, not ignored.
- ``get_max_seq_length()`` and ``tokenize(texts)`` (NumPy arrays where sentence-transformers
  returns PyTorch tensors: ``input_ids``, ``token_type_ids``, ``attention_mask``, padded to the
  longest and cut at ``max_seq_length``).
- ``start_multi_process_pool`` / ``encode_multi_process`` / ``stop_multi_process_pool``:
  sentence-transformers starts a process a device and splits the sentences between them.
  oxiformer's ``encode`` already runs on all the threads of ``oxiformer.set_num_threads`` in this
  process, so the pool names CPU devices only and ``encode_multi_process`` is ``encode`` (the
  same embeddings, bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import numpy.typing as npt

from oxiformer.errors import InputError

__all__ = ["SentenceTransformerCompat", "check_device"]

Model = TypeVar("Model", bound="SentenceTransformerCompat")


class _Encodes(Protocol):
    encode: Callable[..., Any]
    max_seq_length: int
    tokenizer: Any


class SentenceTransformerCompat:
    """Mixed into ``SentenceEncoder`` (see the module doc)."""

    @property
    def device(self) -> str:
        return "cpu"

    def to(self: Model, device: object = "cpu") -> Model:
        check_device(device)
        return self

    def eval(self: Model) -> Model:
        return self

    def get_max_seq_length(self: _Encodes) -> int:
        return self.max_seq_length

    def tokenize(self: _Encodes, texts: Iterable[str]) -> dict[str, npt.NDArray[Any]]:
        encoded = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_seq_length
        )
        return {name: encoded[name] for name in ("input_ids", "token_type_ids", "attention_mask")}

    def start_multi_process_pool(
        self, target_devices: Sequence[str] | None = None
    ) -> dict[str, Any]:
        devices = list(target_devices) if target_devices is not None else ["cpu"]
        for device in devices:
            check_device(device)
        return {"devices": devices, "model": self}

    def encode_multi_process(
        self: _Encodes,
        sentences: Sequence[str],
        pool: dict[str, Any],
        batch_size: int = 32,
        chunk_size: int | None = None,
        **options: Any,
    ) -> Any:
        if not isinstance(pool, dict) or pool.get("model") is not self:
            raise InputError("pool must come from this model's start_multi_process_pool()")
        return self.encode(list(sentences), batch_size=batch_size, **options)

    @staticmethod
    def stop_multi_process_pool(pool: dict[str, Any]) -> None:
        """Nothing to stop: the pool holds no process."""


def check_device(device: object) -> None:
    """A CPU device (``"cpu"``, ``"cpu:0"``, ...), or an error: oxiformer runs on the CPU only."""
    name = str(device)
    if name != "cpu" and not name.startswith("cpu:"):
        raise InputError(f"device {device!r}: oxiformer runs on the CPU only (use 'cpu')")
