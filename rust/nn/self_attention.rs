//! HF `BertAttention` around one self-attention: the fused query, key and value
//! projections of `BertSelfAttention`, then `BertSelfOutput` (dense, residual, LayerNorm).
//! What runs between the two, bidirectional over spans (the encoder) or causal over a
//! key/value cache (the decoder), is the caller's.

use super::norm::LayerNorm;
use super::{block_tensors, sized, Scratch};
use crate::config::EncoderConfig;
use crate::dense::Dense;
use crate::error::Result;
use crate::models::families::LayerNames;
use crate::ops::cpu::Int8Path;
use crate::quantization::Int8Layer;
use crate::weights::TensorMap;

#[derive(Debug, Clone)]
pub struct AttentionBlock {
    /// query, key and value stacked: (3H, H)
    qkv: Dense,
    output: Dense,
    norm: LayerNorm,
    hidden_size: usize,
}

impl AttentionBlock {
    /// The tensors it takes under `prefix` (a layer's); `int8(module)`: int8 layers.
    pub fn expected_tensors(
        prefix: &str,
        names: &LayerNames,
        config: &EncoderConfig,
        int8: &dyn Fn(&str) -> Option<Int8Layer>,
    ) -> Vec<(String, Vec<usize>)> {
        let hidden = config.hidden_size;
        let modules = [names.query, names.key, names.value, names.attention_output];
        let dense = modules.map(|module| (module, hidden, hidden));
        block_tensors(prefix, &dense, names.attention_norm, hidden, int8)
    }

    pub fn load(
        tensors: &mut TensorMap,
        prefix: &str,
        names: &LayerNames,
        config: &EncoderConfig,
        int8: &dyn Fn(&str) -> Option<Int8Layer>,
    ) -> Result<Self> {
        let hidden = config.hidden_size;
        let name = |module: &str| format!("{prefix}.{module}");
        let qkv = Dense::load_stacked(
            tensors,
            &[&name(names.query), &name(names.key), &name(names.value)],
            hidden,
            hidden,
            int8(names.query),
        )?;
        let output = Dense::load_stacked(
            tensors,
            &[&name(names.attention_output)],
            hidden,
            hidden,
            int8(names.attention_output),
        )?;
        let norm = name(names.attention_norm);
        Ok(AttentionBlock {
            qkv,
            output,
            norm: LayerNorm::load(tensors, &norm, hidden, config.layer_norm_eps)?,
            hidden_size: hidden,
        })
    }

    /// The int8 path of its query/key/value projection when that is int8 (its attention
    /// then runs in int8 too); `None` for float32.
    pub fn int8_path(&self) -> Option<Int8Path> {
        self.qkv.int8_path()
    }

    /// `out (rows, H) = LayerNorm(attend(hidden W_qkv^T + b) W_o^T + b_o + hidden)`, where
    /// `attend(qkv (rows, 3H), context (rows, H))` computes the attention.
    pub fn forward(
        &self,
        hidden: &[f32],
        rows: usize,
        out: &mut [f32],
        scratch: &mut Scratch,
        attend: impl FnOnce(&[f32], &mut [f32]),
    ) {
        let width = self.hidden_size;
        scratch.observe(hidden, width);
        let qkv = sized(&mut scratch.qkv, rows * 3 * width);
        self.qkv
            .forward(hidden, rows, qkv, None, &mut scratch.quantized);
        let context = sized(&mut scratch.context, rows * width);
        attend(qkv, context);
        let context = std::mem::take(&mut scratch.context);
        scratch.observe(&context[..rows * width], width);
        self.output.forward(
            &context[..rows * width],
            rows,
            out,
            None,
            &mut scratch.quantized,
        );
        scratch.context = context;
        self.norm.forward_residual(out, hidden);
    }
}
