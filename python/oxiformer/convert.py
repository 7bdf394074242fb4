"""``oxiformer convert``: an HF model directory -> the oxiformer format."""

from __future__ import annotations

from pathlib import Path

from oxiformer.config import read_config_json
from oxiformer.model import PathLike
from oxiformer.pretrained import model_dir
from oxiformer.weights import find_weights, has_pooler, read_tensors

__all__ = ["convert", "model_kind"]


def model_kind(directory: Path) -> str:
    """``sentence-encoder``, ``sequence-classifier`` or ``token-classifier``: from
    ``modules.json``, else config.json's ``architectures``, else the weights (a classifier
    with a pooler classifies sequences, one without classifies tokens)."""
    if (directory / "modules.json").is_file():
        return "sentence-encoder"
    architectures = [str(a) for a in read_config_json(directory).get("architectures") or []]
    if any(a.endswith("ForTokenClassification") for a in architectures):
        return "token-classifier"
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "sequence-classifier"
    tensors = read_tensors(find_weights(directory))
    if "classifier.weight" in tensors:
        return "sequence-classifier" if has_pooler(tensors) else "token-classifier"
    return "sentence-encoder"


def convert(source: PathLike, destination: PathLike) -> tuple[str, Path]:
    """Load ``source`` with the model class its files call for and save it to ``destination``."""
    from oxiformer.classifiers import SequenceClassifier, TokenClassifier
    from oxiformer.sentence import SentenceEncoder

    directory = model_dir(source)
    kind = model_kind(directory)
    if kind == "token-classifier":
        return kind, TokenClassifier.from_pretrained(directory).save_pretrained(destination)
    if kind == "sequence-classifier":
        return kind, SequenceClassifier.from_pretrained(directory).save_pretrained(destination)
    return kind, SentenceEncoder.from_pretrained(directory).save_pretrained(destination)
