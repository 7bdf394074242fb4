//! A dense layer `y = x W^T + b` with the weight in HF layout `(out, in)`.

use crate::error::Result;
use crate::ops::skinny::{self, skinny_matmul};
use crate::ops::{matmul, MatRef, Parallelism};
use crate::weights::TensorMap;

#[derive(Debug, Clone)]
pub struct Linear {
    /// W^T: (in, out), row-major (HF stores (out, in); transposed once at load,
    /// which spares `gemm` a packing pass over the weight on every call).
    weight_t: Vec<f32>,
    /// W^T again, as bands of 16 columns for the few-rows path (`ops::skinny`):
    /// latency over memory, it doubles the layer's weight memory.
    weight_bands: Vec<f32>,
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
        let weight = tensors.take(&format!("{prefix}.weight"), &[out_features, in_features])?;
        let bias = tensors.take(&format!("{prefix}.bias"), &[out_features])?;
        let mut weight_t = vec![0.0f32; weight.len()];
        for (row, values) in weight.chunks_exact(in_features.max(1)).enumerate() {
            for (col, &value) in values.iter().enumerate() {
                weight_t[col * out_features + row] = value;
            }
        }
        Ok(Linear::new(weight_t, bias, in_features, out_features))
    }

    fn new(weight_t: Vec<f32>, bias: Vec<f32>, in_features: usize, out_features: usize) -> Self {
        let weight_bands = skinny::pack_bands(&weight_t, in_features, out_features);
        Linear {
            weight_t,
            weight_bands,
            bias,
            in_features,
            out_features,
        }
    }

    /// Stack several layers that read the same input into one, outputs side by
    /// side (Q, K, V -> QKV).
    pub fn concat(parts: Vec<Linear>) -> Linear {
        let in_features = parts.first().map_or(0, |part| part.in_features);
        let out_features: usize = parts.iter().map(|part| part.out_features).sum();
        let mut weight_t = vec![0.0f32; in_features * out_features];
        let mut bias = Vec::with_capacity(out_features);
        let mut offset = 0;
        for part in &parts {
            assert_eq!(part.in_features, in_features, "concat of mismatched layers");
            for (fused_row, part_row) in weight_t
                .chunks_exact_mut(out_features)
                .zip(part.weight_t.chunks_exact(part.out_features))
            {
                fused_row[offset..offset + part.out_features].copy_from_slice(part_row);
            }
            bias.extend_from_slice(&part.bias);
            offset += part.out_features;
        }
        Linear::new(weight_t, bias, in_features, out_features)
    }

    pub fn in_features(&self) -> usize {
        self.in_features
    }

    pub fn out_features(&self) -> usize {
        self.out_features
    }

    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// `out (rows, out) = input (rows, in) W^T`, without the bias (for callers
    /// that fuse the bias into the next step).
    pub fn forward_no_bias(&self, input: &[f32], rows: usize, out: &mut [f32]) {
        self.multiply(input, rows, out, false);
    }

    /// `out (rows, out) = input (rows, in) W^T + b`.
    pub fn forward(&self, input: &[f32], rows: usize, out: &mut [f32]) {
        for row in out.chunks_exact_mut(self.out_features).take(rows) {
            row.copy_from_slice(&self.bias);
        }
        self.multiply(input, rows, out, true);
    }

    /// `out = input W^T`, or `out += input W^T` when `accumulate`.
    fn multiply(&self, input: &[f32], rows: usize, out: &mut [f32], accumulate: bool) {
        let (k, n) = (self.in_features, self.out_features);
        if rows <= skinny::MAX_ROWS {
            skinny_matmul(input, &self.weight_bands, out, rows, k, n, accumulate);
            return;
        }
        let input = MatRef::row_major(input, rows, self.in_features);
        let weight_t = MatRef::row_major(&self.weight_t, self.in_features, self.out_features);
        let (stride, parallelism) = (self.out_features, Parallelism::Pool);
        matmul(input, weight_t, out, stride, 1.0, accumulate, parallelism);
    }
}
