//! `_core.EncoderConfig` and `_core.DecoderConfig`: a model's configuration,
//! parsed and validated once per load; the other bindings take the parsed
//! object, never the text again.

use pyo3::prelude::*;
use pyo3::types::PyString;
use serde_json::Value;

use super::json;
use crate::config::EncoderConfig;
use crate::error::Error;
use crate::models::decoder::DecoderConfig;

/// `config.json` text, or a dict as `json.load` gives it.
fn config_value(config: &Bound<'_, PyAny>, source: &str) -> PyResult<Value> {
    match config.cast::<PyString>() {
        Ok(text) => Ok(serde_json::from_str(&text.to_cow()?)
            .map_err(|err| Error::config(source, format!("invalid config: {err}")))?),
        Err(_) => json::from_py(config, source),
    }
}

/// An encoder's configuration, BERT's fields (other families translated by the
/// family table), validated.
#[pyclass(name = "EncoderConfig", module = "oxiformer._core", frozen)]
#[derive(Clone)]
pub struct PyEncoderConfig {
    pub(crate) inner: EncoderConfig,
}

#[pymethods]
impl PyEncoderConfig {
    /// `config`: `config.json` text or dict; `source` names it in errors.
    #[new]
    #[pyo3(signature = (config, source = "config.json"))]
    fn new(config: &Bound<'_, PyAny>, source: &str) -> PyResult<Self> {
        let value = config_value(config, source)?;
        Ok(PyEncoderConfig {
            inner: EncoderConfig::from_value(&value, source)?,
        })
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size
    }

    #[getter]
    fn hidden_size(&self) -> usize {
        self.inner.hidden_size
    }

    #[getter]
    fn num_hidden_layers(&self) -> usize {
        self.inner.num_hidden_layers
    }

    #[getter]
    fn num_attention_heads(&self) -> usize {
        self.inner.num_attention_heads
    }

    #[getter]
    fn intermediate_size(&self) -> usize {
        self.inner.intermediate_size
    }

    #[getter]
    fn max_position_embeddings(&self) -> usize {
        self.inner.max_position_embeddings
    }

    /// The normalized fields, every one present.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json::to_py(py, &self.inner.to_value())
    }

    fn __repr__(&self) -> String {
        format!("EncoderConfig({})", self.inner.to_json())
    }
}

/// A decoder's configuration: the `decoder` section of an `EncoderDecoderModel`.
#[pyclass(name = "DecoderConfig", module = "oxiformer._core", frozen)]
pub struct PyDecoderConfig {
    pub(crate) inner: DecoderConfig,
}

#[pymethods]
impl PyDecoderConfig {
    #[new]
    #[pyo3(signature = (config, source = "config.json"))]
    fn new(config: &Bound<'_, PyAny>, source: &str) -> PyResult<Self> {
        let value = config_value(config, source)?;
        Ok(PyDecoderConfig {
            inner: DecoderConfig::from_value(&value, source)?,
        })
    }

    /// Its BERT fields, as an encoder's.
    #[getter]
    fn model(&self) -> PyEncoderConfig {
        PyEncoderConfig {
            inner: self.inner.model.clone(),
        }
    }

    /// Whether the LM head's matrix is the word embeddings.
    #[getter]
    fn tie_word_embeddings(&self) -> bool {
        self.inner.tie_word_embeddings
    }

    fn __repr__(&self) -> String {
        format!(
            "DecoderConfig({}, tie_word_embeddings={})",
            self.inner.model.to_json(),
            self.inner.tie_word_embeddings
        )
    }
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyEncoderConfig>()?;
    module.add_class::<PyDecoderConfig>()?;
    Ok(())
}
