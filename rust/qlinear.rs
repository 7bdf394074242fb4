//! An int8 dense layer: `y = s_x s_w (q_x - zp) q_w^T + x_o W_o^T + b`.
//!
//! Weights are int8 per output channel (symmetric, `{prefix}.weight` int8 `(out, in)` with
//! `{prefix}.weight_scale` float32 `(out)`), prepacked at load for the int8 path in use.
//! Activations are quantized per token to 8 bits on every call (`ops::quantize`, unsigned
//! with a zero point), except a few outlier input channels chosen when the model was
//! quantized (`{prefix}.outlier_index` int64 `(o)`, `{prefix}.outlier_weight` float32
//! `(out, o)`): they stay in float32 and go through a small float side product, so that one
//! channel of large values does not set the scale of every other. The int8 weights of those
//! channels are zero. The zero point is taken out after the integer product with the
//! weights' precomputed column sums: `sum_k (q_k - zp) w_k = sum_k q_k w_k - zp sum_k w_k`.

use crate::error::{Error, Result};
use crate::ops::cpu::{self, Int8Path};
use crate::ops::qmatmul::{self, qmatmul, Activations, Epilogue, PackedInt8, MAX_IN_FEATURES};
pub use crate::ops::quantize::MAX_ACTIVATION_BITS;
use crate::ops::quantize::{quantize_rows, Outliers, QuantizedRows};
use crate::ops::Activation;
use crate::weights::TensorMap;

/// Largest magnitude of a symmetric int8 weight.
const WEIGHT_MAX: i32 = 127;

#[derive(Debug, Clone)]
pub struct QuantLinear {
    /// Packed for `path`.
    weights: PackedInt8,
    path: Int8Path,
    /// (out)
    weight_scale: Vec<f32>,
    /// sum over inputs of each output channel's int8 weights (out)
    column_sums: Vec<i32>,
    /// (out)
    bias: Vec<f32>,
    in_features: usize,
    activation_bits: u32,
    /// The outlier input channels, increasing (o)
    outlier_index: Vec<usize>,
    /// (in) 0 at the outlier channels, 1 elsewhere; empty without outliers
    keep: Vec<f32>,
    /// Their float32 weights, transposed: (o, out)
    outlier_weight: Vec<f32>,
}

/// The most activation bits for `in_features` inputs: 8, or 0 where even 8-bit sums could
/// overflow i32 (more than [`MAX_IN_FEATURES`] inputs).
pub fn max_activation_bits(in_features: usize) -> u32 {
    if in_features <= MAX_IN_FEATURES {
        MAX_ACTIVATION_BITS
    } else {
        0
    }
}

impl QuantLinear {
    /// The int8 path its weights are packed for.
    pub fn path(&self) -> Int8Path {
        self.path
    }

    /// Several layers that read the same input, stacked along their outputs (as
    /// `Linear::load_stacked`); each part is `{prefix}.weight` int8 `(out, in)`,
    /// `{prefix}.weight_scale` `(out)`, `{prefix}.bias` `(out)` and, with `outliers > 0`,
    /// `{prefix}.outlier_index` int64 `(outliers)` (the same in every part: they share
    /// their input) and `{prefix}.outlier_weight` `(out, outliers)`.
    pub fn load_stacked(
        tensors: &mut TensorMap,
        prefixes: &[&str],
        in_features: usize,
        part_out_features: usize,
        activation_bits: u32,
        outliers: usize,
    ) -> Result<Self> {
        let first = prefixes.first().copied().unwrap_or_default();
        let limit = max_activation_bits(in_features);
        if activation_bits == 0 || activation_bits > limit {
            return Err(Error::weights(
                format!("{first}.weight"),
                format!(
                    "{activation_bits}-bit activations are not supported with {in_features} \
                     inputs (1 to {limit} bits, at most {MAX_IN_FEATURES} inputs: the int32 \
                     sums must not overflow)"
                ),
            ));
        }
        if outliers > in_features {
            return Err(Error::weights(
                format!("{first}.outlier_index"),
                format!("{outliers} outlier channels of {in_features} inputs"),
            ));
        }
        let capacity = prefixes.len() * part_out_features;
        let mut weight = Vec::with_capacity(capacity * in_features);
        let (mut weight_scale, mut bias) = (Vec::with_capacity(capacity), Vec::new());
        let mut outlier_columns = Vec::with_capacity(capacity * outliers);
        let mut outlier_index: Option<Vec<usize>> = None;
        for prefix in prefixes {
            let name = format!("{prefix}.weight");
            let values = tensors.take_i8(&name, &[part_out_features, in_features])?;
            if values.iter().any(|&v| i32::from(v).abs() > WEIGHT_MAX) {
                return Err(Error::weights(
                    name,
                    "int8 weights must lie in [-127, 127] (symmetric quantization); found -128",
                ));
            }
            weight.extend(values);
            let name = format!("{prefix}.weight_scale");
            weight_scale.extend(tensors.take_scales(&name, part_out_features)?);
            bias.extend(tensors.take(&format!("{prefix}.bias"), &[part_out_features])?);
            if outliers == 0 {
                continue;
            }
            let name = format!("{prefix}.outlier_index");
            let index = tensors.take_channels(&name, outliers, in_features)?;
            if outlier_index.as_ref().is_some_and(|first| *first != index) {
                return Err(Error::weights(
                    name,
                    format!(
                        "differs from {first}.outlier_index: the stacked layers share one input"
                    ),
                ));
            }
            outlier_index = Some(index);
            let name = format!("{prefix}.outlier_weight");
            let values = tensors.take(&name, &[part_out_features, outliers])?;
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                return Err(Error::weights(name, format!("must be finite, found {bad}")));
            }
            outlier_columns.extend(values);
        }
        let outlier_index = outlier_index.unwrap_or_default();
        for &channel in &outlier_index {
            // The float side product covers these channels: their int8 weights add nothing.
            for row in weight.chunks_exact_mut(in_features.max(1)) {
                row[channel] = 0;
            }
        }
        let out_features = bias.len();
        let column_sums = weight
            .chunks_exact(in_features.max(1))
            .map(|row| row.iter().map(|&v| i32::from(v)).sum())
            .collect();
        // (out, o) -> (o, out): the epilogue reads a row of output channels per outlier.
        let mut outlier_weight = vec![0.0f32; outliers * out_features];
        for (channel, row) in outlier_columns.chunks_exact(outliers.max(1)).enumerate() {
            for (o, &value) in row.iter().enumerate() {
                outlier_weight[o * out_features + channel] = value;
            }
        }
        let keep = if outlier_index.is_empty() {
            Vec::new()
        } else {
            let mut keep = vec![1.0f32; in_features];
            outlier_index
                .iter()
                .for_each(|&channel| keep[channel] = 0.0);
            keep
        };
        let path = cpu::active().int8;
        let (group, _) = qmatmul::storage(path);
        Ok(QuantLinear {
            weights: PackedInt8::pack(&weight, out_features, in_features, group),
            path,
            weight_scale,
            column_sums,
            bias,
            in_features,
            activation_bits,
            outlier_index,
            keep,
            outlier_weight,
        })
    }

    /// `out (rows, out) = act(input (rows, in) W^T + b)`, the activation (if any) applied as
    /// the values are stored; `scratch` holds the quantized input between calls.
    pub fn forward_into(
        &self,
        input: &[f32],
        rows: usize,
        out: &mut [f32],
        activation: Option<Activation>,
        scratch: &mut QuantizedRows,
    ) {
        let (_, words) = qmatmul::storage(self.path);
        let storage = (self.weights.k_padded(), words);
        let shape = (rows, self.in_features);
        let outliers = Outliers {
            channels: &self.outlier_index,
            keep: &self.keep,
        };
        quantize_rows(
            input,
            shape,
            self.activation_bits,
            outliers,
            storage,
            scratch,
        );
        let epilogue = Epilogue {
            scales: &scratch.scales,
            zero_points: &scratch.zero_points,
            column_sums: &self.column_sums,
            weight_scale: &self.weight_scale,
            bias: &self.bias,
            outliers: &scratch.outliers,
            outlier_weight: &self.outlier_weight,
            activation,
        };
        let activations = if words {
            Activations::Words(&scratch.words)
        } else {
            Activations::Bytes(&scratch.bytes)
        };
        qmatmul(self.path, activations, rows, &self.weights, epilogue, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::Tensor;

    #[test]
    fn activation_bits_are_bounded_by_overflow() {
        assert_eq!(max_activation_bits(384), 8);
        assert_eq!(max_activation_bits(MAX_IN_FEATURES), 8);
        assert_eq!(max_activation_bits(MAX_IN_FEATURES + 1), 0);
        // The bound is tight: 255 * 127 per input.
        assert!((MAX_IN_FEATURES as i64) * 255 * 127 < 1 << 31);
        assert!((MAX_IN_FEATURES as i64 + 2) * 255 * 127 >= 1 << 31);
    }

    struct Layer {
        weight: Vec<i8>,
        scale: Vec<f32>,
        outliers: Vec<i64>,
        outlier_weight: Vec<f32>,
    }

    fn load(layer: &Layer, out: usize, inp: usize, bits: u32) -> Result<QuantLinear> {
        let mut map = TensorMap::new();
        let count = layer.outliers.len();
        map.insert(
            "l.weight",
            Tensor::new_i8("l.weight", vec![out, inp], layer.weight.clone())?,
        );
        map.insert(
            "l.weight_scale",
            Tensor::new("l.weight_scale", vec![out], layer.scale.clone())?,
        );
        map.insert("l.bias", Tensor::new("l.bias", vec![out], vec![0.5; out])?);
        if count > 0 {
            let index = Tensor::new_i64("l.outlier_index", vec![count], layer.outliers.clone())?;
            map.insert("l.outlier_index", index);
            let weight = layer.outlier_weight.clone();
            map.insert(
                "l.outlier_weight",
                Tensor::new("l.outlier_weight", vec![out, count], weight)?,
            );
        }
        QuantLinear::load_stacked(&mut map, &["l"], inp, out, bits, count)
    }

    #[test]
    fn matches_the_dequantized_product() -> Result<()> {
        let (out, inp, rows) = (19, 11, 7);
        let weight: Vec<i8> = (0..out * inp)
            .map(|i| ((i * 53) % 255) as i8)
            .map(|v| v.max(-127))
            .collect();
        let scale: Vec<f32> = (0..out).map(|i| 0.01 * (i + 1) as f32).collect();
        let mut input: Vec<f32> = (0..rows * inp)
            .map(|i| ((i * 31 % 17) as f32 - 5.0) * 0.7)
            .collect();
        // Channel 3 carries large values: an outlier channel with float weights.
        let outliers = vec![3i64, 8];
        let outlier_weight: Vec<f32> = (0..out * 2).map(|i| (i as f32 * 0.37).sin()).collect();
        for r in 0..rows {
            input[r * inp + 3] = 400.0 - 90.0 * r as f32;
        }
        let layer = Layer {
            weight: weight.clone(),
            scale: scale.clone(),
            outliers: outliers.clone(),
            outlier_weight: outlier_weight.clone(),
        };
        let linear = load(&layer, out, inp, 8)?;
        let mut got = vec![0.0; rows * out];
        let mut q = QuantizedRows::default();
        linear.forward_into(&input, rows, &mut got, None, &mut q);
        let words = qmatmul::storage(linear.path).1;
        let mut worst = 0.0f64;
        for r in 0..rows {
            for c in 0..out {
                let mut expected = 0.5f64;
                for k in 0..inp {
                    if let Some(o) = outliers.iter().position(|&o| o as usize == k) {
                        expected +=
                            f64::from(input[r * inp + k]) * f64::from(outlier_weight[c * 2 + o]);
                        continue;
                    }
                    let value = if words {
                        i32::from(q.words[r * q.stride + k])
                    } else {
                        i32::from(q.bytes[r * q.stride + k])
                    };
                    let x = f64::from(value - q.zero_points[r]) * f64::from(q.scales[r]);
                    expected += x * f64::from(weight[c * inp + k]) * f64::from(scale[c]);
                }
                let value = f64::from(got[r * out + c]);
                worst = worst.max((value - expected).abs() / expected.abs().max(1.0));
            }
        }
        println!("int8 layer vs its dequantized product: max relative diff {worst:e}");
        assert!(worst < 1e-5);
        Ok(())
    }

    #[test]
    fn rejects_bad_quantized_weights() -> Result<()> {
        let plain = |weight: Vec<i8>, scale: f32| Layer {
            weight,
            scale: vec![scale],
            outliers: vec![],
            outlier_weight: vec![],
        };
        assert!(load(&plain(vec![-128, 0], 1.0), 1, 2, 8).is_err());
        assert!(load(&plain(vec![1, 0], f32::NAN), 1, 2, 8).is_err());
        assert!(load(&plain(vec![1, 0], 1.0), 1, 2, 9).is_err());
        assert!(load(&plain(vec![1, 0], 1.0), 1, 2, 0).is_err());
        for (outliers, weight) in [
            (vec![2i64], vec![1.0]),
            (vec![-1], vec![1.0]),
            (vec![1, 1], vec![1.0, 1.0]),
            (vec![1, 0], vec![1.0, 1.0]),
            (vec![1], vec![f32::INFINITY]),
        ] {
            let layer = Layer {
                weight: vec![1, 0],
                scale: vec![1.0],
                outliers,
                outlier_weight: weight,
            };
            let err = load(&layer, 1, 2, 8).err().map(|e| e.to_string());
            println!("{err:?}");
            assert!(err.is_some_and(|e| e.contains("outlier")));
        }
        let mut map = TensorMap::new();
        map.insert(
            "l.weight",
            Tensor::new("l.weight", vec![1, 2], vec![1.0, 0.0])?,
        );
        let err = QuantLinear::load_stacked(&mut map, &["l"], 2, 1, 8, 0).err();
        assert!(err.is_some_and(|e| e.to_string().contains("expected int8")));
        Ok(())
    }
}
