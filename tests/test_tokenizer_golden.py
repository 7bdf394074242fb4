"""Tokenizer parity with the golden MiniLM fixtures and with HF ``tokenizers`` (same files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import oxiformer
import pytest
from oxiformer import InputError, Tokenizer, TokenizerError

tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def texts(fixtures: Path) -> list[str]:
    loaded: list[str] = json.loads((fixtures / "minilm" / "texts.json").read_text("utf-8"))
    return loaded


@pytest.fixture(scope="module")
def tok(minilm_dir: Path) -> Tokenizer:
    return Tokenizer.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def hf(minilm_dir: Path) -> tokenizers.Tokenizer:
    oracle = tokenizers.Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    oracle.no_padding()
    oracle.no_truncation()
    return oracle


def test_golden_ids_and_masks(tok: Tokenizer, texts: list[str], fixtures: Path) -> None:
    golden = np.load(fixtures / "minilm" / "golden.npz", allow_pickle=False)
    out = tok(texts, padding=True, truncation=True, max_length=256)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert out[key].dtype == np.int64
        assert out[key].shape == golden[key].shape, key
        mismatches = int((out[key] != golden[key]).sum())
        print(f"{key}: {mismatches} mismatches of {out[key].size}")
        assert mismatches == 0


def test_golden_offsets(tok: Tokenizer, texts: list[str], fixtures: Path) -> None:
    golden = np.load(fixtures / "minilm" / "golden.npz", allow_pickle=False)["offsets"]
    width = golden.shape[1]
    rows = []
    for encoding in tok.encode_batch(texts):
        offsets = np.zeros((width, 2), dtype=np.int64)
        offsets[: len(encoding)] = np.array(encoding.offsets, dtype=np.int64).reshape(-1, 2)
        rows.append(offsets)
    mismatches = int((np.stack(rows) != golden).any(axis=2).sum())
    print(f"offsets: {mismatches} mismatching tokens of {golden.shape[0] * width}")
    assert mismatches == 0


def test_golden_pairs(tok: Tokenizer, texts: list[str], fixtures: Path) -> None:
    golden = np.load(fixtures / "minilm" / "pairs.npz", allow_pickle=False)
    out = tok(texts[2:8], texts[8:14], padding=True, truncation=True, max_length=64)
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert out[key].shape == golden[key].shape, key
        mismatches = int((out[key] != golden[key]).sum())
        print(f"pairs {key}: {mismatches} mismatches")
        assert mismatches == 0


def _same(ours: oxiformer.Encoding, theirs: tokenizers.Encoding) -> None:
    assert ours.ids == theirs.ids
    assert ours.type_ids == theirs.type_ids
    assert ours.offsets == theirs.offsets
    assert ours.tokens == theirs.tokens
    assert ours.attention_mask == theirs.attention_mask
    assert ours.special_tokens_mask == theirs.special_tokens_mask


def test_pairs_with_offsets_vs_hf(
    tok: Tokenizer, hf: tokenizers.Tokenizer, texts: list[str]
) -> None:
    pairs = [(a, b) for a in texts[:12] for b in texts[::-3]]
    ours = tok.encode_batch(pairs)
    theirs = hf.encode_batch(pairs)
    for pair, mine, their in zip(pairs, ours, theirs):
        assert mine.offsets == their.offsets, pair
        _same(mine, their)
    plain = tok.encode_batch(pairs, add_special_tokens=False)
    for mine, their in zip(plain, hf.encode_batch(pairs, add_special_tokens=False)):
        _same(mine, their)
    print(f"{len(pairs)} pairs equal to HF (ids, type ids, offsets, tokens)")


@pytest.mark.parametrize(
    "text",
    [
        "[CLS] hello [MASK] world[SEP]x",
        "[MASK][MASK]a[UNK]b",
        "lower [mask] is not special",
        "[PAD]",
        " [SEP] ",
        "[SEP [SEP]] [CLS",
    ],
)
def test_special_tokens_in_text(tok: Tokenizer, hf: tokenizers.Tokenizer, text: str) -> None:
    _same(tok.encode(text), hf.encode(text))
    _same(tok.encode(text, add_special_tokens=False), hf.encode(text, add_special_tokens=False))


@pytest.mark.parametrize("strategy", ["longest_first", "only_first", "only_second"])
@pytest.mark.parametrize("max_length", [3, 4, 5, 8, 13, 20, 64])
def test_truncation_vs_hf(
    tok: Tokenizer, minilm_dir: Path, texts: list[str], strategy: str, max_length: int
) -> None:
    oracle = tokenizers.Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    oracle.no_padding()
    oracle.enable_truncation(max_length, strategy=strategy)
    pairs = [(texts[i], texts[j]) for i in (1, 5, 11, 34) for j in (2, 7, 30)]
    for first, second in pairs:
        try:
            expected = oracle.encode(first, second)
        except Exception:
            with pytest.raises(TokenizerError):
                tok([first], [second], truncation=strategy, max_length=max_length)
            continue
        out = tok([first], [second], truncation=strategy, max_length=max_length)
        assert out["input_ids"][0].tolist() == expected.ids
        assert out["token_type_ids"][0].tolist() == expected.type_ids
    if strategy != "only_second":
        single = tok(texts, truncation=strategy, max_length=max_length, padding=True)
        expected_rows = oracle.encode_batch(texts)
        for row, expected in zip(single["input_ids"], expected_rows):
            assert row[: len(expected.ids)].tolist() == expected.ids


@pytest.mark.parametrize("multiple", [None, 8, 7])
def test_padding_vs_hf(
    tok: Tokenizer, minilm_dir: Path, texts: list[str], multiple: int | None
) -> None:
    oracle = tokenizers.Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    oracle.no_truncation()
    oracle.enable_padding(pad_to_multiple_of=multiple)
    expected = oracle.encode_batch(texts[:10])
    out = tok(texts[:10], padding=True, pad_to_multiple_of=multiple)
    assert out["input_ids"].tolist() == [e.ids for e in expected]
    assert out["attention_mask"].tolist() == [e.attention_mask for e in expected]
    oracle.enable_padding(length=60, pad_to_multiple_of=multiple)
    expected = oracle.encode_batch(texts[:10])
    out = tok(
        texts[:10],
        padding="max_length",
        max_length=60,
        truncation=False,
        pad_to_multiple_of=multiple,
    )
    assert out["input_ids"].tolist() == [e.ids for e in expected]


def test_decode_vs_hf(tok: Tokenizer, hf: tokenizers.Tokenizer, texts: list[str]) -> None:
    for text in [*texts, "I do not think it 's [MASK] , isn ' t it ?"]:
        ids = hf.encode(text).ids
        for skip in (True, False):
            assert tok.decode(ids, skip_special_tokens=skip) == hf.decode(
                ids, skip_special_tokens=skip
            )
    assert tok.decode(np.array([101, 7592, 102])) == "hello"


def test_tokenize_and_ids(tok: Tokenizer, hf: tokenizers.Tokenizer) -> None:
    text = "Unaffable déjà-vu, 東京!"
    tokens = tok.tokenize(text)
    assert tokens == hf.encode(text, add_special_tokens=False).tokens
    assert tok.convert_tokens_to_ids(tokens) == hf.encode(text, add_special_tokens=False).ids
    assert tok.convert_tokens_to_ids("no-such-token") == tok.unk_token_id
    assert tok.convert_ids_to_tokens([101, 102]) == ["[CLS]", "[SEP]"]
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id) == (
        0,
        100,
        101,
        102,
    )
    assert tok.mask_token_id == 103
    assert tok.vocab_size == hf.get_vocab_size() == 30522


def test_model_max_length(tok: Tokenizer, fixtures: Path) -> None:
    # MiniLM: model_max_length 512, max_position_embeddings 512; tokenizer.json's
    # truncation 128 / padding 128 are ignored.
    assert tok.model_max_length == 512
    assert tok(["a b c"])["input_ids"].shape == (1, 5)
    tiny = Tokenizer.from_pretrained(fixtures / "tiny-bert" / "seqcls")
    assert tiny.model_max_length == 128  # max_position_embeddings 128 < 512
    long_text = "word " * 300
    assert tiny([long_text], truncation=True)["input_ids"].shape == (1, 128)
    assert tiny([long_text], padding="max_length", truncation=True)["input_ids"].shape == (1, 128)


def test_tiny_bert_goldens(fixtures: Path) -> None:
    texts = json.loads((fixtures / "tiny-bert" / "texts.json").read_text("utf-8"))
    for task in ("seqcls", "tokcls"):
        golden = np.load(fixtures / "tiny-bert" / task / "golden.npz", allow_pickle=False)
        tok = Tokenizer.from_pretrained(fixtures / "tiny-bert" / task)
        out = tok(texts["texts_a"], texts["texts_b"], padding=True, truncation=True)
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            assert np.array_equal(out[key], golden[key]), (task, key)


def test_save_round_trip(tok: Tokenizer, texts: list[str], tmp_path: Path) -> None:
    tok.save(tmp_path / "saved")
    loaded = Tokenizer.from_pretrained(tmp_path / "saved")
    assert loaded.model_max_length == tok.model_max_length
    oracle = tokenizers.Tokenizer.from_file(str(tmp_path / "saved" / "tokenizer.json"))
    for a, b, c in zip(
        tok.encode_batch(texts), loaded.encode_batch(texts), oracle.encode_batch(texts)
    ):
        assert a.ids == b.ids == c.ids
        assert a.offsets == b.offsets == c.offsets
    vocab_only = tmp_path / "vocab_only"
    vocab_only.mkdir()
    shutil.copy(tmp_path / "saved" / "vocab.txt", vocab_only / "vocab.txt")
    shutil.copy(tmp_path / "saved" / "tokenizer_config.json", vocab_only / "tokenizer_config.json")
    from_vocab = Tokenizer.from_pretrained(vocab_only)
    for a, b in zip(tok.encode_batch(texts), from_vocab.encode_batch(texts)):
        assert a.ids == b.ids
        assert a.offsets == b.offsets


def test_vocab_txt_dir_matches_tokenizer_json(
    minilm_dir: Path, texts: list[str], tmp_path: Path
) -> None:
    for name in ("vocab.txt", "tokenizer_config.json", "config.json"):
        shutil.copy(minilm_dir / name, tmp_path / name)
    from_txt = Tokenizer.from_pretrained(tmp_path)
    from_json = Tokenizer.from_pretrained(minilm_dir)
    assert from_txt.model_max_length == 512
    for a, b in zip(from_txt.encode_batch(texts), from_json.encode_batch(texts)):
        assert a.ids == b.ids and a.offsets == b.offsets


def test_threads_do_not_change_results(tok: Tokenizer, texts: list[str]) -> None:
    batch = texts * 40
    before = oxiformer.get_num_threads()
    try:
        oxiformer.set_num_threads(1)
        one = tok(batch, padding=True, truncation=True)
        oxiformer.set_num_threads(2)
        two = tok(batch, padding=True, truncation=True)
    finally:
        oxiformer.set_num_threads(before)
    for key in one:
        assert np.array_equal(one[key], two[key])


def test_errors(tok: Tokenizer, tmp_path: Path) -> None:
    with pytest.raises(TokenizerError, match=r"no tokenizer\.json or vocab\.txt"):
        Tokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json", "utf-8")
    with pytest.raises(TokenizerError, match=r"tokenizer\.json"):
        Tokenizer.from_pretrained(tmp_path)
    with pytest.raises(TokenizerError, match="padding=True"):
        tok(["a", "a b c"])
    with pytest.raises(TokenizerError, match="truncation"):
        tok(["a"], truncation="sideways")
    with pytest.raises(TokenizerError, match="special tokens"):
        tok(["a"], truncation=True, max_length=1)
    with pytest.raises(TokenizerError, match="pairs"):
        tok(["a b c d"], truncation="only_second", max_length=3)
    with pytest.raises(InputError, match=r"texts\[1\] is int 3, expected a str"):
        tok(["a", 3])  # type: ignore[list-item]
    with pytest.raises(TokenizerError, match="2 texts but 1"):
        tok(["a", "b"], ["c"])


@pytest.mark.parametrize(
    "flags",
    [
        {"lstrip": True},
        {"rstrip": True},
        {"lstrip": True, "rstrip": True},
        {"single_word": True},
    ],
)
def test_added_token_flags_vs_hf(minilm_dir: Path, tmp_path: Path, flags: dict[str, bool]) -> None:
    document = json.loads((minilm_dir / "tokenizer.json").read_text("utf-8"))
    for token in document["added_tokens"]:
        if token["content"] == "[MASK]":
            token.update(flags)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(document), "utf-8")
    ours = Tokenizer.from_json(path.read_text("utf-8"))
    theirs = tokenizers.Tokenizer.from_file(str(path))
    theirs.no_padding()
    theirs.no_truncation()
    for text in [
        "a [MASK] b",
        "a   [MASK]   b",
        "a[MASK]b",
        "[MASK]",
        " [MASK] [MASK]  ",
        "x[MASK] y",
        "é [MASK]é",
        "\t[MASK]\n",
    ]:
        mine, their = ours.encode(text), theirs.encode(text)
        # HF's token *string* for a stripped match includes the absorbed spaces
        # (" [MASK] "); ours is the token itself. Ids and offsets are equal.
        assert mine.ids == their.ids
        assert mine.offsets == their.offsets
        assert mine.type_ids == their.type_ids


def test_no_post_processor_no_decoder_vs_hf(
    minilm_dir: Path, tmp_path: Path, texts: list[str]
) -> None:
    document = json.loads((minilm_dir / "tokenizer.json").read_text("utf-8"))
    document["post_processor"] = None
    document["decoder"] = None
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(document), "utf-8")
    ours = Tokenizer.from_json(path.read_text("utf-8"))
    theirs = tokenizers.Tokenizer.from_file(str(path))
    theirs.no_padding()
    theirs.no_truncation()
    pairs = list(zip(texts[:10], texts[10:20]))
    for mine, their in zip(ours.encode_batch(pairs), theirs.encode_batch(pairs)):
        _same(mine, their)
        assert ours.decode(mine.ids) == theirs.decode(their.ids)


@pytest.mark.parametrize(
    "options",
    [
        {"lowercase": True, "strip_accents": False},
        {"lowercase": False, "strip_accents": True},
        {"lowercase": True, "handle_chinese_chars": False},
        {"lowercase": False, "strip_accents": None, "handle_chinese_chars": False},
    ],
)
def test_normalizer_options_vs_hf(
    fixtures: Path, texts: list[str], options: dict[str, bool | None]
) -> None:
    vocab = fixtures / "vocabs" / "bert-base-cased.txt"
    ours = Tokenizer.from_vocab(vocab, **options)  # type: ignore[arg-type]
    theirs = tokenizers.BertWordPieceTokenizer(str(vocab), **options)
    extra = ["İstanbul ÇA Ǆ ﬁ Ωmega", "中文字符和かなカナ、한국어", "e\u0301\u0316 a\u0344"]
    for text in texts + extra:
        _same(ours.encode(text), theirs.encode(text))
