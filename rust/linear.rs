//! A dense layer `y = x W^T + b` with the weight in HF layout `(out, in)`.

use crate::error::Result;
use crate::ops::matmul::{matmul, pack_panels, Epilogue};
use crate::ops::Activation;
use crate::weights::TensorMap;

#[derive(Debug, Clone)]
pub struct Linear {
    /// W^T (in, out) packed in bands of 16 columns (`ops::matmul`), once at load;
    /// the only copy of the weight.
    weight_panels: Vec<f32>,
    /// (out)
    bias: Vec<f32>,
    in_features: usize,
    out_features: usize,
}

impl Linear {
    /// Take `{prefix}.weight (out, in)` and `{prefix}.bias (out)`.
    pub fn load(
        tensors: &mut TensorMap,
        prefix: &str,
        in_features: usize,
        out_features: usize,
    ) -> Result<Self> {
        Self::load_stacked(tensors, &[prefix], in_features, out_features)
    }

    /// Several layers that read the same input, stacked into one with their
    /// outputs side by side (query, key, value -> QKV); each part is
    /// `{prefix}.weight (out, in)` and `{prefix}.bias (out)`.
    pub fn load_stacked(
        tensors: &mut TensorMap,
        prefixes: &[&str],
        in_features: usize,
        part_out_features: usize,
    ) -> Result<Self> {
        // (out, in) weights stacked along `out` are one (sum of outs, in) matrix.
        let mut weight = Vec::with_capacity(prefixes.len() * part_out_features * in_features);
        let mut bias = Vec::with_capacity(prefixes.len() * part_out_features);
        for prefix in prefixes {
            let shape = [part_out_features, in_features];
            weight.extend(tensors.take(&format!("{prefix}.weight"), &shape)?);
            bias.extend(tensors.take(&format!("{prefix}.bias"), &[part_out_features])?);
        }
        Ok(Self::new(&weight, bias, in_features))
    }

    /// From `weight (out, in)` row-major and `bias (out)`: `out` is the bias's length, and
    /// `weight` holds `out * in_features` values (the caller checked).
    pub fn new(weight: &[f32], bias: Vec<f32>, in_features: usize) -> Self {
        let out_features = bias.len();
        let mut weight_t = vec![0.0f32; out_features * in_features];
        for (row, values) in weight.chunks_exact(in_features.max(1)).enumerate() {
            for (col, &value) in values.iter().enumerate() {
                weight_t[col * out_features + row] = value;
            }
        }
        let weight_panels = pack_panels(&weight_t, in_features, out_features);
        Linear {
            weight_panels,
            bias,
            in_features,
            out_features,
        }
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// `out (rows, out) = act(input (rows, in) W^T + b)`, the activation (if
    /// any) fused into the product's stores.
    pub fn forward(
        &self,
        input: &[f32],
        rows: usize,
        out: &mut [f32],
        activation: Option<Activation>,
    ) {
        let (k, n) = (self.in_features, self.out_features);
        let epilogue = Epilogue::Bias(&self.bias, activation);
        matmul(input, &self.weight_panels, out, rows, k, n, epilogue);
    }
}
