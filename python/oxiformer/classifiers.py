"""Classification heads over the Rust encoder: HF ``BertForSequenceClassification`` and
``BertForTokenClassification`` without PyTorch (and their ELECTRA and DistilBERT twins).

The encoder and the pooler (dense + tanh) run in Rust; the classifier head (small matrix
multiplies, :mod:`oxiformer.heads`), softmax and losses run in NumPy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from oxiformer import _core
from oxiformer._checks import count, text_items
from oxiformer._types import FloatArray, PathLike
from oxiformer.config import config_path, read_config_json
from oxiformer.errors import ConfigError, InputError
from oxiformer.families import encoder_family
from oxiformer.heads import ClassifierHead
from oxiformer.model import MAX_BATCH_TOKENS, Encoder, _as_ids
from oxiformer.pretrained import model_dir
from oxiformer.quantize import DEFAULT_ATTENTION
from oxiformer.saving import save_model
from oxiformer.tokenizer import Tokenizer
from oxiformer.weight_files import file_stamp
from oxiformer.weights import find_weights, read_tensors

__all__ = [
    "ClassifierOutput",
    "SequenceClassifier",
    "SequenceClassifierOutput",
    "TokenClassifier",
    "TokenClassifierOutput",
]

TextPair = tuple[str, str]
TextInput = Union[str, TextPair]


def softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    probs: FloatArray = (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)
    return probs


def cross_entropy(
    logits: FloatArray, labels: npt.NDArray[np.int64], ignore_index: int = -100
) -> float:
    """Mean cross-entropy over labels != ``ignore_index`` (``torch.nn.CrossEntropyLoss``)."""
    flat_logits = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
    flat_labels = labels.reshape(-1)
    keep = flat_labels != ignore_index
    if not keep.any():
        return float("nan")  # as torch: mean over nothing
    chosen = flat_labels[keep]
    if chosen.min() < 0 or chosen.max() >= logits.shape[-1]:
        raise InputError(f"labels must lie in [0, {logits.shape[-1]}) or be {ignore_index}")
    kept = flat_logits[keep]
    top = kept.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(kept - top).sum(axis=1))
    return float(np.mean(log_norm - kept[np.arange(len(chosen)), chosen]))


class _WithoutPrefix(Mapping[str, npt.NDArray[Any]]):
    """The tensors of ``tensors`` under their names with ``prefix`` removed, each read only
    when looked up."""

    def __init__(self, tensors: Mapping[str, npt.NDArray[Any]], prefix: str) -> None:
        self._tensors = tensors
        self._names = {name.removeprefix(prefix): name for name in tensors}

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self._tensors[self._names[name]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _labels(raw: Mapping[str, Any], num_labels: int, source: str) -> list[str]:
    id2label = raw.get("id2label") or {}
    try:
        names = {int(key): str(value) for key, value in dict(id2label).items()}
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: 'id2label' keys must be integers") from err
    return [names.get(index, f"LABEL_{index}") for index in range(num_labels)]


class _Classifier:
    """What both heads share: encoder, tokenizer, classifier head, label names, loading."""

    _kind = "token"

    def __init__(
        self,
        encoder: Encoder,
        head: ClassifierHead,
        labels: Sequence[str],
        tokenizer: Tokenizer | None = None,
        raw_config: Mapping[str, Any] | None = None,
    ) -> None:
        self.encoder = encoder
        self.head = head
        self.labels = list(labels)
        self.tokenizer = tokenizer
        self.raw_config = dict(raw_config or {})

    @property
    def weight(self) -> FloatArray:
        """The output layer's weight (num_labels, hidden)."""
        return self.head.weight

    @property
    def bias(self) -> FloatArray:
        """The output layer's bias (num_labels,)."""
        return self.head.bias

    @classmethod
    def from_pretrained(
        cls, path: PathLike, *, dtype: str | None = None, revision: str | None = None
    ) -> Any:
        """Load an HF or oxiformer model directory; ``dtype="int8"`` quantizes the encoder
        of a float model at load (the classifier head stays float32); ``revision``: a
        branch, tag or commit of a model id in the Hugging Face cache."""
        directory = model_dir(path, revision)
        raw = read_config_json(directory)
        config_source = str(config_path(directory))
        config = _core.EncoderConfig(raw, config_source)
        weights_path = find_weights(directory)
        stamp = file_stamp(weights_path)
        family = encoder_family(raw)
        tensors = read_tensors(weights_path)
        source = str(weights_path)
        head = ClassifierHead.load(
            _WithoutPrefix(tensors, family["base_prefix"]),
            family,
            cls._kind,
            config.hidden_size,
            source,
        )
        encoder = Encoder.from_tensors(
            config,
            tensors,
            with_pooler=head.pooled,
            source=source,
            config_source=config_source,
            dtype=dtype,
            quantization_config=raw.get("quantization_config"),
        )
        encoder.release_tensors(stamp)
        tokenizer = Tokenizer.from_pretrained(directory) if _has_tokenizer(directory) else None
        labels = _labels(raw, head.num_labels, str(directory))
        return cls(encoder, head, labels, tokenizer, raw)

    def quantize(
        self,
        activation_bits: Mapping[str, int] | None = None,
        word_embeddings: bool = True,
        outlier_channels: Mapping[str, int] | None = None,
        attention: str = DEFAULT_ATTENTION,
    ) -> Any:
        """The same classifier with the encoder in int8 (arguments as
        :meth:`Encoder.quantize`); the classifier head stays float32."""
        return type(self)(
            self.encoder.quantize(activation_bits, word_embeddings, outlier_channels, attention),
            self.head,
            self.labels,
            self.tokenizer,
            self.raw_config,
        )

    def _tokenizer(self) -> Tokenizer:
        if self.tokenizer is None:
            raise ConfigError("this model has no tokenizer files: pass input_ids instead of text")
        return self.tokenizer

    @property
    def max_length(self) -> int:
        """Longest input the text API feeds the model (longer texts are truncated)."""
        limit = int(self.encoder.config["max_position_embeddings"])
        tokenizer_limit = self.tokenizer.model_max_length if self.tokenizer else None
        return min(tokenizer_limit or limit, limit)

    def save_pretrained(self, directory: PathLike) -> Path:
        """Write the oxiformer format; ``from_pretrained`` loads it back identically."""
        extra = {
            key: value
            for key, value in self.raw_config.items()
            if key in ("problem_type", "classifier_dropout", "pad_token_id")
        }
        extra["id2label"] = {str(i): label for i, label in enumerate(self.labels)}
        extra["label2id"] = {label: i for i, label in enumerate(self.labels)}
        # The family decides how the head is read back (the config itself is saved in
        # BERT's fields, which every family reads).
        family = encoder_family(self.raw_config)
        extra["model_type"] = family["model_types"][0]
        task = type(self).__name__.replace("Classifier", "Classification")
        architecture = f"{family['class_prefix']}For{task}"
        return save_model(
            directory,
            config=self.encoder.config,
            tensors={**self.encoder.state_dict(), **self.head.tensors()},
            source=self.encoder.source,
            tokenizer=self.tokenizer,
            extra_config=extra,
            architecture=architecture,
        )


def _has_tokenizer(directory: Path) -> bool:
    """Whether tokenizer files are there (a special file among them is the tokenizer's error
    to report, not a reason to go without one)."""
    return any(
        (directory / name).exists() or (directory / name).is_symlink()
        for name in ("tokenizer.json", "vocab.txt")
    )


@dataclass(frozen=True)
class ClassifierOutput:
    """What a classifier returns (HF names)."""

    logits: FloatArray
    """(batch, num_labels) for sequences, (batch, seq, num_labels) for tokens"""
    probs: FloatArray
    """softmax over the labels (sigmoid for multi-label sequence models)"""
    loss: float | None = None
    """when labels are given: mean cross-entropy over labels != -100 (MSE for regression,
    BCE for multi-label sequence models, as HF picks by problem type)"""


SequenceClassifierOutput = ClassifierOutput
TokenClassifierOutput = ClassifierOutput


class SequenceClassifier(_Classifier):
    """HF ``BertForSequenceClassification``: pooler + classifier on the [CLS] token (ELECTRA's
    and DistilBERT's heads: dense, activation and output layer on the first token)."""

    _kind = "sequence"

    @property
    def problem_type(self) -> str:
        explicit = self.raw_config.get("problem_type")
        if explicit:
            return str(explicit)
        return "regression" if len(self.labels) == 1 else "single_label_classification"

    def __call__(
        self,
        input_ids: npt.ArrayLike,
        attention_mask: npt.ArrayLike | None = None,
        token_type_ids: npt.ArrayLike | None = None,
        labels: npt.ArrayLike | None = None,
    ) -> SequenceClassifierOutput:
        out = self.encoder(input_ids, attention_mask, token_type_ids)
        if self.head.pooled:
            assert out.pooler_output is not None  # loaded with the pooler
            logits = self.head(out.pooler_output)
        else:
            logits = self.head(out.last_hidden_state[:, 0])
        problem = self.problem_type
        probs = 1 / (1 + np.exp(-logits)) if problem == "multi_label_classification" else logits
        if problem == "single_label_classification":
            probs = softmax(logits)
        loss = None if labels is None else _sequence_loss(logits, labels, problem)
        return SequenceClassifierOutput(logits=logits, probs=probs.astype(np.float32), loss=loss)

    def predict(
        self, texts: TextInput | Sequence[TextInput], batch_size: int = 32
    ) -> list[dict[str, Any]]:
        """Label and score for each text or (text_a, text_b) pair, like a HF pipeline: one
        result per input, in order. Texts and pairs may be mixed; any other item is an
        ``InputError`` naming its index."""
        items = text_items([texts] if isinstance(texts, (str, tuple)) else texts, "texts")
        step = min(count("batch_size", batch_size), max(1, MAX_BATCH_TOKENS // self.max_length))
        tokenizer = self._tokenizer()
        results: list[dict[str, Any]] = []
        for start in range(0, len(items), step):
            encoded = tokenizer(
                items[start : start + step],
                padding=True,
                truncation=True,
                max_length=self.max_length,
            )
            out = self(encoded["input_ids"], encoded["attention_mask"], encoded["token_type_ids"])
            for row in out.probs:
                best = int(np.argmax(row))
                results.append({"label": self.labels[best], "score": float(row[best])})
        return results


def _sequence_loss(logits: FloatArray, labels: npt.ArrayLike, problem: str) -> float:
    """The loss HF computes for ``problem``; labels must match the batch (an ``InputError``
    saying how, when they do not)."""
    try:
        label_array = np.asarray(labels)
    except (ValueError, TypeError) as err:
        raise InputError(f"labels is not an array ({err})") from err
    batch = logits.shape[0]
    if problem == "single_label_classification":
        if label_array.size != batch:
            raise InputError(
                f"labels has {label_array.size} values (shape {label_array.shape}) "
                f"for a batch of {batch}"
            )
        return cross_entropy(logits, _as_ids("labels", label_array.reshape(-1, 1)))
    if label_array.dtype.kind not in "biuf":
        raise InputError(f"labels must be numbers, got dtype {label_array.dtype}")
    if label_array.size != logits.size:
        raise InputError(
            f"labels has shape {label_array.shape}, the logits have {logits.shape} "
            f"({problem} needs one label per logit)"
        )
    target = label_array.astype(np.float64).reshape(logits.shape)
    z = logits.astype(np.float64)
    if problem == "regression":
        return float(np.mean((z - target) ** 2))
    return float(np.mean(np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))))


class TokenClassifier(_Classifier):
    """HF ``BertForTokenClassification``: a classifier on every token."""

    def __call__(
        self,
        input_ids: npt.ArrayLike,
        attention_mask: npt.ArrayLike | None = None,
        token_type_ids: npt.ArrayLike | None = None,
        labels: npt.ArrayLike | None = None,
    ) -> TokenClassifierOutput:
        out = self.encoder(input_ids, attention_mask, token_type_ids)
        logits = self.head(out.last_hidden_state)
        loss = None
        if labels is not None:
            label_array = _as_ids("labels", np.asarray(labels), logits.shape[:2])
            loss = cross_entropy(logits, label_array)
        return TokenClassifierOutput(logits=logits, probs=softmax(logits), loss=loss)

    def predict(self, texts: str | Sequence[str], batch_size: int = 32) -> Any:
        """Word-level labels (the first sub-token of each word decides) with character spans:
        for each text a list of ``{"word", "start", "end", "label", "score"}``."""
        single = isinstance(texts, str)
        items = [str(text) for text in text_items([texts] if single else texts, pairs=False)]
        step = min(count("batch_size", batch_size), max(1, MAX_BATCH_TOKENS // self.max_length))
        tokenizer = self._tokenizer()
        results: list[list[dict[str, Any]]] = []
        for start in range(0, len(items), step):
            batch = items[start : start + step]
            encodings = tokenizer.encode_batch(batch)
            encoded = tokenizer(batch, padding=True, truncation=True, max_length=self.max_length)
            probs = self(
                encoded["input_ids"], encoded["attention_mask"], encoded["token_type_ids"]
            ).probs
            for row, (text, encoding) in enumerate(zip(batch, encodings)):
                results.append(_words(text, encoding, probs[row], self.labels))
        return results[0] if single else results


def _words(
    text: str, encoding: Any, probs: FloatArray, labels: Sequence[str]
) -> list[dict[str, Any]]:
    """Group sub-tokens into words: a token not starting with ``##`` starts a new word."""
    words: list[dict[str, Any]] = []
    limit = probs.shape[0]
    specials = encoding.special_tokens_mask
    for position, (token, (begin, end)) in enumerate(zip(encoding.tokens, encoding.offsets)):
        if position >= limit or specials[position]:
            continue
        if token.startswith("##") and words:
            words[-1]["end"] = end
            words[-1]["word"] = text[words[-1]["start"] : end]
            continue
        best = int(np.argmax(probs[position]))
        words.append(
            {
                "word": text[begin:end],
                "start": begin,
                "end": end,
                "label": labels[best],
                "score": float(probs[position, best]),
            }
        )
    return words
