"""``oxiformer convert``: an HF model directory -> the oxiformer format."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from oxiformer._checks import flag
from oxiformer._checks import path as checked_path
from oxiformer._files import umask
from oxiformer._types import PathLike
from oxiformer.config import read_config_json
from oxiformer.errors import ConfigError
from oxiformer.families import encoder_decoder_sections, lm_head_prefix
from oxiformer.pretrained import model_dir
from oxiformer.weights import find_weights, has_pooler, read_tensors

if TYPE_CHECKING:
    from oxiformer.classifiers import SequenceClassifier, TokenClassifier
    from oxiformer.masked_lm import MaskedLM
    from oxiformer.sentence import SentenceEncoder
    from oxiformer.seq2seq import EncoderDecoder

    _Saved = SentenceEncoder | SequenceClassifier | TokenClassifier | MaskedLM | EncoderDecoder

__all__ = ["convert", "model_kind"]


def model_kind(directory: Path) -> str:
    """``sentence-encoder``, ``sequence-classifier``, ``token-classifier``, ``masked-lm`` or
    ``encoder-decoder``: from ``modules.json``, else config.json (``encoder`` and ``decoder``
    sections; ``architectures``), else the weights (a masked-LM head; a classifier with a
    pooler classifies sequences, one without classifies tokens)."""
    if (directory / "modules.json").is_file():
        return "sentence-encoder"
    config = read_config_json(directory)
    if encoder_decoder_sections(config) is not None:
        return "encoder-decoder"
    architectures = [str(a) for a in config.get("architectures") or []]
    if any(a.endswith("ForTokenClassification") for a in architectures):
        return "token-classifier"
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "sequence-classifier"
    if any(a.endswith("ForMaskedLM") for a in architectures):
        return "masked-lm"
    tensors = read_tensors(find_weights(directory))
    if "classifier.weight" in tensors:
        return "sequence-classifier" if has_pooler(tensors) else "token-classifier"
    if any(name.startswith(lm_head_prefix()) for name in tensors):
        return "masked-lm"
    return "sentence-encoder"


def convert(
    source: PathLike,
    destination: PathLike,
    dtype: str | None = None,
    force: bool = False,
    revision: str | None = None,
) -> tuple[str, Path]:
    """Load ``source`` with the model class its files call for and save it to ``destination``;
    ``dtype="int8"`` quantizes it on the way (``oxiformer quantize``).

    ``destination`` may not be ``source`` (its files would be overwritten by the converted
    ones) and must be new or empty unless ``force``. A new or empty destination is written
    whole beside it and renamed into place: a failure leaves no half-written model. With
    ``force``, the files of a non-empty destination are replaced one by one (each through a
    temporary file); its other files are left alone. ``revision``: of a model id ``source``
    in the Hugging Face cache.
    """
    from oxiformer.classifiers import SequenceClassifier, TokenClassifier
    from oxiformer.masked_lm import MaskedLM
    from oxiformer.sentence import SentenceEncoder
    from oxiformer.seq2seq import EncoderDecoder

    directory = model_dir(source, revision)
    out = checked_path("destination", destination)
    force = flag("force", force)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    if out.is_dir() and out.samefile(directory):
        raise ConfigError(
            f"{out}: is the source model directory; write the converted model to another "
            "directory (converting in place would overwrite the source's files)"
        )
    non_empty = out.is_dir() and any(out.iterdir())
    if non_empty and not force:
        raise ConfigError(
            f"{out}: is not empty; give a new or empty directory, or --force (force=True) "
            "to replace the files of the same name in it"
        )
    kind = model_kind(directory)
    model: _Saved
    if kind == "encoder-decoder":
        model = EncoderDecoder.from_pretrained(directory, dtype=dtype)
    elif kind == "masked-lm":
        model = MaskedLM.from_pretrained(directory, dtype=dtype)
    elif kind == "token-classifier":
        model = TokenClassifier.from_pretrained(directory, dtype=dtype)
    elif kind == "sequence-classifier":
        model = SequenceClassifier.from_pretrained(directory, dtype=dtype)
    else:
        model = SentenceEncoder.from_pretrained(directory, dtype=dtype)
    if non_empty:
        return kind, model.save_pretrained(out)
    return kind, _save_whole(model, out)


def _save_whole(model: _Saved, out: Path) -> Path:
    """Save into a new directory beside ``out``, then rename it to ``out`` (new or empty)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    except OSError as err:
        raise ConfigError(f"{out}: cannot create the output directory ({err})") from err
    try:
        model.save_pretrained(staging)
        os.chmod(staging, 0o777 & ~umask())
        if out.is_dir():
            out.rmdir()  # empty: checked by the caller
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
