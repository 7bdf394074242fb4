//! HF `BertIntermediate` + `BertOutput`: `LayerNorm(act(x W1^T + b1) W2^T + b2 + x)`.

use super::norm::LayerNorm;
use super::{block_tensors, sized, Scratch};
use crate::config::EncoderConfig;
use crate::dense::Dense;
use crate::error::Result;
use crate::models::families::LayerNames;
use crate::ops::Activation;
use crate::quantization::Int8Layer;
use crate::weights::TensorMap;

#[derive(Debug, Clone)]
pub struct FeedForward {
    intermediate: Dense,
    output: Dense,
    norm: LayerNorm,
    activation: Activation,
    inner_size: usize,
}

impl FeedForward {
    /// `(module, in, out)` of its two dense layers.
    fn dense_shapes(
        names: &LayerNames,
        config: &EncoderConfig,
    ) -> [(&'static str, usize, usize); 2] {
        let (hidden, inner) = (config.hidden_size, config.intermediate_size);
        [
            (names.intermediate, hidden, inner),
            (names.output, inner, hidden),
        ]
    }

    /// The tensors it takes under `prefix` (a layer's); `int8(module)`: int8 layers.
    pub fn expected_tensors(
        prefix: &str,
        names: &LayerNames,
        config: &EncoderConfig,
        int8: &dyn Fn(&str) -> Option<Int8Layer>,
    ) -> Vec<(String, Vec<usize>)> {
        let dense = Self::dense_shapes(names, config);
        block_tensors(prefix, &dense, names.output_norm, config.hidden_size, int8)
    }

    pub fn load(
        tensors: &mut TensorMap,
        prefix: &str,
        names: &LayerNames,
        config: &EncoderConfig,
        int8: &dyn Fn(&str) -> Option<Int8Layer>,
    ) -> Result<Self> {
        let [intermediate, output] = Self::dense_shapes(names, config).map(|(module, i, o)| {
            Dense::load_stacked(
                tensors,
                &[&format!("{prefix}.{module}")],
                i,
                o,
                int8(module),
            )
        });
        let norm = format!("{prefix}.{}", names.output_norm);
        Ok(FeedForward {
            intermediate: intermediate?,
            output: output?,
            norm: LayerNorm::load(tensors, &norm, config.hidden_size, config.layer_norm_eps)?,
            activation: config.hidden_act,
            inner_size: config.intermediate_size,
        })
    }

    /// `out (rows, H)` from the block's input `x (rows, H)`, also its residual.
    pub fn forward(&self, x: &[f32], rows: usize, out: &mut [f32], scratch: &mut Scratch) {
        scratch.observe(x, x.len() / rows.max(1));
        let mut inner = std::mem::take(&mut scratch.intermediate);
        let values = sized(&mut inner, rows * self.inner_size);
        let quantized = &mut scratch.quantized;
        self.intermediate
            .forward(x, rows, values, Some(self.activation), quantized);
        scratch.observe(values, self.inner_size);
        self.output
            .forward(values, rows, out, None, &mut scratch.quantized);
        self.norm.forward_residual(out, x);
        scratch.intermediate = inner;
    }
}
