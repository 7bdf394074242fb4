//! Named weight tensors, taken by their Hugging Face names with shape checks.
//!
//! The Python layer reads the files (`python/oxiformer/weights.py`) and checks
//! names and shapes against [`crate::models::encoder::expected_tensors`] before any
//! compute; the Rust side checks again as it takes each tensor, so the core is
//! safe to use on its own.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// A tensor's values: float32, int8 for quantized weights, int64 for channel indices.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    I8(Vec<i8>),
    I64(Vec<i64>),
}

impl TensorData {
    fn len(&self) -> usize {
        match self {
            TensorData::F32(values) => values.len(),
            TensorData::I8(values) => values.len(),
            TensorData::I64(values) => values.len(),
        }
    }

    fn dtype(&self) -> &'static str {
        match self {
            TensorData::F32(_) => "float32",
            TensorData::I8(_) => "int8",
            TensorData::I64(_) => "int64",
        }
    }
}

/// A dense tensor in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    /// A float32 tensor, checking that `data` holds exactly `shape.product()` values.
    pub fn new(name: &str, shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        Self::with_data(name, shape, TensorData::F32(data))
    }

    /// An int8 tensor (quantized weights), checked like [`Tensor::new`].
    pub fn new_i8(name: &str, shape: Vec<usize>, data: Vec<i8>) -> Result<Self> {
        Self::with_data(name, shape, TensorData::I8(data))
    }

    /// An int64 tensor (channel indices), checked like [`Tensor::new`].
    pub fn new_i64(name: &str, shape: Vec<usize>, data: Vec<i64>) -> Result<Self> {
        Self::with_data(name, shape, TensorData::I64(data))
    }

    fn with_data(name: &str, shape: Vec<usize>, data: TensorData) -> Result<Self> {
        let expected = shape
            .iter()
            .try_fold(1usize, |acc, &dim| acc.checked_mul(dim))
            .ok_or_else(|| Error::weights(name, format!("shape {shape:?} is too large")))?;
        if expected != data.len() {
            return Err(Error::weights(
                name,
                format!(
                    "shape {shape:?} needs {expected} values, got {}",
                    data.len()
                ),
            ));
        }
        Ok(Tensor { shape, data })
    }

    /// A zero-filled tensor (tests and benchmarks).
    pub fn zeros(shape: Vec<usize>) -> Self {
        let len = shape.iter().product();
        Tensor {
            shape,
            data: TensorData::F32(vec![0.0; len]),
        }
    }
}

/// Tensors by name. Modules take theirs out as they load, so what is left at
/// the end was not used.
#[derive(Debug, Default, Clone)]
pub struct TensorMap {
    tensors: HashMap<String, Tensor>,
}

impl TensorMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, name: impl Into<String>, tensor: Tensor) {
        self.tensors.insert(name.into(), tensor);
    }

    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Names still in the map, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tensors.keys().cloned().collect();
        names.sort();
        names
    }

    /// Take the float32 tensor `name`, which must have exactly `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        match self.take_any(name, shape)? {
            TensorData::F32(values) => Ok(values),
            other => Err(Error::weights(
                name,
                format!("expected float32 values, got {}", other.dtype()),
            )),
        }
    }

    /// Take the int8 tensor `name`, which must have exactly `shape`.
    pub fn take_i8(&mut self, name: &str, shape: &[usize]) -> Result<Vec<i8>> {
        match self.take_any(name, shape)? {
            TensorData::I8(values) => Ok(values),
            other => Err(Error::weights(
                name,
                format!(
                    "expected int8 values (a quantized weight), got {}",
                    other.dtype()
                ),
            )),
        }
    }

    /// Take `name`, `count` channel indices into `0..limit`, strictly increasing.
    pub fn take_channels(&mut self, name: &str, count: usize, limit: usize) -> Result<Vec<usize>> {
        let values = match self.take_any(name, &[count])? {
            TensorData::I64(values) => values,
            other => {
                return Err(Error::weights(
                    name,
                    format!("expected int64 channel indices, got {}", other.dtype()),
                ))
            }
        };
        let channels: Vec<usize> = values
            .iter()
            .filter_map(|&value| usize::try_from(value).ok().filter(|&c| c < limit))
            .collect();
        if channels.len() != values.len() || channels.windows(2).any(|pair| pair[0] >= pair[1]) {
            return Err(Error::weights(
                name,
                format!(
                    "channel indices must be distinct, increasing and in [0, {limit}), got \
                     {values:?}"
                ),
            ));
        }
        Ok(channels)
    }

    /// Take the quantization scales `name` (`len` float32 values, finite, >= 0).
    pub fn take_scales(&mut self, name: &str, len: usize) -> Result<Vec<f32>> {
        let scales = self.take(name, &[len])?;
        match scales.iter().find(|s| !s.is_finite() || **s < 0.0) {
            Some(bad) => Err(Error::weights(
                name,
                format!("scales must be finite and >= 0, found {bad}"),
            )),
            None => Ok(scales),
        }
    }

    fn take_any(&mut self, name: &str, shape: &[usize]) -> Result<TensorData> {
        let tensor = self
            .tensors
            .remove(name)
            .ok_or_else(|| Error::weights(name, "missing"))?;
        if tensor.shape != shape {
            return Err(Error::weights(
                name,
                format!("expected shape {shape:?}, got {:?}", tensor.shape),
            ));
        }
        Ok(tensor.data)
    }

    /// Take `name` if present (checking its shape), `None` if absent.
    pub fn take_optional(&mut self, name: &str, shape: &[usize]) -> Result<Option<Vec<f32>>> {
        if self.contains(name) {
            self.take(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_checks_presence_and_shape() -> Result<()> {
        let mut map = TensorMap::new();
        map.insert("a", Tensor::new("a", vec![2, 3], vec![1.0; 6])?);
        map.insert("b", Tensor::zeros(vec![4]));
        assert!(Tensor::new("c", vec![2, 2], vec![0.0; 3]).is_err());
        let err = map.take("a", &[3, 2]).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("tensor 'a': expected shape [3, 2], got [2, 3]")
        );
        assert!(map.take("missing", &[1]).is_err());
        assert_eq!(map.take_optional("b", &[4])?, Some(vec![0.0; 4]));
        assert_eq!(map.take_optional("b", &[4])?, None);
        map.insert("q", Tensor::new_i8("q", vec![2], vec![1, -1])?);
        map.insert("f", Tensor::zeros(vec![2]));
        let err = map.take("q", &[2]).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("tensor 'q': expected float32 values, got int8")
        );
        assert!(map.take_i8("f", &[2]).is_err());
        Ok(())
    }
}
