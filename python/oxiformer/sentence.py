"""``SentenceEncoder``: sentence-transformers' ``encode`` without PyTorch.

The pipeline comes from the model directory as sentence-transformers reads it:
``modules.json`` (Transformer, then Pooling from ``1_Pooling/config.json``, then any
``Dense`` modules (``oxiformer.st_dense``), then ``Normalize`` when listed), the maximum
length from ``sentence_bert_config.json``, the prompts and the similarity function from
``config_sentence_transformers.json`` (``oxiformer.st_settings``). The tokenizer files decide
the lowercasing (``do_lower_case`` there is not used).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from oxiformer._checks import count, flag, optional_flag, text_items
from oxiformer._files import read_json, write_text
from oxiformer._types import FloatArray, PathLike
from oxiformer.embedding_precision import check_precision, quantize_embeddings
from oxiformer.errors import ConfigError, InputError
from oxiformer.model import MAX_BATCH_TOKENS, Encoder, pack
from oxiformer.pooling import Pooling, normalize, pool_packed
from oxiformer.pretrained import model_dir
from oxiformer.quantize import DEFAULT_ATTENTION
from oxiformer.saving import save_model
from oxiformer.similarity import similarity, similarity_pairwise
from oxiformer.st_compat import SentenceTransformerCompat, check_device
from oxiformer.st_dense import DENSE_TYPE, DenseModule
from oxiformer.st_settings import SETTINGS_FILE, Settings
from oxiformer.tokenizer import Tokenizer

__all__ = ["SentenceEncoder"]

OutputValue = Literal["sentence_embedding", "token_embeddings"]

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"


def _read_json(path: Path) -> Any:
    return read_json(path, ConfigError)


#: The modules after the Transformer, in the order sentence-transformers allows them here.
_ORDER = {_POOLING: 0, DENSE_TYPE: 1, _NORMALIZE: 2}


def _pipeline(directory: Path) -> tuple[Pooling, list[DenseModule], bool]:
    """(pooling, dense modules, normalize) from ``modules.json``; a plain HF model gets mean
    pooling."""
    modules_path = directory / "modules.json"
    if not (modules_path.exists() or modules_path.is_symlink()):
        return Pooling(), [], False
    modules = _read_json(modules_path)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise ConfigError(f"{modules_path}: expected a list of modules")
    types = [str(module.get("type", "")) for module in modules]
    rest = types[1:]
    ordered = all(t in _ORDER for t in rest) and [_ORDER[t] for t in rest] == sorted(
        _ORDER[t] for t in rest
    )
    once = rest.count(_POOLING) <= 1 and rest.count(_NORMALIZE) <= 1
    if not types or types[0] != _TRANSFORMER or not ordered or not once:
        raise ConfigError(
            f"{modules_path}: unsupported pipeline {types} (supported: Transformer, then "
            "Pooling, then any Dense modules, then optionally Normalize)"
        )
    pooling, dense = Pooling(), []
    for module in modules:
        where = directory / str(module.get("path", ""))
        if module.get("type") == _POOLING:
            pooling = Pooling.from_config(where / "config.json")
        elif module.get("type") == DENSE_TYPE:
            dense.append(DenseModule.load(where))
    return pooling, dense, _NORMALIZE in types


class SentenceEncoder(SentenceTransformerCompat):
    """Sentence embeddings, as ``sentence_transformers.SentenceTransformer.encode`` gives them
    (and the methods ported code calls around it: :mod:`oxiformer.st_compat`)."""

    def __init__(
        self,
        encoder: Encoder,
        tokenizer: Tokenizer,
        pooling: Pooling | None = None,
        normalize: bool = False,
        max_seq_length: int | None = None,
        dense: Sequence[DenseModule] = (),
        settings: Settings | None = None,
    ) -> None:
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.pooling = pooling or Pooling()
        self.normalize = normalize
        self.dense = tuple(dense)
        self.settings = settings or Settings()
        self._truncate_dim: int | None = None
        width = encoder.hidden_size * len(self.pooling.modes)
        for index, module in enumerate(self.dense):
            if module.in_features != width:
                where = f"{module.source}: " if module.source else ""
                raise ConfigError(
                    f"{where}Dense module {index} takes {module.in_features} features, but "
                    f"the embedding before it has {width}"
                )
            width = module.out_features
        limit = int(encoder.config["max_position_embeddings"])
        self.max_seq_length = min(max_seq_length or tokenizer.model_max_length or limit, limit)

    @classmethod
    def from_pretrained(
        cls,
        path: PathLike | None = None,
        *,
        dtype: str | None = None,
        truncate_dim: int | None = None,
        revision: str | None = None,
    ) -> SentenceEncoder:
        """Load a sentence-transformers (or plain HF) model directory; ``None``: the default
        model all-MiniLM-L6-v2 (or ``$OXIFORMER_MODEL``). ``dtype="int8"`` quantizes a float
        model at load (see :mod:`oxiformer.quantize`); ``truncate_dim`` sets
        :attr:`truncate_dim`; ``revision``: a branch, tag or commit of a model id in the
        Hugging Face cache."""
        directory = model_dir(path, revision)
        pooling, dense, normalize_output = _pipeline(directory)
        max_seq_length = None
        st_config = directory / "sentence_bert_config.json"
        if st_config.exists() or st_config.is_symlink():
            settings = _read_json(st_config)
            if not isinstance(settings, dict):
                raise ConfigError(f"{st_config}: expected a JSON object")
            value = settings.get("max_seq_length")
            valid = isinstance(value, int) and not isinstance(value, bool) and value > 0
            if value is not None and not valid:
                raise ConfigError(
                    f"{st_config}: 'max_seq_length' must be a positive integer, got {value!r}"
                )
            max_seq_length = value
        settings = Settings.load(directory)
        encoder = Encoder.from_pretrained(directory, with_pooler=False, dtype=dtype)
        tokenizer = Tokenizer.from_pretrained(directory)
        model = cls(encoder, tokenizer, pooling, normalize_output, max_seq_length, dense, settings)
        model.truncate_dim = truncate_dim
        return model

    def quantize(
        self,
        activation_bits: Mapping[str, int] | None = None,
        word_embeddings: bool = True,
        outlier_channels: Mapping[str, int] | None = None,
        attention: str = DEFAULT_ATTENTION,
    ) -> SentenceEncoder:
        """The same pipeline with the encoder in int8 (arguments as :meth:`Encoder.quantize`)."""
        quantized = SentenceEncoder(
            self.encoder.quantize(activation_bits, word_embeddings, outlier_channels, attention),
            self.tokenizer,
            self.pooling,
            self.normalize,
            self.max_seq_length,
            self.dense,
            self.settings,
        )
        quantized.truncate_dim = self.truncate_dim
        return quantized

    @property
    def truncate_dim(self) -> int | None:
        """Keep the first dimensions of every sentence embedding (Matryoshka models), or
        None: sentence-transformers' ``truncate_dim``."""
        return self._truncate_dim

    @truncate_dim.setter
    def truncate_dim(self, value: int | None) -> None:
        self._truncate_dim = None if value is None else count("truncate_dim", value)

    @property
    def prompts(self) -> dict[str, str]:
        """The model's prompts by name (``encode(prompt_name=...)``)."""
        return dict(self.settings.prompts)

    @property
    def default_prompt_name(self) -> str | None:
        """The prompt ``encode`` prepends when given none, or None."""
        return self.settings.default_prompt_name

    @property
    def similarity_fn_name(self) -> str:
        """``"cosine"``, ``"dot"``, ``"euclidean"`` or ``"manhattan"``: what
        :meth:`similarity` computes."""
        return self.settings.similarity_fn_name

    def similarity(self, a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
        """The ``(len(a), len(b))`` similarities of two sets of embeddings, with the model's
        similarity function (:mod:`oxiformer.similarity`)."""
        return similarity(a, b, self.similarity_fn_name)

    def similarity_pairwise(self, a: npt.ArrayLike, b: npt.ArrayLike) -> FloatArray:
        """The similarity of each embedding of ``a`` with the same row of ``b``."""
        return similarity_pairwise(a, b, self.similarity_fn_name)

    @property
    def dimension(self) -> int:
        """Size of a sentence embedding (after :attr:`truncate_dim`)."""
        return self._width(self.truncate_dim)

    def get_sentence_embedding_dimension(self) -> int:
        """:attr:`dimension`, under sentence-transformers' name."""
        return self.dimension

    def encode_query(self, sentences: Any, **options: Any) -> Any:
        """:meth:`encode` with the model's ``"query"`` prompt, when it has one and no prompt
        is given (sentence-transformers' ``encode_query``)."""
        return self.encode(sentences, **self._task_prompt(options, ("query",)))

    def encode_document(self, sentences: Any, **options: Any) -> Any:
        """:meth:`encode` with the model's ``"document"``, ``"passage"`` or ``"corpus"``
        prompt (the first it has), when no prompt is given (sentence-transformers'
        ``encode_document``)."""
        names = ("document", "passage", "corpus")
        return self.encode(sentences, **self._task_prompt(options, names))

    def _task_prompt(self, options: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
        if options.get("prompt_name") is None and options.get("prompt") is None:
            found = next((name for name in names if name in self.settings.prompts), None)
            if found is not None:
                return {**options, "prompt_name": found}
        return options

    def _width(self, truncate_dim: int | None) -> int:
        """Size of a sentence embedding cut to ``truncate_dim`` (None: whole)."""
        if self.dense:
            full = self.dense[-1].out_features
        else:
            full = self.encoder.hidden_size * len(self.pooling.modes)
        return full if truncate_dim is None else min(truncate_dim, full)

    @overload
    def encode(
        self,
        sentences: str,
        batch_size: int = ...,
        show_progress_bar: bool | None = ...,
        normalize_embeddings: bool = ...,
        convert_to_numpy: bool = ...,
        output_value: OutputValue = ...,
        prompt_name: str | None = ...,
        prompt: str | None = ...,
        precision: str = ...,
        truncate_dim: int | None = ...,
        convert_to_tensor: bool = ...,
        device: str | None = ...,
    ) -> npt.NDArray[Any]: ...

    @overload
    def encode(
        self,
        sentences: Iterable[str],
        batch_size: int = ...,
        show_progress_bar: bool | None = ...,
        normalize_embeddings: bool = ...,
        convert_to_numpy: bool = ...,
        output_value: OutputValue = ...,
        prompt_name: str | None = ...,
        prompt: str | None = ...,
        precision: str = ...,
        truncate_dim: int | None = ...,
        convert_to_tensor: bool = ...,
        device: str | None = ...,
    ) -> npt.NDArray[Any] | list[FloatArray]: ...

    def encode(
        self,
        sentences: str | Iterable[str],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        normalize_embeddings: bool = False,
        convert_to_numpy: bool = True,
        output_value: OutputValue = "sentence_embedding",
        prompt_name: str | None = None,
        prompt: str | None = None,
        precision: str = "float32",
        truncate_dim: int | None = None,
        convert_to_tensor: bool = False,
        device: str | None = None,
    ) -> npt.NDArray[Any] | list[FloatArray]:
        """Embed ``sentences`` (one string -> one vector; a list -> a (n, dim) array).

        Sentences are sorted by length into batches of ``batch_size`` and returned in input
        order. ``output_value="token_embeddings"`` gives one (tokens, hidden) array each.
        Models whose pipeline ends in Normalize always return unit vectors. ``prompt_name``
        (one of :attr:`prompts`) or ``prompt`` (a text) is put before every sentence, as
        sentence-transformers does; without either, the model's default prompt, if any.
        ``truncate_dim`` keeps the first dimensions (Matryoshka models; default: the model's
        :attr:`truncate_dim`), before ``normalize_embeddings``. ``precision`` ``"int8"``,
        ``"uint8"``, ``"binary"`` or ``"ubinary"`` quantizes the embeddings as
        sentence-transformers does (:mod:`oxiformer.embedding_precision`). ``device`` is
        ``None`` or ``"cpu"``; ``convert_to_tensor=True`` (PyTorch tensors) is refused.
        """
        single = isinstance(sentences, str)
        texts = [
            str(text)
            for text in text_items([sentences] if single else sentences, "sentences", pairs=False)
        ]
        batch_size = count("batch_size", batch_size)
        show_progress = optional_flag("show_progress_bar", show_progress_bar) or False
        normalize_embeddings = flag("normalize_embeddings", normalize_embeddings)
        convert_to_numpy = flag("convert_to_numpy", convert_to_numpy)
        if output_value not in ("sentence_embedding", "token_embeddings"):
            raise InputError(f"unknown output_value {output_value!r}")
        truncate = self._output_options(output_value, precision, truncate_dim, device)
        if flag("convert_to_tensor", convert_to_tensor):
            raise InputError(
                "convert_to_tensor=True asks for PyTorch tensors; oxiformer returns NumPy "
                "arrays (torch.from_numpy(...) converts them without a copy)"
            )
        chosen = self.settings.prompt(prompt_name, prompt)
        prompt_length = 0
        if chosen is not None:
            texts = [chosen + text for text in texts]
            # Its tokens and [CLS], not [SEP] (sentence-transformers' prompt_length).
            prompt_ids = self.tokenizer([chosen], truncation=True, max_length=self.max_seq_length)
            prompt_length = len(prompt_ids["input_ids"][0]) - 1
        # A huge batch_size runs in bounded pieces (same results: every sentence is computed
        # on its own), so memory follows MAX_BATCH_TOKENS, not the batch.
        step = min(batch_size, max(1, MAX_BATCH_TOKENS // self.max_seq_length))
        from tqdm import tqdm  # imported on use: nothing heavy at import

        results: list[FloatArray] = [np.empty(0, np.float32)] * len(texts)
        order = np.argsort([-len(text) for text in texts], kind="stable")
        starts = range(0, len(texts), step)
        for start in tqdm(
            starts, desc="Batches", disable=not show_progress, file=sys.stderr, leave=False
        ):
            indices = order[start : start + step]
            batch = self.tokenizer(
                [texts[i] for i in indices],
                padding=True,
                truncation=True,
                max_length=self.max_seq_length,
            )
            # Packed: only the real tokens are computed, no padding.
            ids, types, lengths = pack(
                batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
            )
            hidden = self.encoder.encode_packed(ids, lengths, types)
            if output_value == "token_embeddings":
                for index, tokens in zip(indices, hidden.split()):
                    results[index] = tokens.copy()
                continue
            embeddings = pool_packed(self.pooling, hidden.last_hidden_state, lengths, prompt_length)
            for module in self.dense:
                embeddings = module(embeddings)
            if self.normalize or (normalize_embeddings and truncate is None):
                embeddings = normalize(embeddings)
            if truncate is not None:  # after the pipeline, before normalize_embeddings (ST)
                embeddings = embeddings[:, :truncate]
                if normalize_embeddings:
                    embeddings = normalize(embeddings)
            for row, index in enumerate(indices):
                results[index] = embeddings[row]
        if output_value == "token_embeddings" or not convert_to_numpy:
            return results[0] if single else results
        width = self._width(truncate)
        stacked = np.stack(results) if results else np.zeros((0, width), dtype=np.float32)
        if precision != "float32":
            stacked = quantize_embeddings(stacked, precision)
        return stacked[0] if single else stacked

    def _output_options(
        self, output_value: str, precision: object, truncate_dim: object, device: object
    ) -> int | None:
        """Check ``encode``'s ``precision`` and ``device``; the dimensions to keep."""
        if device is not None:
            check_device(device)
        if check_precision(precision) != "float32" and output_value != "sentence_embedding":
            raise InputError(f"precision {precision!r} is for sentence embeddings only")
        dim = self.truncate_dim if truncate_dim is None else truncate_dim
        return None if dim is None else count("truncate_dim", dim)

    def save_pretrained(self, directory: PathLike) -> Path:
        """Write the oxiformer format (config.json, tokenizer files, weights.npz) plus the
        sentence-transformers pipeline files; ``from_pretrained`` loads it back identically."""
        out = save_model(
            directory,
            config=self.encoder.config,
            tensors=self.encoder.state_dict(),
            source=self.encoder.source,
            tokenizer=self.tokenizer,
        )
        modules: list[dict[str, Any]] = [
            {"idx": 0, "name": "0", "path": "", "type": _TRANSFORMER},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": _POOLING},
        ]
        (out / "1_Pooling").mkdir(exist_ok=True)
        pooling_config = self.pooling.to_config(self.encoder.hidden_size)
        write_text(out / "1_Pooling" / "config.json", json.dumps(pooling_config, indent=2))
        for module in self.dense:
            index = len(modules)
            modules.append(
                {"idx": index, "name": str(index), "path": f"{index}_Dense", "type": DENSE_TYPE}
            )
            module.save(out / f"{index}_Dense")
        if self.normalize:
            index = len(modules)
            path = f"{index}_Normalize"
            modules.append({"idx": index, "name": str(index), "path": path, "type": _NORMALIZE})
            (out / path).mkdir(exist_ok=True)
        write_text(out / "modules.json", json.dumps(modules, indent=2))
        st_config = {"max_seq_length": self.max_seq_length}
        write_text(out / "sentence_bert_config.json", json.dumps(st_config, indent=2))
        write_text(out / SETTINGS_FILE, json.dumps(self.settings.to_config(), indent=2))
        return out
