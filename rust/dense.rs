//! A dense layer of either precision: float32 ([`Linear`]) or int8
//! ([`QuantLinear`]), chosen per layer at load.

use crate::error::Result;
use crate::linear::Linear;
use crate::ops::cpu::Int8Path;
use crate::ops::quantize::QuantizedRows;
use crate::ops::Activation;
use crate::qlinear::QuantLinear;
use crate::quantization::Int8Layer;
use crate::weights::TensorMap;

#[derive(Debug, Clone)]
pub enum Dense {
    Float(Linear),
    Int8(QuantLinear),
}

impl Dense {
    /// Load `prefixes` stacked along their outputs: int8 as `int8` says when given, else
    /// float32.
    pub fn load_stacked(
        tensors: &mut TensorMap,
        prefixes: &[&str],
        in_features: usize,
        part_out_features: usize,
        int8: Option<Int8Layer>,
    ) -> Result<Self> {
        Ok(match int8 {
            Some(int8) => Dense::Int8(QuantLinear::load_stacked(
                tensors,
                prefixes,
                in_features,
                part_out_features,
                int8.activation_bits,
                int8.outliers,
            )?),
            None => Dense::Float(Linear::load_stacked(
                tensors,
                prefixes,
                in_features,
                part_out_features,
            )?),
        })
    }

    /// The int8 path of an int8 layer; `None` for a float32 one.
    pub fn int8_path(&self) -> Option<Int8Path> {
        match self {
            Dense::Float(_) => None,
            Dense::Int8(linear) => Some(linear.path()),
        }
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
