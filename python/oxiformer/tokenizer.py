"""The BERT WordPiece tokenizer (Rust core), with HF-compatible ids and offsets.

``Tokenizer.from_pretrained(model_dir)`` reads ``tokenizer.json`` (or ``vocab.txt`` with
``tokenizer_config.json``) and ``config.json``; ``tokenizer(texts, padding=True,
truncation=True)`` returns int64 arrays ready for the encoder. Batches are tokenized in
parallel on the oxiformer thread pool; results do not depend on the thread count.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Union

import numpy as np
import numpy.typing as npt

from oxiformer import _core
from oxiformer._core import Encoding
from oxiformer.errors import TokenizerError

__all__ = ["Encoding", "Tokenizer"]

PathLike = Union[str, "os.PathLike[str]"]

_PADDING = {
    False: None,
    "do_not_pad": None,
    True: "longest",
    "longest": "longest",
    "max_length": "max_length",
}
_TRUNCATION = {
    False: None,
    "do_not_truncate": None,
    True: "longest_first",
    "longest_first": "longest_first",
    "only_first": "only_first",
    "only_second": "only_second",
}


def _as_list(texts: str | Sequence[str], name: str) -> list[str]:
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, Sequence):
        raise TokenizerError(f"{name} must be a str or a sequence of str, not {type(texts)!r}")
    return list(texts)


class Tokenizer:
    """A BERT WordPiece tokenizer: exact Hugging Face ``tokenizers`` ids and offsets."""

    def __init__(self, core: _core.Tokenizer) -> None:
        self._core = core

    # -- loading and saving ---------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: PathLike) -> Tokenizer:
        """Load the tokenizer of a model directory (Hugging Face layout)."""
        return cls(_core.Tokenizer.from_dir(os.fspath(path)))

    @classmethod
    def from_vocab(
        cls,
        path: PathLike,
        lowercase: bool = True,
        strip_accents: bool | None = None,
        handle_chinese_chars: bool = True,
    ) -> Tokenizer:
        """A BERT tokenizer over a ``vocab.txt`` (as ``tokenizers.BertWordPieceTokenizer``).

        ``strip_accents=None`` follows ``lowercase``.
        """
        core = _core.Tokenizer.from_vocab(
            os.fspath(path),
            lowercase=lowercase,
            strip_accents=strip_accents,
            handle_chinese_chars=handle_chinese_chars,
        )
        return cls(core)

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        """Parse the text of a Hugging Face ``tokenizer.json``."""
        return cls(_core.Tokenizer.from_json(text))

    def save(self, path: PathLike) -> None:
        """Write ``vocab.txt``, ``tokenizer.json`` and ``tokenizer_config.json`` to a directory.

        ``from_pretrained`` on that directory gives back the same tokenizer.
        """
        self._core.save(os.fspath(path))

    # -- encoding -------------------------------------------------------------------------

    def encode(
        self, text: str, pair: str | None = None, add_special_tokens: bool = True
    ) -> Encoding:
        """Encode one text (or pair): ``.ids .type_ids .attention_mask .offsets .tokens``."""
        return self._core.encode(text, pair, add_special_tokens)

    def encode_batch(
        self,
        inputs: Sequence[str | tuple[str, str] | list[str]],
        add_special_tokens: bool = True,
    ) -> list[Encoding]:
        """Encode texts, or (text, pair) tuples, in parallel. No padding, no truncation."""
        inputs = list(inputs)
        if not inputs:
            return []
        texts = [item for item in inputs if isinstance(item, str)]
        if len(texts) == len(inputs):
            return self._core.encode_batch(texts, None, add_special_tokens)
        firsts: list[str] = []
        seconds: list[str] = []
        for index, item in enumerate(inputs):
            if isinstance(item, str) or len(item) != 2:
                raise TokenizerError(
                    f"inputs[{index}]: mix of texts and pairs; give all texts or all "
                    "(text, pair) tuples"
                )
            firsts.append(item[0])
            seconds.append(item[1])
        return self._core.encode_batch(firsts, seconds, add_special_tokens)

    def __call__(
        self,
        texts: str | Sequence[str],
        text_pair: str | Sequence[str] | None = None,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        add_special_tokens: bool = True,
    ) -> dict[str, npt.NDArray[np.int64]]:
        """Encode a batch as transformers does, into int64 arrays of shape (batch, seq).

        Returns ``input_ids``, ``token_type_ids`` and ``attention_mask``. ``padding``: False,
        True / "longest", "max_length"; ``truncation``: False, True / "longest_first",
        "only_first", "only_second" (None: "longest_first" if ``max_length`` is given, as
        transformers). Without an explicit ``max_length``, truncation and "max_length" padding
        use ``model_max_length``. Rows must end up the same length (pad if they do not).
        """
        firsts = _as_list(texts, "texts")
        seconds = None if text_pair is None else _as_list(text_pair, "text_pair")
        try:
            pad = _PADDING[padding]
        except (KeyError, TypeError):
            raise TokenizerError(f"unknown padding {padding!r}") from None
        if truncation is None:
            truncation = max_length is not None
        try:
            trunc = _TRUNCATION[truncation]
        except (KeyError, TypeError):
            raise TokenizerError(f"unknown truncation {truncation!r}") from None
        if max_length is None and (trunc is not None or pad == "max_length"):
            max_length = self.model_max_length
            if max_length is None and pad == "max_length":
                raise TokenizerError("padding='max_length' needs max_length (none is known)")
            if max_length is None:
                trunc = None
        input_ids, token_type_ids, attention_mask = self._core.encode_arrays(
            firsts,
            seconds,
            add_special_tokens,
            trunc,
            max_length,
            pad,
            pad_to_multiple_of,
        )
        return {
            "input_ids": input_ids,
            "token_type_ids": token_type_ids,
            "attention_mask": attention_mask,
        }

    # -- tokens and ids -------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        """The WordPiece tokens of a text, without special tokens."""
        return self._core.tokenize(text)

    def convert_tokens_to_ids(self, tokens: str | Sequence[str]) -> int | list[int]:
        """Ids of tokens; unknown tokens give the ``[UNK]`` id (as transformers)."""
        unk = self.unk_token_id
        if isinstance(tokens, str):
            found = self._core.token_to_id(tokens)
            return unk if found is None else found
        ids = [self._core.token_to_id(token) for token in tokens]
        return [unk if found is None else found for found in ids]

    def convert_ids_to_tokens(self, ids: int | Sequence[int]) -> str | list[str]:
        """Tokens of ids (``[UNK]`` for ids without a token)."""
        unk = self._core.special_tokens[0]
        if isinstance(ids, int):
            token = self._core.id_to_token(ids)
            return unk if token is None else token
        tokens = [self._core.id_to_token(int(index)) for index in ids]
        return [unk if token is None else token for token in tokens]

    def token_to_id(self, token: str) -> int | None:
        return self._core.token_to_id(token)

    def id_to_token(self, index: int) -> str | None:
        return self._core.id_to_token(index)

    def decode(
        self,
        ids: Sequence[int] | npt.NDArray[np.integer],
        skip_special_tokens: bool = True,
    ) -> str:
        """Text of ids, as the Hugging Face WordPiece decoder ("##" merged, cleanup)."""
        return self._core.decode([int(index) for index in ids], skip_special_tokens)

    # -- properties -----------------------------------------------------------------------

    @property
    def model_max_length(self) -> int | None:
        """The most tokens the model takes (min of model_max_length, max_position_embeddings)."""
        return self._core.model_max_length

    @property
    def vocab_size(self) -> int:
        return self._core.vocab_size

    def _role_id(self, index: int) -> int:
        token = self._core.special_tokens[index]
        found = self._core.token_to_id(token)
        if found is None:
            raise TokenizerError(f"the token {token!r} is not in the vocabulary")
        return found

    @property
    def unk_token_id(self) -> int:
        return self._role_id(0)

    @property
    def sep_token_id(self) -> int:
        return self._role_id(1)

    @property
    def cls_token_id(self) -> int:
        return self._role_id(2)

    @property
    def pad_token_id(self) -> int:
        return self._role_id(3)

    @property
    def mask_token_id(self) -> int:
        return self._role_id(4)

    @property
    def do_lower_case(self) -> bool:
        return self._core.normalizer[3]

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self._core.num_special_tokens_to_add(pair)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self.vocab_size}, lowercase={self.do_lower_case}, "
            f"model_max_length={self.model_max_length})"
        )
