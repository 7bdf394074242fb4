"""Sequence and token classification against the golden transformers outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import oxiformer
import pytest
from helpers import FIXTURES, load_golden, max_abs_diff, require_fixtures

require_fixtures("tiny-bert/seqcls", "tiny-bert/tokcls", "tiny-bert/texts.json")

SEQCLS = FIXTURES / "tiny-bert" / "seqcls"
TOKCLS = FIXTURES / "tiny-bert" / "tokcls"
PAIRS = json.loads((FIXTURES / "tiny-bert" / "texts.json").read_text(encoding="utf-8"))


def test_sequence_classifier_matches_golden_logits_probs_and_loss() -> None:
    golden = load_golden(SEQCLS / "golden.npz")
    clf = oxiformer.SequenceClassifier.from_pretrained(SEQCLS)
    out = clf(
        input_ids=golden["input_ids"],
        attention_mask=golden["attention_mask"],
        token_type_ids=golden["token_type_ids"],
        labels=golden["labels"],
    )
    assert max_abs_diff("seqcls logits", out.logits, golden["logits"]) <= 1e-5
    assert max_abs_diff("seqcls probs", out.probs, golden["probs"]) <= 1e-5
    assert out.loss is not None
    assert max_abs_diff("seqcls loss", out.loss, golden["loss"]) <= 1e-5
    assert clf(golden["input_ids"]).loss is None


def test_sequence_classifier_predicts_from_text_pairs_like_the_golden_inputs() -> None:
    golden = load_golden(SEQCLS / "golden.npz")
    clf = oxiformer.SequenceClassifier.from_pretrained(SEQCLS)
    pairs = list(zip(PAIRS["texts_a"], PAIRS["texts_b"]))
    encoded = clf.tokenizer(PAIRS["texts_a"], text_pair=PAIRS["texts_b"], padding=True)
    assert encoded["input_ids"].tolist() == golden["input_ids"].tolist()
    predictions = clf.predict(pairs)
    best = golden["probs"].argmax(axis=1)
    assert [p["label"] for p in predictions] == [f"LABEL_{i}" for i in best]
    scores = [p["score"] for p in predictions]
    assert max_abs_diff("predict scores", scores, golden["probs"].max(axis=1)) <= 1e-5
    single = clf.predict("I loved this movie!")
    assert len(single) == 1 and single[0]["label"].startswith("LABEL_")


def test_token_classifier_matches_golden_logits_and_loss() -> None:
    golden = load_golden(TOKCLS / "golden.npz")
    clf = oxiformer.TokenClassifier.from_pretrained(TOKCLS)
    out = clf(
        golden["input_ids"], golden["attention_mask"], golden["token_type_ids"], golden["labels"]
    )
    assert max_abs_diff("tokcls logits", out.logits, golden["logits"]) <= 1e-5
    assert out.loss is not None
    assert max_abs_diff("tokcls loss", out.loss, golden["loss"]) <= 1e-5


def test_token_classifier_word_predictions_have_character_spans() -> None:
    clf = oxiformer.TokenClassifier.from_pretrained(TOKCLS)
    text = "Transformers reshaped NLP, unbelievably."
    words = clf.predict(text)
    assert [w["word"] for w in words] == [
        "Transformers",
        "reshaped",
        "NLP",
        ",",
        "unbelievably",
        ".",
    ]
    for word in words:
        assert text[word["start"] : word["end"]] == word["word"]
        assert word["label"] in clf.labels and 0.0 < word["score"] <= 1.0
    # The first sub-token decides: the label equals the argmax at that token's position.
    encoded = clf.tokenizer([text])
    probs = clf(encoded["input_ids"]).probs[0]
    tokens = clf.tokenizer.encode(text).tokens
    first_pieces = [i for i, tok in enumerate(tokens) if i and not tok.startswith("##")][:-1]
    assert [clf.labels[int(probs[i].argmax())] for i in first_pieces] == [w["label"] for w in words]
    assert clf.predict([text, "ok"])[1][0]["word"] == "ok"


@pytest.mark.parametrize("kind", ["seqcls", "tokcls"])
def test_save_pretrained_loads_back_identically(kind: str, tmp_path: Path) -> None:
    source = SEQCLS if kind == "seqcls" else TOKCLS
    cls = oxiformer.SequenceClassifier if kind == "seqcls" else oxiformer.TokenClassifier
    golden = load_golden(source / "golden.npz")
    model = cls.from_pretrained(source)
    out = model.save_pretrained(tmp_path / kind)
    assert (out / "weights.npz").is_file() and (out / "config.json").is_file()
    copy = cls.from_pretrained(out)
    inputs = (golden["input_ids"], golden["attention_mask"], golden["token_type_ids"])
    assert copy(*inputs).logits.tobytes() == model(*inputs).logits.tobytes()
    assert copy.labels == model.labels


def test_missing_head_is_a_weights_error(tmp_path: Path) -> None:
    with np.load(SEQCLS / "weights.npz") as weights:
        tensors = {name: weights[name] for name in weights.files if "classifier" not in name}
    np.savez(tmp_path / "weights.npz", **tensors)
    (tmp_path / "config.json").write_bytes((SEQCLS / "config.json").read_bytes())
    with pytest.raises(oxiformer.WeightsError, match=r"weights\.npz: missing tensor 'classifier"):
        oxiformer.SequenceClassifier.from_pretrained(tmp_path)
