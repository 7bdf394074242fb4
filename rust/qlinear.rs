//! An int8 dense layer: `y = s_x s_w (q_x - zp) q_w^T + b`.
//!
//! Weights are int8 per output channel (symmetric, `{prefix}.weight` int8
//! `(out, in)` with `{prefix}.weight_scale` float32 `(out)`), prepacked at load.
//! Activations are quantized per token on every call (`ops::quantize`, unsigned
//! with a zero point); the zero point is taken out after the integer product
//! with the weights' precomputed column sums:
//! `sum_k (q_k - zp) w_k = sum_k q_k w_k - zp sum_k w_k`.

use crate::error::{Error, Result};
use crate::ops::qmatmul::{qmatmul, Epilogue, PackedWeights};
pub use crate::ops::quantize::MAX_ACTIVATION_BITS;
use crate::ops::quantize::{quantize_rows, QuantizedRows};
use crate::ops::Activation;
use crate::weights::TensorMap;

/// Largest magnitude of a symmetric int8 weight.
const WEIGHT_MAX: i32 = 127;

#[derive(Debug, Clone)]
pub struct QuantLinear {
    weights: PackedWeights,
    /// (out)
    weight_scale: Vec<f32>,
    /// sum over inputs of each output channel's int8 weights (out)
    column_sums: Vec<i32>,
    /// (out)
    bias: Vec<f32>,
    in_features: usize,
    activation_bits: u32,
}

/// The most activation bits for `in_features` inputs such that no i32 sum can
/// overflow: `in_features * 127 * (2^bits - 1) < 2^31`.
pub fn max_activation_bits(in_features: usize) -> u32 {
    (1..=MAX_ACTIVATION_BITS)
        .rev()
        .find(|&bits| {
            let bound = (in_features as u128) * (WEIGHT_MAX as u128) * ((1u128 << bits) - 1);
            bound < (1u128 << 31)
        })
        .unwrap_or(0)
}

impl QuantLinear {
    /// Several layers that read the same input, stacked along their outputs
    /// (as `Linear::load_stacked`); each part is `{prefix}.weight` int8
    /// `(out, in)`, `{prefix}.weight_scale` `(out)`, `{prefix}.bias` `(out)`.
    pub fn load_stacked(
        tensors: &mut TensorMap,
        prefixes: &[&str],
        in_features: usize,
        part_out_features: usize,
        activation_bits: u32,
    ) -> Result<Self> {
        let first = prefixes.first().copied().unwrap_or_default();
        let limit = max_activation_bits(in_features);
        if activation_bits == 0 || activation_bits > limit {
            return Err(Error::weights(
                format!("{first}.weight"),
                format!(
                    "{activation_bits}-bit activations are not supported with {in_features} \
                     inputs (1 to {limit} bits: the int32 sums must not overflow)"
                ),
            ));
        }
        let mut weight = Vec::with_capacity(prefixes.len() * part_out_features * in_features);
        let mut weight_scale = Vec::with_capacity(prefixes.len() * part_out_features);
        let mut bias = Vec::with_capacity(prefixes.len() * part_out_features);
        for prefix in prefixes {
            let name = format!("{prefix}.weight");
            let values = tensors.take_i8(&name, &[part_out_features, in_features])?;
            if values.iter().any(|&v| (v as i32).abs() > WEIGHT_MAX) {
                return Err(Error::weights(
                    name,
                    "int8 weights must lie in [-127, 127] (symmetric quantization); found -128",
                ));
            }
            weight.extend(values);
            let name = format!("{prefix}.weight_scale");
            weight_scale.extend(tensors.take_scales(&name, part_out_features)?);
            bias.extend(tensors.take(&format!("{prefix}.bias"), &[part_out_features])?);
        }
        let out_features = bias.len();
        let column_sums = weight
            .chunks_exact(in_features.max(1))
            .map(|row| row.iter().map(|&v| v as i32).sum())
            .collect();
        Ok(QuantLinear {
            weights: PackedWeights::pack(&weight, out_features, in_features),
            weight_scale,
            column_sums,
            bias,
            in_features,
            activation_bits,
        })
    }

    /// `out (rows, out) = act(input (rows, in) W^T + b)`, the activation (if
    /// any) applied as the values are stored; `scratch` holds the quantized
    /// input between calls.
    pub fn forward_into(
        &self,
        input: &[f32],
        rows: usize,
        out: &mut [f32],
        activation: Option<Activation>,
        scratch: &mut QuantizedRows,
    ) {
        quantize_rows(input, rows, self.in_features, self.activation_bits, scratch);
        let epilogue = Epilogue {
            scales: &scratch.scales,
            zero_points: &scratch.zero_points,
            column_sums: &self.column_sums,
            weight_scale: &self.weight_scale,
            bias: &self.bias,
            activation,
        };
        qmatmul(&scratch.values, rows, &self.weights, epilogue, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::Tensor;

    #[test]
    fn activation_bits_are_bounded_by_overflow() {
        assert_eq!(max_activation_bits(384), 15);
        assert_eq!(max_activation_bits(1536), 13);
        assert_eq!(max_activation_bits(3072), 12);
        assert_eq!(max_activation_bits(usize::MAX), 0);
    }

    fn layer(
        weight: Vec<i8>,
        scale: Vec<f32>,
        out: usize,
        inp: usize,
        bits: u32,
    ) -> Result<QuantLinear> {
        let mut map = TensorMap::new();
        map.insert(
            "l.weight",
            Tensor::new_i8("l.weight", vec![out, inp], weight)?,
        );
        map.insert(
            "l.weight_scale",
            Tensor::new("l.weight_scale", vec![out], scale)?,
        );
        map.insert("l.bias", Tensor::new("l.bias", vec![out], vec![0.5; out])?);
        QuantLinear::load_stacked(&mut map, &["l"], inp, out, bits)
    }

    #[test]
    fn matches_the_dequantized_product() -> Result<()> {
        let (out, inp, rows) = (19, 11, 7);
        let weight: Vec<i8> = (0..out * inp)
            .map(|i| ((i * 53) % 255) as i8)
            .map(|v| v.max(-127))
            .collect();
        let scale: Vec<f32> = (0..out).map(|i| 0.01 * (i + 1) as f32).collect();
        let input: Vec<f32> = (0..rows * inp)
            .map(|i| ((i * 31 % 17) as f32 - 5.0) * 0.7)
            .collect();
        let linear = layer(weight.clone(), scale.clone(), out, inp, 8)?;
        let mut got = vec![0.0; rows * out];
        linear.forward_into(&input, rows, &mut got, None, &mut QuantizedRows::default());
        let mut q = QuantizedRows::default();
        quantize_rows(&input, rows, inp, 8, &mut q);
        for r in 0..rows {
            for c in 0..out {
                let expected: f64 = (0..inp)
                    .map(|k| {
                        let x = (q.values[r * q.stride + k] as i32 - q.zero_points[r]) as f64
                            * q.scales[r] as f64;
                        x * weight[c * inp + k] as f64 * scale[c] as f64
                    })
                    .sum::<f64>()
                    + 0.5;
                let value = got[r * out + c] as f64;
                assert!(
                    (value - expected).abs() <= 1e-5 * expected.abs().max(1.0),
                    "{value} vs {expected}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn rejects_bad_quantized_weights() -> Result<()> {
        assert!(layer(vec![-128, 0], vec![1.0], 1, 2, 8).is_err());
        assert!(layer(vec![1, 0], vec![f32::NAN], 1, 2, 8).is_err());
        assert!(layer(vec![1, 0], vec![1.0], 1, 2, 16).is_err());
        assert!(layer(vec![1, 0], vec![1.0], 1, 2, 0).is_err());
        let mut map = TensorMap::new();
        map.insert(
            "l.weight",
            Tensor::new("l.weight", vec![1, 2], vec![1.0, 0.0])?,
        );
        let err = QuantLinear::load_stacked(&mut map, &["l"], 2, 1, 8).err();
        assert!(err.is_some_and(|e| e.to_string().contains("expected int8")));
        Ok(())
    }
}
