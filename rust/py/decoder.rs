//! Python bindings of the decoder: `_core.Decoder`, `DecoderMemory`, `DecoderState`,
//! `decoder_tensors`. The search (greedy, beams) is Python's (`oxiformer.generation`); every
//! step, reorder and memory runs here with the GIL released.

use std::sync::{Arc, Mutex, MutexGuard};

use numpy::{
    IntoPyArray, PyArrayDyn, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArray3,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::config::PyDecoderConfig;
use super::model::{c_order, contiguous, tensor_map};
use crate::error::Error;
use crate::models::decoder::{Decoder, DecoderState, Memory};
use crate::models::decoder_int8::{quantizable, DecoderQuantization};
use crate::models::families::BERT_DECODER;

/// `{module: activation bits}` of the int8 layers; None: float32.
fn quantization_from_py(bits: Option<&Bound<'_, PyDict>>) -> PyResult<DecoderQuantization> {
    let mut modules = Vec::new();
    if let Some(dict) = bits {
        for (key, value) in dict.iter() {
            modules.push((key.extract::<String>()?, value.extract::<u32>()?));
        }
    }
    Ok(DecoderQuantization::new(modules)?)
}

/// The tensors of a decoder reading an encoder of width `memory_size`: `{name: shape}`.
#[pyfunction]
#[pyo3(signature = (config, memory_size, quantization = None))]
fn decoder_tensors<'py>(
    py: Python<'py>,
    config: &Bound<'py, PyDecoderConfig>,
    memory_size: usize,
    quantization: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let config = &config.get().inner;
    let quantization = quantization_from_py(quantization)?;
    let dict = PyDict::new(py);
    for (name, shape) in Decoder::expected_tensors(config, memory_size, &quantization) {
        dict.set_item(name, PyTuple::new(py, shape)?)?;
    }
    Ok(dict)
}

/// HF `BertLMHeadModel` as the decoder of an `EncoderDecoderModel`.
#[pyclass(name = "Decoder", module = "oxiformer._core", frozen)]
pub struct PyDecoder {
    inner: Arc<Decoder>,
}

/// The encoder's output, as the decoder's cross-attention reads it (computed once).
#[pyclass(name = "DecoderMemory", module = "oxiformer._core", frozen)]
pub struct PyDecoderMemory {
    inner: Arc<Memory>,
}

/// One generation: the memory and a key/value cache of `batch * num_beams` rows.
#[pyclass(name = "DecoderState", module = "oxiformer._core", frozen)]
pub struct PyDecoderState {
    decoder: Arc<Decoder>,
    inner: Mutex<DecoderState>,
}

impl PyDecoderState {
    fn lock(&self) -> MutexGuard<'_, DecoderState> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[pymethods]
impl PyDecoder {
    /// `config`: the `decoder` section of `config.json` (text or dict); `tensors`: by the
    /// names of `decoder_tensors`; `memory_size`: the encoder's hidden size.
    #[new]
    #[pyo3(signature = (config, tensors, memory_size, quantization = None, copied = None))]
    fn new(
        py: Python<'_>,
        config: &Bound<'_, PyDecoderConfig>,
        tensors: &Bound<'_, PyDict>,
        memory_size: usize,
        quantization: Option<&Bound<'_, PyDict>>,
        copied: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let config = config.get().inner.clone();
        let quantization = quantization_from_py(quantization)?;
        let map = tensor_map(tensors, copied)?;
        let decoder = py.detach(|| Decoder::load(config, map, memory_size, &quantization))?;
        Ok(PyDecoder {
            inner: Arc::new(decoder),
        })
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.vocab_size()
    }

    #[getter]
    fn max_position_embeddings(&self) -> usize {
        self.inner.config().model.max_position_embeddings
    }

    /// Cross-attention keys and values of `encoder_hidden (B, S, memory_size)` float32 under
    /// `attention_mask (B, S)`.
    fn memory(
        &self,
        py: Python<'_>,
        encoder_hidden: PyReadonlyArray3<'_, f32>,
        attention_mask: PyReadonlyArray2<'_, i64>,
    ) -> PyResult<PyDecoderMemory> {
        let shape = encoder_hidden.shape().to_vec();
        if attention_mask.shape() != &shape[..2] {
            return Err(Error::input(format!(
                "attention_mask has shape {:?}, the encoder output {:?}",
                attention_mask.shape(),
                shape
            ))
            .into());
        }
        let hidden = c_order(&encoder_hidden, "the encoder output")?;
        let mask = contiguous(&attention_mask, "attention_mask")?;
        let decoder = Arc::clone(&self.inner);
        let memory = py.detach(|| decoder.memory(hidden, mask, shape[0], shape[1]))?;
        Ok(PyDecoderMemory {
            inner: Arc::new(memory),
        })
    }

    /// A generation over `memory`: `num_beams` rows per input, `capacity` tokens per row.
    fn start(
        &self,
        py: Python<'_>,
        memory: &PyDecoderMemory,
        num_beams: usize,
        capacity: usize,
    ) -> PyResult<PyDecoderState> {
        let memory = Arc::clone(&memory.inner);
        let state = py.detach(|| self.inner.start(memory, num_beams, capacity))?;
        Ok(PyDecoderState {
            decoder: Arc::clone(&self.inner),
            inner: Mutex::new(state),
        })
    }
}

#[pymethods]
impl PyDecoderMemory {
    #[getter]
    fn batch(&self) -> usize {
        self.inner.batch()
    }
}

#[pymethods]
impl PyDecoderState {
    #[getter]
    fn rows(&self) -> usize {
        self.lock().rows()
    }

    /// Tokens cached per row.
    fn __len__(&self) -> usize {
        self.lock().len()
    }

    /// Feed `ids (rows, T)`; the logits of each row's last token `(rows, vocab)`, or of
    /// every token `(rows, T, vocab)` with `all_positions`. `decoder_attention_mask (rows,
    /// len + T)` masks padded decoder inputs.
    #[pyo3(signature = (ids, decoder_attention_mask = None, all_positions = false))]
    fn step<'py>(
        &self,
        py: Python<'py>,
        ids: PyReadonlyArray2<'py, i64>,
        decoder_attention_mask: Option<PyReadonlyArray2<'py, i64>>,
        all_positions: bool,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let (rows, tokens) = (ids.shape()[0], ids.shape()[1]);
        let values = contiguous(&ids, "decoder_input_ids")?;
        let mask = decoder_attention_mask
            .as_ref()
            .map(|mask| contiguous(mask, "decoder_attention_mask"))
            .transpose()?;
        let decoder = Arc::clone(&self.decoder);
        let logits = py.detach(|| {
            let mut state = self.lock();
            if rows != state.rows() {
                return Err(Error::input(format!(
                    "decoder_input_ids has {rows} rows, this generation has {}",
                    state.rows()
                )));
            }
            decoder.step(&mut state, values, tokens, mask, all_positions)
        })?;
        let vocab = self.decoder.vocab_size();
        let shape = if all_positions {
            vec![rows, tokens, vocab]
        } else {
            vec![rows, vocab]
        };
        logits.into_pyarray(py).reshape(shape)
    }

    /// Row `r` continues row `rows[r]` (beam search), `rows (batch * num_beams,)`.
    fn reorder(&self, py: Python<'_>, rows: PyReadonlyArray1<'_, i64>) -> PyResult<()> {
        let rows = contiguous(&rows, "beam indices")?;
        Ok(py.detach(|| self.lock().reorder(rows))?)
    }

    /// Forget the cached tokens: the next step starts again at position 0.
    fn reset(&self) {
        self.lock().reset();
    }
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyDecoder>()?;
    module.add_class::<PyDecoderMemory>()?;
    module.add_class::<PyDecoderState>()?;
    module.add_function(wrap_pyfunction!(decoder_tensors, module)?)?;
    module.add(
        "DECODER_QUANTIZABLE",
        PyTuple::new(module.py(), quantizable(&BERT_DECODER))?,
    )?;
    Ok(())
}
