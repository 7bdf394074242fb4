//! HF `nn.LayerNorm` parameters: `{prefix}.weight` (gamma) and `{prefix}.bias` (beta).

use crate::error::Result;
use crate::ops::{add_layer_norm, layer_norm};
use crate::weights::TensorMap;

#[derive(Debug, Clone)]
pub struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f64,
}

impl LayerNorm {
    /// The tensors a LayerNorm of `size` takes.
    pub fn expected_tensors(prefix: &str, size: usize) -> [(String, Vec<usize>); 2] {
        [
            (format!("{prefix}.weight"), vec![size]),
            (format!("{prefix}.bias"), vec![size]),
        ]
    }

    pub fn load(tensors: &mut TensorMap, prefix: &str, size: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            gamma: tensors.take(&format!("{prefix}.weight"), &[size])?,
            beta: tensors.take(&format!("{prefix}.bias"), &[size])?,
            eps,
        })
    }

    /// `x (N, size) = LayerNorm(x)`.
    pub fn forward(&self, x: &mut [f32]) {
        layer_norm(x, &self.gamma, &self.beta, self.eps);
    }

    /// `x (N, size) = LayerNorm(x + residual)`.
    pub fn forward_residual(&self, x: &mut [f32], residual: &[f32]) {
        add_layer_norm(x, residual, &self.gamma, &self.beta, self.eps);
    }
}
