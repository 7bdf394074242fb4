"""Random Unicode vs HF ``tokenizers``: never a crash, equal wherever HF accepts the input.

Texts mix every Unicode category (combining marks, emoji, CJK, controls, unassigned and
private-use code points, odd whitespace), special tokens and very long words. Strings with
lone surrogates cannot be UTF-8 encoded: HF raises a TypeError, oxiformer a TokenizerError.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import VOCAB_SETTINGS, VOCABS, require_fixtures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oxiformer import Tokenizer, TokenizerError

tokenizers = pytest.importorskip("tokenizers")

SPECIAL_PIECES = ["[CLS]", "[SEP]", "[MASK]", "[UNK]", "[PAD]", "[", "]", "##", " ", "\t", "\n"]

any_char = st.characters(exclude_categories=["Cs"])
marks = st.characters(categories=["Mn", "Mc", "Me"])
cjk = st.characters(min_codepoint=0x3400, max_codepoint=0x9FFF)
emoji = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
controls = st.characters(categories=["Cc", "Cf", "Co", "Cn", "Zs", "Zl", "Zp"])
latin = st.characters(min_codepoint=0x20, max_codepoint=0x24F)

fragments = st.one_of(
    st.text(any_char, max_size=8),
    st.text(st.one_of(latin, marks), max_size=12),
    st.text(cjk, max_size=4),
    st.text(emoji, max_size=3),
    st.text(controls, max_size=3),
    st.sampled_from(SPECIAL_PIECES),
    # long words: around max_input_chars_per_word (100)
    st.integers(95, 130).map(lambda n: "a" * n),
    st.text(st.sampled_from("abcdéü한中"), min_size=90, max_size=120),
)
texts = st.lists(fragments, max_size=12).map("".join)


def _load(name: str) -> tuple[Tokenizer, tokenizers.Tokenizer]:
    filename, options = VOCAB_SETTINGS[name]
    require_fixtures(f"vocabs/{filename}")
    path: Path = VOCABS / filename
    return Tokenizer.from_vocab(path, **options), tokenizers.BertWordPieceTokenizer(
        str(path), **options
    )


PAIRS = {name: _load(name) for name in VOCAB_SETTINGS} if VOCABS.is_dir() else {}


@pytest.mark.parametrize("name", sorted(VOCAB_SETTINGS))
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, pair=st.one_of(st.none(), texts))
def test_random_text_matches_hf(name: str, text: str, pair: str | None) -> None:
    require_fixtures("vocabs")
    ours, theirs = PAIRS[name]
    mine = ours.encode(text, pair)
    expected = theirs.encode(text, pair)
    assert mine.ids == expected.ids
    assert mine.type_ids == expected.type_ids
    assert mine.offsets == expected.offsets
    assert mine.tokens == expected.tokens


@settings(max_examples=100, deadline=None)
@given(
    head=texts,
    tail=texts,
    surrogate=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
)
def test_lone_surrogates_are_a_clear_error(head: str, tail: str, surrogate: str) -> None:
    require_fixtures("vocabs")
    ours, theirs = PAIRS["uncased"]
    text = head + surrogate + tail
    with pytest.raises(TypeError):
        theirs.encode(text)
    with pytest.raises(TokenizerError, match="surrogate"):
        ours.encode(text)
    with pytest.raises(TokenizerError, match=r"texts\[1\]"):
        ours(["ok", text], padding=True)


@settings(max_examples=200, deadline=None)
@given(
    batch=st.lists(st.tuples(texts, texts), min_size=1, max_size=6),
    max_length=st.integers(3, 40),
    strategy=st.sampled_from(["longest_first", "only_first", "only_second"]),
    multiple=st.sampled_from([None, 1, 4, 7]),
)
def test_random_batches_truncated_and_padded_like_hf(
    batch: list[tuple[str, str]], max_length: int, strategy: str, multiple: int | None
) -> None:
    require_fixtures("vocabs")
    ours, theirs = PAIRS["uncased"]
    theirs.enable_truncation(max_length, strategy=strategy)
    theirs.enable_padding(pad_to_multiple_of=multiple)
    firsts = [first for first, _ in batch]
    seconds = [second for _, second in batch]
    try:
        expected = theirs.encode_batch(batch)
    except Exception:
        expected = None
    finally:
        theirs.no_truncation()  # the oracle is shared with the other tests
        theirs.no_padding()
    if expected is None:
        with pytest.raises(TokenizerError, match="truncation"):
            ours(firsts, seconds, padding=True, truncation=strategy, max_length=max_length)
        return
    out = ours(
        firsts,
        seconds,
        padding=True,
        truncation=strategy,
        max_length=max_length,
        pad_to_multiple_of=multiple,
    )
    assert out["input_ids"].tolist() == [encoding.ids for encoding in expected]
    assert out["token_type_ids"].tolist() == [encoding.type_ids for encoding in expected]
    assert out["attention_mask"].tolist() == [encoding.attention_mask for encoding in expected]
