"""``MaskedLM``: HF ``BertForMaskedLM`` and the fill-mask pipeline without PyTorch.

The encoder and the LM head run in Rust (with the GIL released); softmax and the choice of
the top tokens run in NumPy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer import _core
from oxiformer._types import FloatArray, PathLike
from oxiformer.config import config_path, read_config_json
from oxiformer.errors import ConfigError, InputError
from oxiformer.families import encoder_family
from oxiformer.lm_head import (
    LM_HEAD_BITS,
    default_lm_head_bits,
    quantize_lm_head,
    select_lm_head_tensors,
    stored_lm_head_bits,
)
from oxiformer.model import Encoder
from oxiformer.pretrained import model_dir
from oxiformer.saving import save_model
from oxiformer.tokenizer import Tokenizer
from oxiformer.weight_files import check_unchanged, file_stamp
from oxiformer.weights import find_weights, read_tensors, release_pages

__all__ = ["MaskedLM", "MaskedLMOutput"]


@dataclass(frozen=True)
class MaskedLMOutput:
    logits: FloatArray
    """(batch, seq, vocab) float32"""


class MaskedLM:
    """HF ``BertForMaskedLM``: the encoder, then the LM head on every token."""

    def __init__(
        self,
        encoder: Encoder,
        head: _core.LmHead,
        tokenizer: Tokenizer | None,
        head_source: _HeadSource | None = None,
    ) -> None:
        self.encoder = encoder
        self.head = head
        self.tokenizer = tokenizer
        self._head_source = head_source

    @classmethod
    def from_pretrained(
        cls, path: PathLike, *, dtype: str | None = None, revision: str | None = None
    ) -> MaskedLM:
        """Load a model directory with a masked-LM head (``cls.predictions.*``);
        ``dtype="int8"`` quantizes the encoder and the head's two dense layers at load (a
        model saved in int8 loads as it is); ``revision``: a branch, tag or commit of a model
        id in the Hugging Face cache."""
        directory = model_dir(path, revision)
        raw = read_config_json(directory)
        config_source = str(config_path(directory))
        config = _core.EncoderConfig(raw, config_source)
        weights_path = find_weights(directory)
        head_source = _HeadSource(raw, str(weights_path), dtype, config_source)
        stored = read_tensors(weights_path)
        head_tensors, bits = head_source.tensors(config, stored)
        encoder = Encoder.from_tensors(
            config,
            head_source.strip(stored),
            source=head_source.source,
            config_source=config_source,
            dtype=dtype,
            quantization_config=raw.get("quantization_config"),
        )
        encoder.release_tensors(head_source.stamp)
        head = _core.LmHead(config, head_tensors, bits, release_pages)
        has_tokenizer = (directory / "tokenizer.json").is_file() or (
            directory / "vocab.txt"
        ).is_file()
        tokenizer = Tokenizer.from_pretrained(directory) if has_tokenizer else None
        return cls(encoder, head, tokenizer, head_source)

    def save_pretrained(self, directory: PathLike) -> Path:
        """Write the oxiformer format (config.json, tokenizer files, weights.npz): the
        encoder's tensors and the head's (its decoder matrix written out, untied; an int8
        model's head in int8, its bits in ``quantization_config``); ``from_pretrained`` loads
        it back identically."""
        if self._head_source is None:
            raise ConfigError("this MaskedLM was built from parts: it has no head tensors to save")
        tensors = self.encoder.state_dict()
        source = self._head_source
        check_unchanged(source.source, source.stamp, "its LM head")
        head, bits = source.tensors(self.encoder.core_config, read_tensors(source.source))
        # Again after reading: the head's arrays were read from the file meanwhile.
        check_unchanged(source.source, source.stamp, "its LM head")
        tensors.update(head)
        config = dict(self.encoder.config)
        config["tie_word_embeddings"] = False
        if bits is not None:
            config["quantization_config"] = {
                **config["quantization_config"],
                LM_HEAD_BITS: bits,
            }
        return save_model(
            directory,
            config=config,
            tensors=tensors,
            source=self.encoder.source,
            tokenizer=self.tokenizer,
            architecture="BertForMaskedLM",
        )

    def __call__(
        self,
        input_ids: npt.ArrayLike,
        *,
        token_type_ids: npt.ArrayLike | None = None,
        attention_mask: npt.ArrayLike | None = None,
    ) -> MaskedLMOutput:
        """Logits over the vocabulary at every position of ``input_ids`` (batch, seq)."""
        hidden = self.encoder(input_ids, attention_mask, token_type_ids).last_hidden_state
        batch, seq, width = hidden.shape
        logits = self.head.forward(hidden.reshape(batch * seq, width))
        return MaskedLMOutput(logits=logits.reshape(batch, seq, -1))

    def fill_mask(self, inputs: str | Sequence[str], top_k: int = 5) -> Any:
        """The ``top_k`` tokens at each ``[MASK]``, like transformers'
        ``pipeline("fill-mask")``: for one text with one mask a list of
        ``{"score", "token", "token_str", "sequence"}``; with several masks a list of such
        lists (one per mask, in order); for a list of texts, a list of those results."""
        tokenizer = self._tokenizer()
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"top_k must be a positive integer, got {top_k!r}")
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        limit = int(self.encoder.config["max_position_embeddings"])
        encoded = tokenizer(texts, padding=True, truncation=True, max_length=limit)
        ids = encoded["input_ids"]
        logits = self(
            ids,
            token_type_ids=encoded["token_type_ids"],
            attention_mask=encoded["attention_mask"],
        ).logits
        mask_id = tokenizer.mask_token_id
        results = []
        for row, text in enumerate(texts):
            positions = np.flatnonzero(ids[row] == mask_id)
            if positions.size == 0:
                raise InputError(
                    f"no mask token ({tokenizer.convert_ids_to_tokens(mask_id)}) "
                    f"in input {row}: {text!r}"
                )
            tokens = ids[row][encoded["attention_mask"][row] == 1]
            results.append(self._predictions(tokens, positions, logits[row], top_k))
        return results[0] if isinstance(inputs, str) else results

    def _predictions(
        self, tokens: npt.NDArray[np.int64], positions: Any, logits: FloatArray, top_k: int
    ) -> Any:
        tokenizer = self._tokenizer()
        single = positions.size == 1
        top_k = min(top_k, logits.shape[-1])
        per_mask = []
        for position in positions:
            row = logits[position].astype(np.float32)
            exp = np.exp(row - row.max())
            probs = exp / exp.sum()
            best = np.argsort(-probs, kind="stable")[:top_k]
            predictions = []
            for token in best:
                filled = tokens.copy()
                filled[position] = token
                filled = filled[filled != tokenizer.pad_token_id]
                predictions.append(
                    {
                        "score": float(probs[token]),
                        "token": int(token),
                        "token_str": tokenizer.decode([int(token)], skip_special_tokens=False),
                        "sequence": tokenizer.decode(filled.tolist(), skip_special_tokens=single),
                    }
                )
            per_mask.append(predictions)
        return per_mask[0] if single else per_mask

    def _tokenizer(self) -> Tokenizer:
        if self.tokenizer is None:
            raise ConfigError("this model has no tokenizer files: pass input_ids instead of text")
        return self.tokenizer

    def __repr__(self) -> str:
        return f"MaskedLM({self.encoder!r})"


class _HeadSource:
    """Where a loaded head's tensors come from, to read them again for ``save_pretrained``
    (the core keeps its own copy): the raw ``config.json``, the weights file (and its stamp
    at load) and the ``dtype`` asked for."""

    def __init__(
        self, raw: Mapping[str, Any], source: str, dtype: str | None, config_source: str
    ) -> None:
        self.raw, self.source, self.dtype = raw, source, dtype
        family = encoder_family(dict(raw))
        names = family["lm_head"]
        if names is None:
            raise ConfigError(f"{config_source}: {family['name']} has no masked-LM head")
        self.names: Mapping[str, str] = names
        self.prefix: str = family["base_prefix"]
        self.word: str = f"{family['embeddings']['word']}.weight"
        self.stamp = file_stamp(source)

    def strip(self, tensors: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        """``tensors`` without the base prefix (``bert.``)."""
        return {name.removeprefix(self.prefix): array for name, array in tensors.items()}

    def tensors(
        self, config: _core.EncoderConfig, stored: Mapping[str, npt.NDArray[Any]]
    ) -> tuple[dict[str, npt.NDArray[Any]], dict[str, int] | None]:
        """The head's tensors by the core's names and its int8 layers' bits (None: float):
        as stored (an int8 model saved with its head), or quantized now for ``dtype="int8"``."""
        tensors = self.strip(stored)
        quantization = self.raw.get("quantization_config")
        bits = stored_lm_head_bits(quantization, self.source)
        tie = bool(self.raw.get("tie_word_embeddings", True))
        word = tensors.get(self.word)
        head = select_lm_head_tensors(tensors, self.names, config, word, self.source, tie, bits)
        if bits is None and self.dtype == "int8":
            bits = default_lm_head_bits(config)
            head = quantize_lm_head(head, self.names, bits)
        return head, bits
