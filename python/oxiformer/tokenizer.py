"""The BERT WordPiece tokenizer (Rust core), with HF-compatible ids and offsets.

``Tokenizer.from_pretrained(model_dir)`` reads ``tokenizer.json`` (or ``vocab.txt`` with
``tokenizer_config.json``) and ``config.json``; ``tokenizer(texts, padding=True,
truncation=True)`` returns int64 arrays ready for the encoder. Batches are tokenized in
parallel on the oxiformer thread pool; results do not depend on the thread count.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from oxiformer import _core
from oxiformer._checks import TextItem, count, describe, flag, integer, text_items
from oxiformer._checks import path as _path
from oxiformer._core import Encoding
from oxiformer._types import PathLike
from oxiformer.errors import InputError, TokenizerError
from oxiformer.pretrained import existing_directory

__all__ = ["Encoding", "Tokenizer"]


#: Ids are 32-bit in the Rust core; anything from here up has no token.
_MAX_ID = 2**32

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


def _split(items: list[TextItem]) -> tuple[list[str], list[str | None] | None]:
    """Texts and pair texts (None for an item that is a single text; no list at all when
    no item is a pair)."""
    firsts = [item if isinstance(item, str) else item[0] for item in items]
    seconds = [None if isinstance(item, str) else item[1] for item in items]
    return firsts, None if all(second is None for second in seconds) else seconds


def _length(name: str, value: object, minimum: int) -> int | None:
    return None if value is None else count(name, value, minimum, error=TokenizerError)


class Tokenizer:
    """A BERT WordPiece tokenizer: exact Hugging Face ``tokenizers`` ids and offsets."""

    def __init__(self, core: _core.Tokenizer) -> None:
        self._core = core

    # -- loading and saving ---------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: PathLike, *, revision: str | None = None) -> Tokenizer:
        """Load the tokenizer of a model directory (Hugging Face layout), or of a model id in
        the Hugging Face cache (``revision``: a branch, tag or commit of it)."""
        return cls(_core.Tokenizer.from_dir(os.fspath(existing_directory(path, revision))))

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
            os.fspath(_path("path", path)),
            lowercase=flag("lowercase", lowercase),
            strip_accents=None if strip_accents is None else flag("strip_accents", strip_accents),
            handle_chinese_chars=flag("handle_chinese_chars", handle_chinese_chars),
        )
        return cls(core)

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        """Parse the text of a Hugging Face ``tokenizer.json``."""
        if not isinstance(text, str):
            raise InputError(f"text must be the str of a tokenizer.json, got {describe(text)}")
        return cls(_core.Tokenizer.from_json(text))

    def save(self, path: PathLike) -> None:
        """Write ``vocab.txt``, ``tokenizer.json`` and ``tokenizer_config.json`` to a directory.

        ``from_pretrained`` on that directory gives back the same tokenizer. Each file is
        written to a temporary file and renamed into place (a failure leaves the old one).
        """
        self._core.save(os.fspath(_path("path", path)))

    # -- encoding -------------------------------------------------------------------------

    def encode(
        self, text: str, pair: str | None = None, add_special_tokens: bool = True
    ) -> Encoding:
        """Encode one text (or pair): ``.ids .type_ids .attention_mask .offsets .tokens``."""
        return self._core.encode(text, pair, flag("add_special_tokens", add_special_tokens))

    def encode_batch(
        self,
        inputs: Sequence[str | tuple[str, str] | list[str]],
        add_special_tokens: bool = True,
    ) -> list[Encoding]:
        """Encode texts and (text, pair) tuples, mixed as you like, in parallel. No padding,
        no truncation. An item of any other type is an ``InputError`` naming its index."""
        firsts, seconds = _split(text_items(inputs, "inputs"))
        special = flag("add_special_tokens", add_special_tokens)
        return self._core.encode_batch(firsts, seconds, special) if firsts else []

    def count_tokens(
        self,
        inputs: Sequence[str | tuple[str, str] | list[str]],
        add_special_tokens: bool = True,
    ) -> npt.NDArray[np.int64]:
        """Tokens of each text or (text, pair), before truncation: (len(inputs),) int64."""
        firsts, seconds = _split(text_items(inputs, "inputs"))
        special = flag("add_special_tokens", add_special_tokens)
        if not firsts:
            return np.zeros(0, dtype=np.int64)
        return self._core.count_tokens(firsts, seconds, special)

    def __call__(
        self,
        texts: str | Sequence[str] | Sequence[str | tuple[str, str]],
        text_pair: str | Sequence[str] | None = None,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        add_special_tokens: bool = True,
    ) -> dict[str, npt.NDArray[np.int64]]:
        """Encode a batch as transformers does, into int64 arrays of shape (batch, seq).

        ``texts``: a str or a list of str and (text, text_pair) tuples (mixed as you like), or
        a list of str with their pairs in ``text_pair``. Returns ``input_ids``,
        ``token_type_ids`` and ``attention_mask``. ``padding``: False, True / "longest",
        "max_length"; ``truncation``: False, True / "longest_first", "only_first",
        "only_second" (None: "longest_first" if ``max_length`` is given, as transformers).
        Without an explicit ``max_length``, truncation and "max_length" padding use
        ``model_max_length``. Rows must end up the same length (pad if they do not).
        """
        single = isinstance(texts, str)
        items = text_items([texts] if single else texts, "texts", pairs=text_pair is None)
        firsts, seconds = _split(items)
        if text_pair is not None:
            pair_texts = text_items(
                [text_pair] if isinstance(text_pair, str) else text_pair, "text_pair", pairs=False
            )
            seconds = [str(text) for text in pair_texts]
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
        max_length = _length("max_length", max_length, 0)
        multiple = _length("pad_to_multiple_of", pad_to_multiple_of, 1)
        if max_length is None and (trunc is not None or pad == "max_length"):
            max_length = self.model_max_length
            if max_length is None and pad == "max_length":
                raise TokenizerError("padding='max_length' needs max_length (none is known)")
            if max_length is None:
                trunc = None
        options = _core.EncodeOptions(
            add_special_tokens=flag("add_special_tokens", add_special_tokens),
            truncation=trunc,
            max_length=max_length,
            padding=pad,
            pad_to_multiple_of=multiple,
        )
        return self._core.encode_arrays(firsts, seconds, options)

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
        names = text_items(tokens, "tokens", pairs=False)
        ids = [self._core.token_to_id(str(token)) for token in names]
        return [unk if found is None else found for found in ids]

    def convert_ids_to_tokens(self, ids: int | Sequence[int]) -> str | list[str]:
        """Tokens of ids (``[UNK]`` for ids without a token)."""
        unk = self._core.special_tokens.unk
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool):
            token = self.id_to_token(int(ids))
            return unk if token is None else token
        tokens = [self.id_to_token(index) for index in self._ids(ids)]
        return [unk if token is None else token for token in tokens]

    def token_to_id(self, token: str) -> int | None:
        if not isinstance(token, str):
            raise InputError(f"token must be a str, got {describe(token)}")
        return self._core.token_to_id(token)

    def id_to_token(self, index: int) -> str | None:
        """The token of an id, None for an id without one (negative or too large too)."""
        number = integer("index", index)
        return self._core.id_to_token(number) if 0 <= number < _MAX_ID else None

    def decode(
        self,
        ids: int | Sequence[int] | npt.NDArray[np.integer],
        skip_special_tokens: bool = True,
    ) -> str:
        """Text of ids, as the Hugging Face WordPiece decoder ("##" merged, cleanup). An id
        outside the vocabulary (negative, or ``vocab_size`` and up) is an ``InputError``
        naming its index, not skipped."""
        values = self._ids(ids)
        limit = self.vocab_size
        for index, value in enumerate(values):
            if not 0 <= value < limit:
                raise InputError(f"ids[{index}] = {value} is outside the vocabulary [0, {limit})")
        return self._core.decode(values, flag("skip_special_tokens", skip_special_tokens))

    @staticmethod
    def _ids(ids: object) -> list[int]:
        """``ids`` (one id, or a sequence or 1-D array of them) as a list of ints."""
        if isinstance(ids, (int, np.integer)) and not isinstance(ids, (bool, np.bool_)):
            return [int(ids)]
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise InputError(f"ids must be a sequence of integers, got {describe(ids)}")
        return [integer(f"ids[{index}]", value) for index, value in enumerate(ids)]

    # -- properties -----------------------------------------------------------------------

    @property
    def model_max_length(self) -> int | None:
        """The most tokens the model takes (min of model_max_length, max_position_embeddings)."""
        return self._core.model_max_length

    @property
    def vocab_size(self) -> int:
        return self._core.vocab_size

    def _role_id(self, token: str) -> int:
        found = self._core.token_to_id(token)
        if found is None:
            raise TokenizerError(f"the token {token!r} is not in the vocabulary")
        return found

    @property
    def unk_token_id(self) -> int:
        return self._role_id(self._core.special_tokens.unk)

    @property
    def sep_token_id(self) -> int:
        return self._role_id(self._core.special_tokens.sep)

    @property
    def cls_token_id(self) -> int:
        return self._role_id(self._core.special_tokens.cls)

    @property
    def pad_token_id(self) -> int:
        return self._role_id(self._core.special_tokens.pad)

    @property
    def mask_token_id(self) -> int:
        return self._role_id(self._core.special_tokens.mask)

    @property
    def do_lower_case(self) -> bool:
        return self._core.normalizer.lowercase

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self._core.num_special_tokens_to_add(flag("pair", pair))

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return (
            f"Tokenizer(vocab_size={self.vocab_size}, lowercase={self.do_lower_case}, "
            f"model_max_length={self.model_max_length})"
        )
