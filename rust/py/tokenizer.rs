//! Python bindings of the tokenizer: a thin skin over `crate::tokenizer`.
//! Texts are read while attached (strings with lone surrogates are a
//! `TokenizerError`), then the batch runs detached on the oxiformer pool.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use super::encoding::{PyEncodeOptions, PyEncoding, PyNormalizerOptions, PySpecialTokens};
use crate::error::Error;
use crate::memory;
use crate::tokenizer::{
    files, EncodeOptions, EncodedToken, Encoding, Input, NormalizerOptions, Tokenizer,
};

/// Read a Python str as UTF-8; `what` names it in the error. Anything but a
/// str is an `InputError`; a str that is not valid Unicode (a lone
/// surrogate), a `TokenizerError`.
fn text<'a>(value: &'a Bound<'_, PyAny>, what: &dyn Fn() -> String) -> PyResult<Cow<'a, str>> {
    let string = value.cast::<PyString>().map_err(|_| {
        Error::input(format!(
            "{} must be a str, not {}",
            what(),
            type_name(value)
        ))
    })?;
    string.to_cow().map_err(|err| {
        Error::Tokenizer(format!(
            "{} cannot be encoded as UTF-8 (a lone surrogate?): {err}",
            what()
        ))
        .into()
    })
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|name| name.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn texts(list: &Bound<'_, PyList>, name: &str) -> PyResult<Vec<String>> {
    let mut out = Vec::with_capacity(list.len());
    for (index, item) in list.iter().enumerate() {
        out.push(text(&item, &|| format!("{name}[{index}]"))?.into_owned());
    }
    Ok(out)
}

/// Second texts of a batch: a str, or None for an item that is a single text.
fn optional_texts(list: &Bound<'_, PyList>, name: &str) -> PyResult<Vec<Option<String>>> {
    let mut out = Vec::with_capacity(list.len());
    for (index, item) in list.iter().enumerate() {
        out.push(if item.is_none() {
            None
        } else {
            Some(text(&item, &|| format!("{name}[{index}]"))?.into_owned())
        });
    }
    Ok(out)
}

/// The Rust tokenizer.
#[pyclass(name = "Tokenizer", module = "oxiformer._core", frozen)]
pub struct PyTokenizer {
    inner: Arc<Tokenizer>,
}

impl PyTokenizer {
    fn wrap(&self, inner: Encoding) -> PyEncoding {
        PyEncoding::new(inner, Arc::clone(&self.inner))
    }

    fn run_batch(
        &self,
        py: Python<'_>,
        texts_list: &Bound<'_, PyList>,
        pairs_list: Option<&Bound<'_, PyList>>,
        options: &EncodeOptions,
    ) -> PyResult<Vec<Encoding>> {
        let firsts = texts(texts_list, "texts")?;
        let seconds = match pairs_list {
            Some(list) => {
                if list.len() != firsts.len() {
                    return Err(Error::Tokenizer(format!(
                        "{} texts but {} pair texts",
                        firsts.len(),
                        list.len()
                    ))
                    .into());
                }
                optional_texts(list, "text_pair")?
            }
            None => vec![None; firsts.len()],
        };
        let inputs: Vec<Input<'_>> = firsts
            .iter()
            .zip(&seconds)
            .map(|(first, second)| (first.as_str(), second.as_deref()))
            .collect();
        let tokenizer = &self.inner;
        Ok(py.detach(|| tokenizer.encode_batch_with(&inputs, options))?)
    }
}

#[pymethods]
impl PyTokenizer {
    /// Load a vocab.txt with the BERT pipeline.
    #[staticmethod]
    #[pyo3(signature = (path, lowercase=true, strip_accents=None, handle_chinese_chars=true, clean_text=true))]
    fn from_vocab(
        path: PathBuf,
        lowercase: bool,
        strip_accents: Option<bool>,
        handle_chinese_chars: bool,
        clean_text: bool,
    ) -> PyResult<Self> {
        let options = NormalizerOptions {
            clean_text,
            handle_chinese_chars,
            strip_accents,
            lowercase,
        };
        Ok(PyTokenizer {
            inner: Arc::new(files::from_vocab_file(&path, options)?),
        })
    }

    /// Load a model directory (tokenizer.json, or vocab.txt + tokenizer_config.json).
    #[staticmethod]
    fn from_dir(path: PathBuf) -> PyResult<Self> {
        Ok(PyTokenizer {
            inner: Arc::new(files::from_dir(&path)?),
        })
    }

    /// Parse the text of an HF tokenizer.json.
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Self> {
        Ok(PyTokenizer {
            inner: Arc::new(files::from_tokenizer_json(text, "tokenizer.json")?),
        })
    }

    /// Write vocab.txt, tokenizer.json and tokenizer_config.json into `path`.
    fn save(&self, path: PathBuf) -> PyResult<()> {
        Ok(files::save(&self.inner, &path)?)
    }

    #[pyo3(signature = (text, pair=None, add_special_tokens=true))]
    fn encode(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyAny>,
        pair: Option<&Bound<'_, PyAny>>,
        add_special_tokens: bool,
    ) -> PyResult<PyEncoding> {
        let first = self::text(text, &|| "text".to_string())?;
        let second = match pair {
            Some(pair) => Some(self::text(pair, &|| "pair".to_string())?),
            None => None,
        };
        let tokenizer = &self.inner;
        let input = (first.as_ref(), second.as_deref());
        let encoding = py.detach(|| tokenizer.encode(input, add_special_tokens, None))?;
        Ok(self.wrap(encoding))
    }

    /// Encode a batch: no truncation, no padding.
    #[pyo3(signature = (texts, pairs=None, add_special_tokens=true))]
    fn encode_batch(
        &self,
        py: Python<'_>,
        texts: &Bound<'_, PyList>,
        pairs: Option<&Bound<'_, PyList>>,
        add_special_tokens: bool,
    ) -> PyResult<Vec<PyEncoding>> {
        let options = EncodeOptions {
            add_special_tokens,
            ..EncodeOptions::default()
        };
        let encodings = self.run_batch(py, texts, pairs, &options)?;
        Ok(encodings
            .into_iter()
            .map(|encoding| self.wrap(encoding))
            .collect())
    }

    /// Encode a batch into int64 arrays of shape (batch, seq), by name: `input_ids`,
    /// `token_type_ids`, `attention_mask`. Every row must have the same length.
    #[pyo3(signature = (texts, pairs=None, options=None))]
    fn encode_arrays<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyList>,
        pairs: Option<&Bound<'py, PyList>>,
        options: Option<&Bound<'py, PyEncodeOptions>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let options =
            options.map_or_else(EncodeOptions::default, |options| options.get().options());
        let encodings = self.run_batch(py, texts, pairs, &options)?;
        let rows = encodings.len();
        let length = encodings.first().map_or(0, Encoding::len);
        if let Some((index, ragged)) = encodings
            .iter()
            .enumerate()
            .find(|(_, encoding)| encoding.len() != length)
        {
            return Err(Error::Tokenizer(format!(
                "rows differ in length (text 0: {length} tokens, text {index}: {}): pad them \
                 (padding=True, or padding='max_length' with truncation=True) to get arrays",
                ragged.len()
            ))
            .into());
        }
        let flat = |field: fn(&EncodedToken) -> i64| -> PyResult<Array2<i64>> {
            let count = rows.saturating_mul(length);
            let mut values: Vec<i64> = Vec::new();
            values.try_reserve_exact(count).map_err(|_| {
                Error::Tokenizer(format!(
                    "not enough memory for arrays of {rows} x {length} tokens ({} each)",
                    memory::human(memory::bytes_of::<i64>(count))
                ))
            })?;
            values.extend(
                encodings
                    .iter()
                    .flat_map(|encoding| encoding.tokens.iter().map(field)),
            );
            Array2::from_shape_vec((rows, length), values)
                .map_err(|err| Error::Tokenizer(err.to_string()).into())
        };
        let arrays = PyDict::new(py);
        arrays.set_item(
            "input_ids",
            flat(|token| i64::from(token.id))?.into_pyarray(py),
        )?;
        arrays.set_item(
            "token_type_ids",
            flat(|token| i64::from(token.type_id))?.into_pyarray(py),
        )?;
        arrays.set_item(
            "attention_mask",
            flat(|token| i64::from(!token.padding))?.into_pyarray(py),
        )?;
        Ok(arrays)
    }

    /// Number of tokens of each text (or pair), special tokens included, before
    /// any truncation or padding: (batch,) int64.
    #[pyo3(signature = (texts, pairs=None, add_special_tokens=true))]
    fn count_tokens<'py>(
        &self,
        py: Python<'py>,
        texts: &Bound<'py, PyList>,
        pairs: Option<&Bound<'py, PyList>>,
        add_special_tokens: bool,
    ) -> PyResult<Bound<'py, PyArray1<i64>>> {
        let options = EncodeOptions {
            add_special_tokens,
            ..EncodeOptions::default()
        };
        let encodings = self.run_batch(py, texts, pairs, &options)?;
        let counts: Vec<i64> = encodings
            .iter()
            .map(|encoding| i64::try_from(encoding.len()).unwrap_or(i64::MAX))
            .collect();
        Ok(counts.into_pyarray(py))
    }

    /// Tokens of a text (no special tokens added).
    fn tokenize(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let text = self::text(text, &|| "text".to_string())?;
        let tokenizer = &self.inner;
        let tokens = py.detach(|| tokenizer.tokenize(&text));
        Ok(tokens
            .iter()
            .map(|token| tokenizer.id_to_token(token.id).unwrap_or("").to_string())
            .collect())
    }

    #[pyo3(signature = (ids, skip_special_tokens=true))]
    fn decode(&self, ids: Vec<i64>, skip_special_tokens: bool) -> String {
        let ids: Vec<u32> = ids
            .into_iter()
            .filter_map(|id| u32::try_from(id).ok())
            .collect();
        self.inner.decode(&ids, skip_special_tokens)
    }

    fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    fn id_to_token(&self, id: i64) -> Option<String> {
        let id = u32::try_from(id).ok()?;
        self.inner.id_to_token(id).map(str::to_string)
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    #[getter]
    fn model_max_length(&self) -> Option<usize> {
        self.inner.model_max_length()
    }

    /// The tokens of each role.
    #[getter]
    fn special_tokens(&self) -> PySpecialTokens {
        let special = self.inner.special_tokens();
        PySpecialTokens {
            unk: special.unk.clone(),
            sep: special.sep.clone(),
            cls: special.cls.clone(),
            pad: special.pad.clone(),
            mask: special.mask.clone(),
        }
    }

    #[getter]
    fn normalizer(&self) -> PyNormalizerOptions {
        let options = self.inner.normalizer_options();
        PyNormalizerOptions {
            clean_text: options.clean_text,
            handle_chinese_chars: options.handle_chinese_chars,
            strip_accents: options.strip_accents,
            lowercase: options.lowercase,
        }
    }

    /// Number of special tokens added to a single text or a pair.
    fn num_special_tokens_to_add(&self, pair: bool) -> usize {
        self.inner.added_special_count(pair)
    }
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyTokenizer>()?;
    module.add_class::<PyEncoding>()?;
    module.add_class::<PyEncodeOptions>()?;
    module.add_class::<PySpecialTokens>()?;
    module.add_class::<PyNormalizerOptions>()?;
    Ok(())
}
