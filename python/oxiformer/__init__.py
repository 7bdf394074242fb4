"""oxiformer: CPU-only Transformer inference, with a Rust core.

Nothing heavy happens at import: models and tokenizers load on request.
"""

from __future__ import annotations

from oxiformer._core import simd_info
from oxiformer.classifiers import (
    SequenceClassifier,
    SequenceClassifierOutput,
    TokenClassifier,
    TokenClassifierOutput,
)
from oxiformer.embedding_precision import quantize_embeddings
from oxiformer.errors import (
    ConfigError,
    DependencyError,
    InputError,
    OxiformerError,
    TokenizerError,
    WeightsError,
)
from oxiformer.masked_lm import MaskedLM, MaskedLMOutput
from oxiformer.model import Encoder, EncoderOutput
from oxiformer.sentence import SentenceEncoder
from oxiformer.seq2seq import EncoderDecoder, Seq2SeqLMOutput
from oxiformer.similarity import similarity, similarity_pairwise
from oxiformer.threads import get_num_threads, max_num_threads, set_num_threads
from oxiformer.tokenizer import Encoding, Tokenizer

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DependencyError",
    "Encoder",
    "EncoderDecoder",
    "EncoderOutput",
    "Encoding",
    "InputError",
    "MaskedLM",
    "MaskedLMOutput",
    "OxiformerError",
    "SentenceEncoder",
    "Seq2SeqLMOutput",
    "SequenceClassifier",
    "SequenceClassifierOutput",
    "TokenClassifier",
    "TokenClassifierOutput",
    "Tokenizer",
    "TokenizerError",
    "WeightsError",
    "__version__",
    "get_num_threads",
    "max_num_threads",
    "quantize_embeddings",
    "set_num_threads",
    "simd_info",
    "similarity",
    "similarity_pairwise",
]
