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


def convert(source: PathLike, destination: PathLike, dtype: str | None = None) -> tuple[str, Path]:
    """Load ``source`` with the model class its files call for and save it to ``destination``;
    ``dtype="int8"`` quantizes it on the way (``oxiformer quantize``)."""
    from oxiformer.classifiers import SequenceClassifier, TokenClassifier
    from oxiformer.sentence import SentenceEncoder

    directory = model_dir(source)
    kind = model_kind(directory)
    model: SentenceEncoder | SequenceClassifier | TokenClassifier
    if kind == "token-classifier":
        model = TokenClassifier.from_pretrained(directory, dtype=dtype)
    elif kind == "sequence-classifier":
        model = SequenceClassifier.from_pretrained(directory, dtype=dtype)
    else:
        model = SentenceEncoder.from_pretrained(directory, dtype=dtype)
    return kind, model.save_pretrained(destination)
