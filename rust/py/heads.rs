//! Python bindings of the language-model head: `_core.LmHead`, `lm_head_tensors`.

use std::sync::Arc;

use numpy::{IntoPyArray, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::config::PyEncoderConfig;
use super::model::{c_order, tensor_map};
use crate::error::Error;
use crate::models::families::BERT_LM_HEAD;
use crate::models::heads::{LmHead, LmHeadBits};
use crate::nn::Scratch;
use crate::quantization::Int8Layer;
use crate::threads;

/// `{"transform": bits, "decoder": bits}` (either may be missing: float32).
pub(crate) fn lm_head_bits(bits: Option<&Bound<'_, PyDict>>) -> PyResult<LmHeadBits> {
    let Some(dict) = bits else {
        return Ok(LmHeadBits::default());
    };
    let get = |key: &str| -> PyResult<Option<Int8Layer>> {
        let bits: Option<u32> = dict
            .get_item(key)?
            .map(|value| value.extract())
            .transpose()?;
        Ok(bits.map(|activation_bits| Int8Layer {
            activation_bits,
            outliers: 0,
        }))
    };
    Ok(LmHeadBits {
        transform: get("transform")?,
        decoder: get("decoder")?,
    })
}

/// The tensors of the LM head by canonical name: `{name: shape}`.
#[pyfunction]
#[pyo3(signature = (config, bits = None))]
fn lm_head_tensors<'py>(
    py: Python<'py>,
    config: &Bound<'py, PyEncoderConfig>,
    bits: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let config = &config.get().inner;
    let dict = PyDict::new(py);
    for (name, shape) in LmHead::expected_tensors(&BERT_LM_HEAD, config, lm_head_bits(bits)?) {
        dict.set_item(name, PyTuple::new(py, shape)?)?;
    }
    Ok(dict)
}

/// HF `BertOnlyMLMHead`, weights owned by Rust.
#[pyclass(name = "LmHead", module = "oxiformer._core", frozen)]
pub struct PyLmHead {
    inner: Arc<LmHead>,
}

#[pymethods]
impl PyLmHead {
    #[new]
    #[pyo3(signature = (config, tensors, bits = None, copied = None))]
    fn new(
        py: Python<'_>,
        config: &Bound<'_, PyEncoderConfig>,
        tensors: &Bound<'_, PyDict>,
        bits: Option<&Bound<'_, PyDict>>,
        copied: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let config = &config.get().inner;
        let bits = lm_head_bits(bits)?;
        let mut map = tensor_map(tensors, copied)?;
        let head = py.detach(|| LmHead::load(&mut map, &BERT_LM_HEAD, config, bits))?;
        if let Some(extra) = map.names().into_iter().next() {
            return Err(Error::weights(extra, "unexpected tensor for the LM head").into());
        }
        Ok(PyLmHead {
            inner: Arc::new(head),
        })
    }

    /// `logits (rows, vocab)` of `hidden (rows, H)`.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        hidden: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (rows, width) = (hidden.shape()[0], hidden.shape()[1]);
        if width != self.inner.hidden_size() {
            return Err(Error::input(format!(
                "hidden states have {width} columns, the LM head takes {}",
                self.inner.hidden_size()
            ))
            .into());
        }
        let values = c_order(&hidden, "hidden states")?;
        let head = Arc::clone(&self.inner);
        let logits =
            py.detach(|| threads::run(|| head.forward(values, rows, &mut Scratch::default())))?;
        logits
            .into_pyarray(py)
            .reshape([rows, self.inner.vocab_size()])
    }
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyLmHead>()?;
    module.add_function(wrap_pyfunction!(lm_head_tensors, module)?)?;
    Ok(())
}
