"""The family table (``rust/models/families.rs``): one place for each family's names, read
by Rust and Python alike; ELECTRA and DistilBERT checkpoints through every model class."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import oxiformer
import pytest
from helpers import FIXTURES, load_golden, load_model, max_abs_diff, require_fixtures
from oxiformer import _core, reference
from oxiformer.config import to_bert_fields
from oxiformer.families import canonical_tensor_name, decoder_family, encoder_family, table
from oxiformer.weights import read_tensors

ELECTRA = FIXTURES / "tiny-electra"
DISTILBERT = FIXTURES / "tiny-distilbert"


def test_table_states_each_family_once() -> None:
    names = [family["name"] for family in table()["encoders"]]
    assert names == ["bert", "distilbert", "electra"]
    assert [family["name"] for family in table()["decoders"]] == ["bert-decoder"]
    assert encoder_family({"model_type": "electra"})["embeddings_project"] == "embeddings_project"
    assert encoder_family({"model_type": "something-else"})["name"] == "bert"
    assert encoder_family({})["name"] == "bert"
    decoder = decoder_family()
    assert decoder["cross_attention"]["query"] == "crossattention.self.query"
    assert decoder["lm_head"] == encoder_family({})["lm_head"]
    # The quantizable modules are the BERT layer's dense modules, from the same table.
    layer = encoder_family({})["layer"]
    dense = ("query", "key", "value", "attention_output", "intermediate", "output")
    assert tuple(layer[role] for role in dense) == _core.QUANTIZABLE


@pytest.mark.parametrize(
    ("stored", "canonical"),
    [
        (
            "distilbert.transformer.layer.1.attention.k_lin.weight",
            "encoder.layer.1.attention.self.key.weight",
        ),
        (
            "transformer.layer.0.sa_layer_norm.bias",
            "encoder.layer.0.attention.output.LayerNorm.bias",
        ),
        ("electra.encoder.layer.1.output.dense.weight", "encoder.layer.1.output.dense.weight"),
        ("electra.embeddings_project.bias", "embeddings_project.bias"),
        ("bert.embeddings.LayerNorm.gamma", "embeddings.LayerNorm.weight"),
        ("cls.predictions.bias", "cls.predictions.bias"),
    ],
)
def test_stored_names_become_bert_names(stored: str, canonical: str) -> None:
    assert canonical_tensor_name(stored) == canonical


def test_every_distilbert_tensor_has_a_bert_name() -> None:
    require_fixtures("tiny-distilbert")
    stored = dict(read_tensors(DISTILBERT / "model.safetensors"))
    renamed = {canonical_tensor_name(name) for name in stored}
    config = _core.EncoderConfig(oxiformer.config.read_config_json(DISTILBERT))
    expected = _core.expected_tensors(config)
    assert set(expected) <= renamed


def test_config_translation_is_idempotent() -> None:
    require_fixtures("tiny-distilbert", "tiny-electra")
    raw = json.loads((DISTILBERT / "config.json").read_text())
    once = to_bert_fields(raw)
    assert once["hidden_size"] == raw["dim"] and "dim" not in once
    assert to_bert_fields(once) == once
    electra = json.loads((ELECTRA / "config.json").read_text())
    assert to_bert_fields(electra) == electra


@pytest.mark.parametrize("model_type", ["roberta", "xlm-roberta", "mpnet", "modernbert"])
def test_other_architectures_are_refused_by_name(
    model_type: str, minilm_dir: Path, tmp_path: Path
) -> None:
    # RoBERTa keeps BERT's tensor names: loaded as BERT, it would run with the wrong
    # positions. Every model class says what the model is instead.
    for item in minilm_dir.iterdir():
        if item.name != "config.json":
            (tmp_path / item.name).symlink_to(item)
    config = json.loads((minilm_dir / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": model_type}))
    for cls in (oxiformer.Encoder, oxiformer.SentenceEncoder, oxiformer.SequenceClassifier):
        with pytest.raises(oxiformer.ConfigError) as caught:
            cls.from_pretrained(tmp_path)
        message = str(caught.value)
        assert f"model_type '{model_type}' is an architecture oxiformer does not run" in message
        assert "bert, distilbert, electra" in message and "config.json" in message
    # A model_type nobody knows still loads as BERT (custom names of BERT checkpoints).
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "my-bert"}))
    assert oxiformer.Encoder.from_pretrained(tmp_path).config["hidden_size"] == 384


def test_electra_encoder_matches_golden() -> None:
    require_fixtures("tiny-electra")
    golden = load_golden(ELECTRA / "golden.npz")
    inputs = (golden["input_ids"], golden["attention_mask"], golden["token_type_ids"])
    for weights in ("model.safetensors", "weights.npz"):
        encoder = oxiformer.Encoder.from_tensors(*load_model(ELECTRA, weights), source=weights)
        out = encoder(*inputs)
        assert (
            max_abs_diff(f"ELECTRA {weights}", out.last_hidden_state, golden["last_hidden_state"])
            <= 2e-5
        )
    loaded = oxiformer.Encoder.from_pretrained(ELECTRA)
    assert loaded.config["embedding_size"] == 16 and loaded.hidden_size == 32
    out = loaded(*inputs, output_hidden_states=True)
    assert (
        max_abs_diff("ELECTRA from_pretrained", out.last_hidden_state, golden["last_hidden_state"])
        <= 2e-5
    )
    assert out.hidden_states is not None and out.hidden_states[0].shape[-1] == 32


def test_reference_runs_electra() -> None:
    require_fixtures("tiny-electra")
    config, tensors = load_model(ELECTRA)
    golden = load_golden(ELECTRA / "golden.npz")
    out = reference.forward(
        tensors, config, golden["input_ids"], golden["attention_mask"], golden["token_type_ids"]
    )
    assert (
        max_abs_diff("reference ELECTRA", out["last_hidden_state"], golden["last_hidden_state"])
        <= 2e-5
    )


def test_sentence_encoder_loads_electra() -> None:
    require_fixtures("tiny-electra")
    model = oxiformer.SentenceEncoder.from_pretrained(ELECTRA)
    texts = ["The capital of France is Paris.", "ELECTRA projects its embeddings."]
    embeddings = model.encode(texts)
    encoder = oxiformer.Encoder.from_pretrained(ELECTRA)
    inputs = model.tokenizer(texts, padding=True)
    hidden = encoder(inputs["input_ids"], inputs["attention_mask"]).last_hidden_state
    mask = inputs["attention_mask"][..., None]
    mean = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
    assert max_abs_diff("ELECTRA sentence embeddings", embeddings, mean) <= 1e-5


def _head_checkpoint(
    source: Path, destination: Path, family: str, head: dict[str, tuple[int, ...]], arch: str
) -> dict[str, npt.NDArray[np.float32]]:
    """``source``'s tensors under ``{family}.`` plus random ``head`` tensors, as HF saves a
    task model; returns the head tensors."""
    rng = np.random.default_rng(7)
    stored = dict(read_tensors(source / "model.safetensors"))
    tensors: dict[str, npt.NDArray[Any]] = {f"{family}.{n}": a for n, a in stored.items()}
    heads = {n: rng.normal(scale=0.5, size=s).astype(np.float32) for n, s in head.items()}
    destination.mkdir()
    np.savez(destination / "weights.npz", **tensors, **heads)
    config = json.loads((source / "config.json").read_text())
    config["architectures"] = [arch]
    (destination / "config.json").write_text(json.dumps(config))
    shutil.copy(source / "tokenizer.json", destination)
    return heads


@pytest.mark.parametrize(
    ("source", "family", "dense", "out", "activation"),
    [
        (ELECTRA, "electra", "classifier.dense", "classifier.out_proj", reference.gelu),
        (DISTILBERT, "distilbert", "pre_classifier", "classifier", reference.relu),
    ],
)
def test_first_token_sequence_heads(
    tmp_path: Path, source: Path, family: str, dense: str, out: str, activation: Any
) -> None:
    """``ElectraClassificationHead`` (dense, GELU, out_proj on the first token) and
    DistilBERT's (pre_classifier, ReLU, classifier): Rust encoder + NumPy head against the
    reference encoder + the head written out here."""
    require_fixtures(source.name)
    shapes = {
        f"{dense}.weight": (32, 32),
        f"{dense}.bias": (32,),
        f"{out}.weight": (3, 32),
        f"{out}.bias": (3,),
    }
    heads = _head_checkpoint(
        source, tmp_path / "model", family, shapes, "XForSequenceClassification"
    )
    clf = oxiformer.SequenceClassifier.from_pretrained(tmp_path / "model")
    inputs = clf.tokenizer(["a first sentence", "and a second, longer one"], padding=True)
    got = clf(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
    config, tensors = load_model(source)
    hidden = reference.forward(
        tensors,
        config,
        inputs["input_ids"],
        inputs["attention_mask"],
        inputs["token_type_ids"],
        dtype=np.float64,
    )["last_hidden_state"]
    first = hidden[:, 0]
    inner = activation(first @ heads[f"{dense}.weight"].T + heads[f"{dense}.bias"])
    want = inner @ heads[f"{out}.weight"].T + heads[f"{out}.bias"]
    assert max_abs_diff(f"{family} sequence head", got.logits, want) <= 2e-5
    saved = clf.save_pretrained(tmp_path / "saved")
    again = oxiformer.SequenceClassifier.from_pretrained(saved)
    args = (inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
    assert again(*args).logits.tobytes() == got.logits.tobytes()


def test_electra_token_classifier(tmp_path: Path) -> None:
    require_fixtures("tiny-electra")
    heads = _head_checkpoint(
        ELECTRA,
        tmp_path / "model",
        "electra",
        {"classifier.weight": (5, 32), "classifier.bias": (5,)},
        "ElectraForTokenClassification",
    )
    clf = oxiformer.TokenClassifier.from_pretrained(tmp_path / "model")
    golden = load_golden(ELECTRA / "golden.npz")
    got = clf(golden["input_ids"], golden["attention_mask"], golden["token_type_ids"])
    want = golden["last_hidden_state"] @ heads["classifier.weight"].T + heads["classifier.bias"]
    assert max_abs_diff("ELECTRA token head", got.logits, want) <= 1e-4
