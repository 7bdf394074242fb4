"""``EncoderDecoder``: HF ``EncoderDecoderModel`` (a BERT-family encoder, a BERT decoder)
and its ``generate`` without PyTorch.

The encoder, the decoder (with its key/value cache) and the LM head run in Rust with the GIL
released; the search (greedy, beams) runs in NumPy (:mod:`oxiformer.generation`).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from oxiformer import _core
from oxiformer._types import FloatArray, IntArray, PathLike
from oxiformer.config import config_path, read_config_json
from oxiformer.decoder_quantize import (
    DECODER_QUANTIZABLE,
    default_decoder_bits,
    quantize_decoder_tensors,
)
from oxiformer.errors import ConfigError, InputError, WeightsError
from oxiformer.families import (
    decoder_family,
    encoder_decoder_keys,
    encoder_decoder_sections,
    family_named,
    lm_head_prefix,
)
from oxiformer.generation import (
    BEAM_SAMPLING,
    DEFAULT_MAX_NEW_TOKENS,
    EarlyStopping,
    GenerationSettings,
    as_prompt,
    beam_search,
    check_search,
    greedy_search,
    split_options,
)
from oxiformer.lm_head import select_lm_head_tensors
from oxiformer.model import Encoder, _as_ids
from oxiformer.pretrained import model_dir
from oxiformer.quantize import checked_bits
from oxiformer.sampling import Seed, check_seed
from oxiformer.saving import save_files
from oxiformer.tokenizer import Tokenizer
from oxiformer.weight_files import check_unchanged, file_stamp
from oxiformer.weights import find_weights, read_tensors, release_pages, select_encoder_tensors

__all__ = ["EncoderDecoder", "Seq2SeqLMOutput"]


@dataclass(frozen=True)
class Seq2SeqLMOutput:
    """What teacher forcing returns (HF names)."""

    logits: FloatArray
    """(batch, target, vocab) float32"""
    encoder_last_hidden_state: FloatArray
    """(batch, source, hidden) float32"""


class EncoderDecoder:
    """HF ``EncoderDecoderModel``: an encoder, then a BERT decoder attending to its output."""

    def __init__(
        self,
        encoder: Encoder,
        decoder: _core.Decoder,
        settings: GenerationSettings,
        tokenizer: Tokenizer | None = None,
        origin: _Origin | None = None,
    ) -> None:
        self.encoder = encoder
        self.decoder = decoder
        self.settings = settings
        self.tokenizer = tokenizer
        self._origin = origin

    @classmethod
    def from_pretrained(
        cls, path: PathLike, *, dtype: str | None = None, revision: str | None = None
    ) -> EncoderDecoder:
        """Load an ``EncoderDecoderModel`` directory: ``config.json`` with ``encoder`` and
        ``decoder`` sections, tensors ``encoder.*``, ``decoder.bert.*`` and ``decoder.cls.*``
        (``model.safetensors``, ``weights.npz``, ``weights/`` or ``pytorch_model.bin``).
        ``dtype="int8"``: the encoder, the decoder and its LM head in int8 (quantized at
        load); ``revision``: a branch, tag or commit of a model id in the Hugging Face
        cache."""
        directory = model_dir(path, revision)
        source_config = str(config_path(directory))
        raw = read_config_json(directory)
        family = decoder_family()
        sections = encoder_decoder_sections(raw)
        if sections is None:
            raise ConfigError(
                f"{source_config}: not an encoder-decoder configuration (needs 'encoder' and "
                f"'decoder' sections, model_type {family['encoder_decoder_type']!r})"
            )
        if dtype not in (None, "float32", "int8"):
            raise ConfigError(f"dtype must be 'float32' or 'int8', got {dtype!r}")
        encoder_raw, decoder_raw = sections
        encoder_config = _core.EncoderConfig(encoder_raw, f"{source_config} (encoder)")
        decoder_config = _core.DecoderConfig(decoder_raw, f"{source_config} (decoder)")
        weights_path = find_weights(directory)
        generation = directory / "generation_config.json"
        origin = _Origin(raw, sections, str(weights_path), dtype, generation)
        source = origin.source
        tensors = read_tensors(weights_path)
        prefix = family["encoder_prefix"]
        encoder = Encoder.from_tensors(
            encoder_config,
            {n[len(prefix) :]: a for n, a in tensors.items() if n.startswith(prefix)},
            source=source,
            config_source=f"{source_config} (encoder)",
            dtype=dtype,
            quantization_config=encoder_raw.get("quantization_config"),
        )
        encoder.release_tensors(origin.stamp, prefix)
        memory_size = encoder.hidden_size
        selected, bits = origin.decoder_weights(tensors, decoder_config, memory_size)
        decoder = _core.Decoder(decoder_config, selected, memory_size, bits, release_pages)
        settings = _settings(directory, raw, decoder_raw, source_config)
        if settings.ignored:
            warnings.warn(
                f"{source_config}: generation options {', '.join(settings.ignored)} are set "
                "but not applied by oxiformer (results can differ from transformers' generate)",
                stacklevel=2,
            )
        has_tokenizer = any((directory / n).is_file() for n in ("tokenizer.json", "vocab.txt"))
        tokenizer = Tokenizer.from_pretrained(directory) if has_tokenizer else None
        return cls(encoder, decoder, settings, tokenizer, origin)

    def save_pretrained(self, directory: PathLike) -> Path:
        """Write the model to ``directory`` as HF's ``EncoderDecoderModel`` lays it out
        (config.json with ``encoder`` and ``decoder`` sections, ``weights.npz`` with
        ``encoder.*``, ``decoder.bert.*`` and ``decoder.cls.*``), with its tokenizer and
        ``generation_config.json``. An int8 model is written in int8: the encoder's
        ``quantization_config`` in the encoder section, the decoder's (``activation_bits`` of
        its int8 modules) in the decoder section, whose LM head matrix is then written out
        (``tie_word_embeddings`` false). ``from_pretrained`` loads it back identically."""
        origin = self._origin
        if origin is None:
            raise ConfigError("this EncoderDecoder was built from parts: it has nothing to save")
        family = decoder_family()
        tensors = {
            family["encoder_prefix"] + name: array
            for name, array in self.encoder.state_dict().items()
        }
        check_unchanged(origin.source, origin.stamp, "its decoder")
        encoder_key, decoder_key = encoder_decoder_keys()
        encoder_raw, decoder_raw = dict(origin.encoder_raw), dict(origin.decoder_raw)
        config = _core.DecoderConfig(decoder_raw, f"{origin.source} (decoder)")
        stored = read_tensors(origin.source)
        selected, bits = origin.decoder_weights(stored, config, self.encoder.hidden_size)
        tensors.update({_stored_decoder_name(name): array for name, array in selected.items()})
        quantization = self.encoder.config.get("quantization_config")
        if quantization is not None:
            encoder_raw["quantization_config"] = quantization
        if bits is not None:
            decoder_raw[_QUANTIZATION] = {"quant_method": "oxiformer", "activation_bits": bits}
            decoder_raw["tie_word_embeddings"] = False
        written = {
            **origin.raw,
            # The decoder's tensors are all written out (an int8 decoder's quantized apart from
            # the encoder), so they are no longer tied to the encoder's.
            _TIE_ENCODER_DECODER: False,
            encoder_key: encoder_raw,
            decoder_key: decoder_raw,
        }
        extra = {}
        if origin.generation_config is not None:
            extra["generation_config.json"] = origin.generation_config
        return save_files(directory, written, tensors, origin.source, self.tokenizer, extra)

    @property
    def dtype(self) -> str:
        return self.encoder.dtype

    def _encode(
        self, input_ids: Any, attention_mask: Any, infer_mask: bool
    ) -> tuple[IntArray, IntArray, FloatArray]:
        ids = _as_ids("input_ids", input_ids)
        if attention_mask is not None:
            mask = _as_ids("attention_mask", attention_mask, ids.shape)
        elif infer_mask and self._pad_marks_padding(ids):
            mask = (ids != self.settings.pad_token_id).astype(np.int64)
        else:
            mask = np.ones_like(ids)
        limit = int(self.encoder.config["max_position_embeddings"])
        if ids.shape[1] > limit:
            raise InputError(
                f"the source is {ids.shape[1]} tokens long, more than the encoder's "
                f"max_position_embeddings {limit}"
            )
        hidden = self.encoder(ids, mask).last_hidden_state
        return ids, mask, hidden

    def _pad_marks_padding(self, ids: IntArray) -> bool:
        """HF's rule for a missing mask in ``generate``: pad ids are padding, unless pad is
        also an end-of-sequence id."""
        pad = self.settings.pad_token_id
        return (
            pad is not None and pad not in self.settings.eos_token_ids and bool((ids == pad).any())
        )

    def __call__(
        self,
        input_ids: npt.ArrayLike,
        attention_mask: npt.ArrayLike | None = None,
        decoder_input_ids: npt.ArrayLike | None = None,
        decoder_attention_mask: npt.ArrayLike | None = None,
    ) -> Seq2SeqLMOutput:
        """Teacher forcing: the logits of every position of ``decoder_input_ids``
        (batch, target), given the sources ``input_ids`` (batch, source)."""
        if decoder_input_ids is None:
            raise InputError("decoder_input_ids is required (teacher forcing)")
        _, mask, hidden = self._encode(input_ids, attention_mask, infer_mask=False)
        targets = _as_ids("decoder_input_ids", decoder_input_ids)
        if targets.shape[0] != hidden.shape[0]:
            raise InputError(
                f"decoder_input_ids has {targets.shape[0]} rows, input_ids {hidden.shape[0]}"
            )
        target_mask = (
            None
            if decoder_attention_mask is None
            else _as_ids("decoder_attention_mask", decoder_attention_mask, targets.shape)
        )
        self._check_length(targets.shape[1])
        state = self.decoder.start(self.decoder.memory(hidden, mask), 1, targets.shape[1])
        logits = state.step(targets, target_mask, True)
        return Seq2SeqLMOutput(logits=logits, encoder_last_hidden_state=hidden)

    def _check_length(self, length: int) -> None:
        limit = self.decoder.max_position_embeddings
        if length > limit:
            raise InputError(
                f"the decoder's input would be {length} tokens long, more than its "
                f"max_position_embeddings {limit}"
            )

    def generate(
        self,
        input_ids: npt.ArrayLike,
        attention_mask: npt.ArrayLike | None = None,
        max_new_tokens: int | None = None,
        num_beams: int | None = None,
        length_penalty: float | None = None,
        early_stopping: EarlyStopping | None = None,
        decoder_input_ids: npt.ArrayLike | None = None,
        use_cache: bool = True,
        seed: Seed = None,
        **options: Any,
    ) -> IntArray:
        """Generate, as transformers' ``generate`` does: int64 ids (batch, prefix +
        generated), the prefix being ``decoder_input_ids`` or ``decoder_start_token_id``.

        ``num_beams=1``: greedy; more: beam search with ``length_penalty`` and
        ``early_stopping`` (True, False or "never"). Rows that finish early are padded.
        ``eos_token_id`` and ``pad_token_id`` come from the configuration;
        ``use_cache=False`` recomputes the whole prefix at every step. An argument left out
        (None) takes the model's ``generation_config.json`` (or ``config.json``) value, as in
        transformers, else 20 new tokens, greedy, ``length_penalty`` 1, no early stopping.
        ``processors``: transformers' logits processors by their option names
        (``no_repeat_ngram_size``, ``min_length``, ``min_new_tokens``, ``repetition_penalty``,
        ``bad_words_ids``, ``forced_bos_token_id``, ``forced_eos_token_id``,
        ``suppress_tokens``, ``begin_suppress_tokens``; :mod:`oxiformer.logits_processors`),
        and sampling (``do_sample``, ``temperature``, ``top_k``, ``top_p``, ``min_p``;
        :mod:`oxiformer.sampling`; ``seed`` makes the draws repeatable), also defaulting to
        the configuration's. Sampling draws each token in greedy search; beam search does not
        sample (``do_sample=True`` with ``num_beams`` > 1 is an error).
        """
        search = self.settings.search
        num_beams = search.get("num_beams", 1) if num_beams is None else num_beams
        if length_penalty is None:
            length_penalty = search.get("length_penalty", 1.0)
        if early_stopping is None:
            early_stopping = search.get("early_stopping", False)
        vocab = self.decoder.vocab_size
        processors, sampling = split_options(options)
        chosen = self.settings.processors.updated(processors)
        chosen.check_vocabulary(vocab)
        sample = self.settings.sampling.updated(sampling)
        choose = sample.chooser(check_seed(seed))
        _, mask, hidden = self._encode(input_ids, attention_mask, infer_mask=True)
        prompt = as_prompt(decoder_input_ids, hidden.shape[0], self.settings)
        if max_new_tokens is None:
            max_new_tokens = self._default_max_new_tokens(prompt.shape[1])
        check_search(max_new_tokens, num_beams, length_penalty, early_stopping, vocab)
        if sample.do_sample and num_beams > 1:
            self._no_beam_sampling(sampling.get("do_sample") is True)
        self._check_length(prompt.shape[1] + max_new_tokens)
        memory = self.decoder.memory(hidden, mask)
        state = self.decoder.start(memory, num_beams, prompt.shape[1] + max_new_tokens)
        if num_beams == 1:
            return greedy_search(
                state, prompt, max_new_tokens, self.settings, use_cache, chosen, choose
            )
        return beam_search(
            state,
            prompt,
            max_new_tokens,
            self.settings,
            num_beams,
            float(length_penalty),
            early_stopping,
            use_cache,
            chosen,
        )

    def _no_beam_sampling(self, asked: bool) -> None:
        """Sampling with beams (transformers' beam sample) is not implemented: an error when
        the call asks for it, else (the configuration's ``do_sample``) a warning, unless loading
        already gave it."""
        if asked:
            raise InputError(
                "do_sample=True with num_beams > 1 (beam sampling) is not supported; sample "
                "with num_beams=1, or search with do_sample=False"
            )
        if BEAM_SAMPLING not in self.settings.ignored:
            warnings.warn(
                "the configuration's do_sample is not applied with num_beams > 1: beam search "
                "runs without sampling (results can differ from transformers' generate)",
                stacklevel=3,
            )

    def _default_max_new_tokens(self, prompt_length: int) -> int:
        """The configuration's ``max_new_tokens``, else its ``max_length`` less the prompt
        (at least 1), else :data:`DEFAULT_MAX_NEW_TOKENS`."""
        search = self.settings.search
        if "max_new_tokens" in search:
            return int(search["max_new_tokens"])
        if "max_length" in search:
            return max(1, int(search["max_length"]) - prompt_length)
        return DEFAULT_MAX_NEW_TOKENS

    def generate_text(
        self,
        texts: str | Sequence[str],
        max_new_tokens: int | None = None,
        num_beams: int | None = None,
        length_penalty: float | None = None,
        early_stopping: EarlyStopping | None = None,
        skip_special_tokens: bool = True,
        batch_size: int = 32,
        seed: Seed = None,
        **options: Any,
    ) -> Any:
        """Tokenize ``texts``, :meth:`generate`, decode: a string for a string, else a list
        (``seed``: one generator for all batches, so the texts are repeatable too)."""
        if self.tokenizer is None:
            raise ConfigError("this model has no tokenizer files: call generate() with ids")
        items = [texts] if isinstance(texts, str) else list(texts)
        limit = int(self.encoder.config["max_position_embeddings"])
        seed = check_seed(seed)
        generator = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        outputs: list[str] = []
        for start in range(0, len(items), max(1, batch_size)):
            batch = items[start : start + max(1, batch_size)]
            inputs = self.tokenizer(batch, padding=True, truncation=True, max_length=limit)
            ids = self.generate(
                inputs["input_ids"],
                inputs["attention_mask"],
                max_new_tokens=max_new_tokens,
                num_beams=num_beams,
                length_penalty=length_penalty,
                early_stopping=early_stopping,
                seed=generator,
                **options,
            )
            outputs.extend(
                self.tokenizer.decode(row.tolist(), skip_special_tokens=skip_special_tokens)
                for row in ids
            )
        return outputs[0] if isinstance(texts, str) else outputs

    def __repr__(self) -> str:
        return f"EncoderDecoder(encoder={self.encoder!r}, dtype={self.dtype!r})"


#: The decoder section's entry of an int8 model saved by ``save_pretrained``.
_QUANTIZATION = "quantization_config"
#: HF's flag for a decoder whose shared modules are the encoder's.
_TIE_ENCODER_DECODER = "tie_encoder_decoder"


class _Origin:
    """Where a loaded model comes from, to read the decoder's tensors again for
    ``save_pretrained`` (the core keeps its own copy): the raw ``config.json``, the weights file
    (and its stamp at load), the ``dtype`` asked for and ``generation_config.json``'s text."""

    def __init__(
        self,
        raw: Mapping[str, Any],
        sections: tuple[dict[str, Any], dict[str, Any]],
        source: str,
        dtype: str | None,
        generation: Path,
    ) -> None:
        self.raw, self.source, self.dtype = raw, source, dtype
        self.encoder_raw, self.decoder_raw = sections
        self.stamp = file_stamp(source)
        self.generation_config: str | None = None
        if generation.is_file():
            try:
                self.generation_config = generation.read_text(encoding="utf-8")
            except (OSError, UnicodeError) as err:
                raise ConfigError(f"{generation}: cannot read ({err})") from err

    def decoder_weights(
        self,
        tensors: Mapping[str, npt.NDArray[Any]],
        config: _core.DecoderConfig,
        memory_size: int,
    ) -> tuple[dict[str, npt.NDArray[Any]], dict[str, int] | None]:
        """The decoder's tensors by the core's names and its int8 modules' bits (None: float):
        as stored (an int8 model saved so), or quantized now for ``dtype="int8"``."""
        stored = _stored_decoder_bits(self.decoder_raw.get(_QUANTIZATION), self.source)
        if stored is not None and self.dtype == "float32":
            raise ConfigError(
                f"{self.source}: this model's decoder is quantized to int8; load it with "
                "dtype='int8' or dtype=None"
            )
        tie = bool(self.raw.get(_TIE_ENCODER_DECODER, False))
        selected = _decoder_tensors(tensors, config, memory_size, self.source, stored, tie)
        if stored is None and self.dtype == "int8":
            bits = default_decoder_bits(config)
            return quantize_decoder_tensors(selected, config, memory_size, bits), bits
        return selected, stored


def _stored_decoder_bits(value: Any, source: str) -> dict[str, int] | None:
    """The ``activation_bits`` of a saved int8 decoder's ``quantization_config``, checked."""
    if value is None:
        return None
    bits = value.get("activation_bits") if isinstance(value, Mapping) else None
    where = f"{source}: the decoder's {_QUANTIZATION}'s 'activation_bits'"
    return checked_bits(bits, DECODER_QUANTIZABLE, where)


def _stored_decoder_name(name: str) -> str:
    """A decoder tensor's name in the checkpoint, from the core's."""
    family = decoder_family()
    if name.startswith(family["encoder_projection"] + "."):
        return name
    head = name.startswith(lm_head_prefix())
    prefix: str = family["decoder_prefix"] + ("" if head else family["body_prefix"])
    return prefix + name


def _decoder_tensors(
    tensors: Mapping[str, npt.NDArray[Any]],
    decoder_config: _core.DecoderConfig,
    memory_size: int,
    source: str,
    bits: Mapping[str, int] | None = None,
    tie_encoder_decoder: bool = False,
) -> dict[str, npt.NDArray[Any]]:
    """The decoder's tensors under the core's names (``decoder.bert.`` and ``decoder.``
    stripped), checked; the LM head's tie and bias resolved. ``bits``: the int8 modules of a
    saved int8 decoder (their weights int8 with a ``weight_scale``). With
    ``tie_encoder_decoder`` (HF's ``EncoderDecoderConfig`` flag), every module the decoder's
    body shares with the encoder (embeddings, self-attention, feed-forward) is the encoder's,
    as HF ties them after loading, whatever the checkpoint stores under the decoder's names."""
    family = decoder_family()
    prefix, body = family["decoder_prefix"], family["body_prefix"]
    projection = family["encoder_projection"] + "."
    named: dict[str, npt.NDArray[Any]] = {}
    for name, array in tensors.items():
        if name.startswith(prefix):
            named[name[len(prefix) :].removeprefix(body)] = array
        elif name.startswith(projection):
            named[name] = array
    if tie_encoder_decoder:
        shared = family["encoder_prefix"]
        not_shared = (lm_head_prefix(), projection)
        for name, array in tensors.items():
            inner = name[len(shared) :]
            if name.startswith(shared) and not inner.startswith(not_shared):
                named[inner] = array
    cross = family["cross_attention"]["query"]
    if not any(f".{cross}." in name for name in named):
        raise WeightsError(
            f"{source}: the decoder has no cross-attention weights "
            f"('{prefix}{body}encoder.layer.N.{cross}.*' and the rest of "
            f"'{cross.split('.')[0]}'): it cannot attend to the encoder's output"
        )
    bits = dict(bits or {})
    expected = _core.decoder_tensors(decoder_config, memory_size, bits or None)
    tie = decoder_config.tie_word_embeddings
    word = named.get(f"{family_named(family['body'])['embeddings']['word']}.weight")
    names = family["lm_head"]
    head_bits = {
        layer: bits[names[layer]] for layer in ("transform", "decoder") if names[layer] in bits
    }
    head = select_lm_head_tensors(
        named, names, decoder_config.model, word, source, tie, head_bits or None
    )
    body_expected = {name: shape for name, shape in expected.items() if name not in head}
    int8 = [name.removesuffix("_scale") for name in body_expected if name.endswith("_scale")]
    selected = select_encoder_tensors(named, body_expected, source, int8=int8)
    selected.update(head)
    return selected


def _settings(
    directory: Path, raw: Mapping[str, Any], decoder_raw: Mapping[str, Any], source: str
) -> GenerationSettings:
    configs: list[Mapping[str, Any]] = []
    sources: list[str] = []
    generation_config = directory / "generation_config.json"
    if generation_config.is_file():
        try:
            loaded = json.loads(generation_config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{generation_config}: cannot read ({err})") from err
        if isinstance(loaded, dict):
            configs.append(loaded)
            sources.append(str(generation_config))
    sources += [source, f"{source} (decoder)"]
    return GenerationSettings.from_configs(
        *configs, raw, decoder_raw, source=source, sources=sources
    )
