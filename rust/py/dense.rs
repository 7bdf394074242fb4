//! Python binding of one float32 dense layer, `_core.Dense`: the small layers Python puts
//! after a model (classifier heads, sentence-transformers' `Dense` module) run on the same
//! GEMM as the encoder, so their outputs too are the same bits on every CPU and thread count
//! (NumPy's BLAS is not).

use std::sync::Arc;

use numpy::PyUntypedArrayMethods;
use numpy::{IntoPyArray, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;

use super::model::c_order;
use crate::error::Error;
use crate::linear::Linear;
use crate::ops::Activation;
use crate::threads;

/// `y = act(x W^T + b)`, `W (out, in)` as in `torch.nn.Linear`.
#[pyclass(name = "Dense", module = "oxiformer._core", frozen)]
pub struct PyDense {
    inner: Arc<Linear>,
    activation: Option<Activation>,
    name: String,
}

#[pymethods]
impl PyDense {
    /// `activation`: `None`, or a Hugging Face `hidden_act` name (`"gelu"`, `"relu"`,
    /// `"tanh"`, ...); `name` names the layer in errors.
    #[new]
    #[pyo3(signature = (weight, bias, activation = None, name = "dense"))]
    fn new(
        py: Python<'_>,
        weight: PyReadonlyArray2<'_, f32>,
        bias: PyReadonlyArray1<'_, f32>,
        activation: Option<&str>,
        name: &str,
    ) -> PyResult<Self> {
        let activation = activation
            .map(|act| {
                Activation::from_name(act)
                    .ok_or_else(|| Error::config(name, format!("unsupported activation {act:?}")))
            })
            .transpose()?;
        let (out, inputs) = (weight.shape()[0], weight.shape()[1]);
        let bias = bias
            .as_slice()
            .map_err(|_| Error::input("bias must be contiguous"))?;
        if bias.len() != out {
            return Err(Error::weights(
                format!("{name}.bias"),
                format!("has {} values for {out} outputs", bias.len()),
            )
            .into());
        }
        let weight = c_order(&weight, "weight")?;
        let named = [(weight, "weight"), (bias, "bias")];
        if let Some((_, part)) = named.iter().find(|(v, _)| v.iter().any(|x| !x.is_finite())) {
            return Err(Error::weights(format!("{name}.{part}"), "must be finite").into());
        }
        let bias = bias.to_vec();
        let inner = py.detach(|| Linear::new(weight, bias, inputs));
        Ok(PyDense {
            inner: Arc::new(inner),
            activation,
            name: name.to_string(),
        })
    }

    #[getter]
    fn in_features(&self) -> usize {
        self.inner.in_features()
    }

    #[getter]
    fn out_features(&self) -> usize {
        self.inner.out_features()
    }

    /// `(rows, out)` of `x (rows, in)`, C-contiguous.
    fn forward<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f32>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let (rows, width) = (x.shape()[0], x.shape()[1]);
        let (inputs, outputs) = (self.inner.in_features(), self.inner.out_features());
        if width != inputs {
            let name = &self.name;
            let message = format!("{name} takes {inputs} features, got {width}");
            return Err(Error::input(message).into());
        }
        let values = c_order(&x, "features")?;
        let (layer, activation) = (Arc::clone(&self.inner), self.activation);
        let result = py.detach(|| {
            threads::run(|| {
                let mut out = vec![0.0f32; rows * outputs];
                layer.forward(values, rows, &mut out, activation);
                out
            })
        })?;
        result.into_pyarray(py).reshape([rows, outputs])
    }
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<PyDense>()
}
