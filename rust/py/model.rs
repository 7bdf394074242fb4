//! Python bindings of the encoder: `_core.Encoder`, `expected_tensors`. Inputs are borrowed zero-copy; outputs are handed to
//! numpy without a copy; every forward runs with the GIL released.

use std::sync::Arc;

use numpy::{
    IntoPyArray, PyArray2, PyArrayDyn, PyArrayMethods, PyReadonlyArray, PyReadonlyArray1,
    PyReadonlyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::config::PyEncoderConfig;
use crate::config::MAX_SINUSOIDAL_VALUES;
use crate::embeddings::sinusoidal_table;
use crate::error::Error;
use crate::models::encoder::{expected_tensors as encoder_tensors, Encoder, EncoderOutput};
use crate::qlinear::MAX_ACTIVATION_BITS;
use crate::quantization::{Quantization, QUANTIZABLE};
use crate::weights::{Tensor, TensorMap};

/// What is int8, from a `quantization_config` dict (see `oxiformer.quantize`):
/// `activation_bits` `{layer name: bits}`, `outlier_channels` `{layer name: count}` and
/// `word_embeddings` (bool), `attention` (`"int8"`, or `"float32"` when absent); None:
/// float32.
fn quantization_from_py(quantization: Option<&Bound<'_, PyDict>>) -> PyResult<Quantization> {
    let Some(dict) = quantization else {
        return Ok(Quantization::default());
    };
    let mut modules = Vec::new();
    if let Some(bits) = dict.get_item("activation_bits")? {
        for (key, value) in bits.cast::<PyDict>()?.iter() {
            modules.push((key.extract::<String>()?, value.extract::<u32>()?));
        }
    }
    let word_embeddings = match dict.get_item("word_embeddings")? {
        Some(value) => value.extract::<bool>()?,
        None => false,
    };
    let mut outliers = Vec::new();
    if let Some(counts) = dict.get_item("outlier_channels")? {
        for (key, value) in counts.cast::<PyDict>()?.iter() {
            outliers.push((key.extract::<String>()?, value.extract::<usize>()?));
        }
    }
    let attention = match dict.get_item("attention")? {
        Some(value) => match value.extract::<String>()?.as_str() {
            "int8" => true,
            "float32" => false,
            other => {
                return Err(Error::config(
                    "quantization_config",
                    format!("attention must be 'int8' or 'float32', got {other:?}"),
                )
                .into())
            }
        },
        None => false,
    };
    Ok(
        Quantization::with_word_embeddings(modules, word_embeddings)?
            .with_outliers(outliers)?
            .with_attention(attention),
    )
}

/// The tensors the encoder needs: `{HF name: shape}`; with `quantization`
/// (a `quantization_config`), int8 tensors come with a `weight_scale`.
#[pyfunction]
#[pyo3(signature = (config, with_pooler = false, quantization = None))]
fn expected_tensors<'py>(
    py: Python<'py>,
    config: &Bound<'py, PyEncoderConfig>,
    with_pooler: bool,
    quantization: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let quantization = quantization_from_py(quantization)?;
    let dict = PyDict::new(py);
    for (name, shape) in encoder_tensors(&config.get().inner, with_pooler, &quantization) {
        dict.set_item(name, PyTuple::new(py, shape)?)?;
    }
    Ok(dict)
}

/// The fixed sinusoidal position table `(num_positions, dim)` the encoder uses
/// for `position_embedding_type = "sinusoidal"`.
#[pyfunction]
fn sinusoidal_positions(
    py: Python<'_>,
    num_positions: usize,
    dim: usize,
) -> PyResult<Bound<'_, PyArray2<f32>>> {
    let values = num_positions.checked_mul(dim);
    if values.is_none_or(|values| values > MAX_SINUSOIDAL_VALUES) {
        return Err(Error::input(format!(
            "a sinusoidal table of {num_positions} x {dim} values is too large"
        ))
        .into());
    }
    let table = py.detach(|| sinusoidal_table(num_positions, dim));
    table.into_pyarray(py).reshape([num_positions, dim])
}

type ForwardOutput<'py> = (
    Bound<'py, PyArrayDyn<f32>>,
    Option<Bound<'py, PyArrayDyn<f32>>>,
    Option<Vec<Bound<'py, PyArrayDyn<f32>>>>,
);

/// The BERT encoder, weights owned by Rust.
#[pyclass(name = "Encoder", module = "oxiformer._core", frozen)]
pub struct PyEncoder {
    inner: Arc<Encoder>,
}

#[pymethods]
impl PyEncoder {
    /// `tensors`: `{HF name: float32 C-contiguous array}`, int8 for the tensors
    /// `quantization` (a `quantization_config` dict, see `oxiformer.quantize`) makes
    /// int8. `copied(array)`, when given, is called with each array once the encoder
    /// holds its own copy of it.
    #[new]
    #[pyo3(signature = (config, tensors, with_pooler = false, quantization = None, copied = None))]
    fn new(
        py: Python<'_>,
        config: &Bound<'_, PyEncoderConfig>,
        tensors: &Bound<'_, PyDict>,
        with_pooler: bool,
        quantization: Option<&Bound<'_, PyDict>>,
        copied: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let config = config.get().inner.clone();
        let quantization = quantization_from_py(quantization)?;
        let map = tensor_map(tensors, copied)?;
        let encoder = py.detach(|| Encoder::load(config, map, with_pooler, &quantization))?;
        Ok(PyEncoder {
            inner: Arc::new(encoder),
        })
    }

    #[getter]
    fn config(&self) -> PyEncoderConfig {
        PyEncoderConfig {
            inner: self.inner.config().clone(),
        }
    }

    #[getter]
    fn has_pooler(&self) -> bool {
        self.inner.has_pooler()
    }

    /// `(last_hidden_state (B, T, H), pooler_output (B, H) | None, hidden_states | None)`.
    #[pyo3(signature = (input_ids, attention_mask, token_type_ids, output_hidden_states = false))]
    fn forward<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray2<'py, i64>,
        attention_mask: PyReadonlyArray2<'py, i64>,
        token_type_ids: PyReadonlyArray2<'py, i64>,
        output_hidden_states: bool,
    ) -> PyResult<ForwardOutput<'py>> {
        let (batch, seq_len) = (input_ids.shape()[0], input_ids.shape()[1]);
        for (name, array) in [
            ("attention_mask", &attention_mask),
            ("token_type_ids", &token_type_ids),
        ] {
            if array.shape() != input_ids.shape() {
                return Err(Error::input(format!(
                    "{name} has shape {:?}, input_ids has {:?}",
                    array.shape(),
                    input_ids.shape()
                ))
                .into());
            }
        }
        let ids = contiguous(&input_ids, "input_ids")?;
        let mask = contiguous(&attention_mask, "attention_mask")?;
        let types = contiguous(&token_type_ids, "token_type_ids")?;
        let encoder = Arc::clone(&self.inner);
        let output =
            py.detach(|| encoder.forward(ids, mask, types, batch, seq_len, output_hidden_states))?;
        to_numpy(
            py,
            output,
            &[batch, seq_len],
            batch,
            encoder.config().hidden_size,
        )
    }

    /// Packed sequences: `input_ids`, `token_type_ids` (N,) back to back, `lengths` (S,).
    /// `(last_hidden_state (N, H), pooler_output (S, H) | None, hidden_states | None)`.
    #[pyo3(signature = (input_ids, token_type_ids, lengths, output_hidden_states = false))]
    fn forward_packed<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray1<'py, i64>,
        token_type_ids: PyReadonlyArray1<'py, i64>,
        lengths: PyReadonlyArray1<'py, i64>,
        output_hidden_states: bool,
    ) -> PyResult<ForwardOutput<'py>> {
        let ids = contiguous(&input_ids, "input_ids")?;
        let types = contiguous(&token_type_ids, "token_type_ids")?;
        let lengths = packed_lengths(&lengths)?;
        let encoder = Arc::clone(&self.inner);
        let output =
            py.detach(|| encoder.forward_packed(ids, types, &lengths, output_hidden_states))?;
        let hidden = encoder.config().hidden_size;
        to_numpy(py, output, &[ids.len()], lengths.len(), hidden)
    }

    /// Calibration for int8: packed sequences as `forward_packed`; for each layer, the
    /// largest |value| of each input channel of query (= key, value), attention.output.dense,
    /// intermediate.dense and output.dense, in that order (4 arrays a layer).
    fn input_peaks<'py>(
        &self,
        py: Python<'py>,
        input_ids: PyReadonlyArray1<'py, i64>,
        token_type_ids: PyReadonlyArray1<'py, i64>,
        lengths: PyReadonlyArray1<'py, i64>,
    ) -> PyResult<Vec<Bound<'py, numpy::PyArray1<f32>>>> {
        let ids = contiguous(&input_ids, "input_ids")?;
        let types = contiguous(&token_type_ids, "token_type_ids")?;
        let lengths = packed_lengths(&lengths)?;
        let encoder = Arc::clone(&self.inner);
        let peaks = py.detach(|| encoder.input_peaks(ids, types, &lengths))?;
        Ok(peaks
            .into_iter()
            .map(|peak| peak.into_pyarray(py))
            .collect())
    }
}

/// `{HF name: float32 or int8 array}` copied into a [`TensorMap`]; `copied(array)`, when
/// given, is called with each array once it is copied.
pub(crate) fn tensor_map(
    tensors: &Bound<'_, PyDict>,
    copied: Option<&Bound<'_, PyAny>>,
) -> PyResult<TensorMap> {
    let mut map = TensorMap::new();
    for (key, value) in tensors.iter() {
        let name: String = key.extract()?;
        let tensor = if let Ok(array) = value.extract::<PyReadonlyArrayDyn<'_, i8>>() {
            Tensor::new_i8(&name, array.shape().to_vec(), array_values(&array))?
        } else if let Ok(array) = value.extract::<PyReadonlyArrayDyn<'_, i64>>() {
            Tensor::new_i64(&name, array.shape().to_vec(), array_values(&array))?
        } else {
            let array: PyReadonlyArrayDyn<'_, f32> = value.extract().map_err(|_| {
                Error::weights(&name, "expected a float32 (or int8, int64) numpy array")
            })?;
            Tensor::new(&name, array.shape().to_vec(), array_values(&array))?
        };
        map.insert(name.clone(), tensor);
        if let Some(copied) = copied {
            copied.call1((value,))?;
        }
    }
    Ok(map)
}

/// An array's values in row-major order (copied: the encoder owns its weights).
fn array_values<T: numpy::Element + Copy>(array: &PyReadonlyArrayDyn<'_, T>) -> Vec<T> {
    match c_order(array, "") {
        Ok(slice) => slice.to_vec(),
        Err(_) => array.as_array().iter().copied().collect(),
    }
}

/// The values of a C-contiguous array, borrowed.
pub(crate) fn contiguous<'a, D: numpy::ndarray::Dimension>(
    array: &'a PyReadonlyArray<'_, i64, D>,
    name: &str,
) -> Result<&'a [i64], Error> {
    c_order(array, name)
}

/// The values of `array` in row-major order, borrowed: a C-contiguous array only. (`as_slice`
/// alone also takes a Fortran-ordered one, whose memory is in column-major order.)
pub(crate) fn c_order<'a, T: numpy::Element, D: numpy::ndarray::Dimension>(
    array: &'a PyReadonlyArray<'_, T, D>,
    name: &str,
) -> Result<&'a [T], Error> {
    let error = || Error::input(format!("{name} must be C-contiguous"));
    if !array.is_c_contiguous() {
        return Err(error());
    }
    array.as_slice().map_err(|_| error())
}

/// The sequence lengths of a packed batch (`lengths (S,)`), each at least 0.
fn packed_lengths(lengths: &PyReadonlyArray1<'_, i64>) -> Result<Vec<usize>, Error> {
    contiguous(lengths, "lengths")?
        .iter()
        .map(|&len| {
            usize::try_from(len).map_err(|_| Error::input(format!("negative length {len}")))
        })
        .collect()
}

/// Hand the output buffers to numpy without a copy: token outputs shaped
/// `token_shape + [hidden]`, the pooler output `(sequences, hidden)`.
fn to_numpy<'py>(
    py: Python<'py>,
    output: EncoderOutput,
    token_shape: &[usize],
    sequences: usize,
    hidden: usize,
) -> PyResult<ForwardOutput<'py>> {
    let mut shape = token_shape.to_vec();
    shape.push(hidden);
    let tokens = |data: Vec<f32>| data.into_pyarray(py).reshape(shape.clone());
    let last_hidden_state = tokens(output.last_hidden_state)?;
    let pooler_output = output
        .pooler_output
        .map(|data| data.into_pyarray(py).reshape(vec![sequences, hidden]))
        .transpose()?;
    let hidden_states = output
        .hidden_states
        .map(|states| states.into_iter().map(tokens).collect::<PyResult<Vec<_>>>())
        .transpose()?;
    Ok((last_hidden_state, pooler_output, hidden_states))
}

/// The most activation bits an int8 layer with `in_features` inputs takes: 8, or 0 where its
/// int32 sums `in_features * 127 * 255` could reach 2^31.
#[pyfunction]
fn max_activation_bits(in_features: usize) -> u32 {
    crate::qlinear::max_activation_bits(in_features)
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyEncoder>()?;
    module.add_function(wrap_pyfunction!(max_activation_bits, module)?)?;
    module.add("QUANTIZABLE", PyTuple::new(module.py(), QUANTIZABLE)?)?;
    module.add("MAX_ACTIVATION_BITS", MAX_ACTIVATION_BITS)?;
    module.add_function(wrap_pyfunction!(expected_tensors, module)?)?;
    module.add_function(wrap_pyfunction!(sinusoidal_positions, module)?)?;
    Ok(())
}
