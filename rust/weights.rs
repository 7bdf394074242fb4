//! Named weight tensors, taken by their Hugging Face names with shape checks.
//!
//! The Python layer reads the files (`python/oxiformer/weights.py`) and checks
//! names and shapes against [`crate::bert::expected_tensors`] before any
//! compute; the Rust side checks again as it takes each tensor, so the core is
//! safe to use on its own.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// A dense float32 tensor in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor, checking that `data` holds exactly `shape.product()` values.
    pub fn new(name: &str, shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
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
            data: vec![0.0; len],
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

    /// Take the tensor `name`, which must have exactly `shape`.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
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
        Ok(())
    }
}
