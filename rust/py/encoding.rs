//! The values the tokenizer's bindings take and give: `Encoding` (one encoded
//! text or pair), `EncodeOptions` (how to encode a batch), `SpecialTokens`
//! (the token of each role) and `NormalizerOptions`.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::tokenizer::{EncodeOptions, Encoding, Tokenizer};

/// One encoded text or pair (HF tokenizers naming).
#[pyclass(name = "Encoding", module = "oxiformer._core", frozen)]
pub struct PyEncoding {
    inner: Encoding,
    tokenizer: Arc<Tokenizer>,
}

impl PyEncoding {
    pub(super) fn new(inner: Encoding, tokenizer: Arc<Tokenizer>) -> Self {
        PyEncoding { inner, tokenizer }
    }
}

#[pymethods]
impl PyEncoding {
    #[getter]
    fn ids(&self) -> Vec<u32> {
        self.inner.ids()
    }

    #[getter]
    fn type_ids(&self) -> Vec<u32> {
        self.inner.type_ids()
    }

    #[getter]
    fn attention_mask(&self) -> Vec<u32> {
        self.inner.attention_mask()
    }

    #[getter]
    fn special_tokens_mask(&self) -> Vec<u32> {
        self.inner.special_tokens_mask()
    }

    #[getter]
    fn offsets(&self) -> Vec<(u32, u32)> {
        self.inner.offsets()
    }

    #[getter]
    fn sequence_ids(&self) -> Vec<Option<u8>> {
        self.inner.sequence_ids()
    }

    #[getter]
    fn tokens(&self) -> Vec<String> {
        self.inner
            .tokens
            .iter()
            .map(|token| {
                self.tokenizer
                    .id_to_token(token.id)
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        format!("Encoding(num_tokens={})", self.inner.len())
    }
}

/// How to encode a batch (the options of `Tokenizer.__call__`), checked when made.
#[pyclass(name = "EncodeOptions", module = "oxiformer._core", frozen)]
pub struct PyEncodeOptions {
    inner: EncodeOptions,
}

impl PyEncodeOptions {
    pub(super) fn options(&self) -> EncodeOptions {
        self.inner
    }
}

#[pymethods]
impl PyEncodeOptions {
    /// `truncation`: longest_first, only_first or only_second (needs `max_length`);
    /// `padding`: longest or max_length (to `max_length`); None: neither.
    #[new]
    #[pyo3(signature = (add_special_tokens=true, truncation=None, max_length=None, padding=None, pad_to_multiple_of=None))]
    fn new(
        add_special_tokens: bool,
        truncation: Option<&str>,
        max_length: Option<usize>,
        padding: Option<&str>,
        pad_to_multiple_of: Option<usize>,
    ) -> PyResult<Self> {
        let inner = EncodeOptions::parse(
            add_special_tokens,
            truncation,
            max_length,
            padding,
            pad_to_multiple_of,
        )?;
        Ok(PyEncodeOptions { inner })
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// The token of each role (HF `special_tokens_map`).
#[pyclass(name = "SpecialTokens", module = "oxiformer._core", frozen, get_all)]
pub struct PySpecialTokens {
    pub(super) unk: String,
    pub(super) sep: String,
    pub(super) cls: String,
    pub(super) pad: String,
    pub(super) mask: String,
}

/// The BERT normalizer's options (`strip_accents` None: follows `lowercase`).
#[pyclass(
    name = "NormalizerOptions",
    module = "oxiformer._core",
    frozen,
    get_all
)]
pub struct PyNormalizerOptions {
    pub(super) clean_text: bool,
    pub(super) handle_chinese_chars: bool,
    pub(super) strip_accents: Option<bool>,
    pub(super) lowercase: bool,
}
