//! A dense layer of either precision: float32 ([`Linear`]) or int8
//! ([`QuantLinear`]), chosen per layer at load.

use crate::error::Result;
use crate::linear::Linear;
use crate::ops::quantize::QuantizedRows;
use crate::ops::Activation;
use crate::qlinear::QuantLinear;
use crate::weights::TensorMap;

#[derive(Debug, Clone)]
pub enum Dense {
    Float(Linear),
    Int8(QuantLinear),
}

impl Dense {
    /// Load `prefixes` stacked along their outputs: int8 with `activation_bits`
    /// bits per activation when given, else float32.
    pub fn load_stacked(
        tensors: &mut TensorMap,
        prefixes: &[&str],
        in_features: usize,
        part_out_features: usize,
        activation_bits: Option<u32>,
    ) -> Result<Self> {
        Ok(match activation_bits {
            Some(bits) => Dense::Int8(QuantLinear::load_stacked(
                tensors,
                prefixes,
                in_features,
                part_out_features,
                bits,
            )?),
            None => Dense::Float(Linear::load_stacked(
                tensors,
                prefixes,
                in_features,
                part_out_features,
            )?),
        })
    }

    /// `out (rows, out) = act(input (rows, in) W^T + b)`, the activation (if
    /// any) fused into the product's stores; `scratch` holds an int8 layer's
    /// quantized input (reused from call to call).
    pub fn forward(
        &self,
        input: &[f32],
        rows: usize,
        out: &mut [f32],
        activation: Option<Activation>,
        scratch: &mut QuantizedRows,
    ) {
        match self {
            Dense::Float(linear) => linear.forward(input, rows, out, activation),
            Dense::Int8(linear) => linear.forward_into(input, rows, out, activation, scratch),
        }
    }
}
