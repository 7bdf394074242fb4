//! Layers shared by the models: LayerNorm, the attention blocks (self, causal with a
//! key/value cache, cross), the feed-forward block. Each mirrors one HF module; the
//! numeric work is in `ops`.

pub mod attend;
pub mod causal_attention;
pub mod cross_attention;
pub mod feed_forward;
pub mod kv_cache;
pub mod norm;
pub mod self_attention;

use crate::ops::quantize::QuantizedRows;

/// Buffers one forward pass reuses from layer to layer (grown on demand).
#[derive(Debug, Default)]
pub struct Scratch {
    /// (N, 3H): fused query, key, value.
    pub qkv: Vec<f32>,
    /// (N, H): attention context, before the output projection.
    pub context: Vec<f32>,
    /// (N, H): an attention block's output.
    pub attention_out: Vec<f32>,
    /// (N, I): the feed-forward block's inner activations.
    pub intermediate: Vec<f32>,
    /// The quantized input of an int8 layer.
    pub quantized: QuantizedRows,
}

/// `buffer` holding exactly `len` values (contents unspecified).
pub fn sized(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buffer.resize(len, 0.0);
    &mut buffer[..len]
}

/// The tensors of a dense layer `{name}` of HF layout: `weight (out, in)`, an int8 one's
/// `weight_scale (out)`, `bias (out)` (what `Dense::load_stacked` takes).
pub fn dense_tensors(
    name: &str,
    in_features: usize,
    out_features: usize,
    int8: bool,
) -> Vec<(String, Vec<usize>)> {
    let mut tensors = vec![(format!("{name}.weight"), vec![out_features, in_features])];
    if int8 {
        tensors.push((format!("{name}.weight_scale"), vec![out_features]));
    }
    tensors.push((format!("{name}.bias"), vec![out_features]));
    tensors
}

/// The tensors of a block: its dense modules `(name, in, out)` under `prefix` (int8 where
/// `bits(name)` says so), then its LayerNorm `norm` of `size`.
pub fn block_tensors(
    prefix: &str,
    dense: &[(&str, usize, usize)],
    norm: &str,
    size: usize,
    bits: &dyn Fn(&str) -> Option<u32>,
) -> Vec<(String, Vec<usize>)> {
    let mut tensors: Vec<_> = dense
        .iter()
        .flat_map(|&(module, in_features, out_features)| {
            let name = format!("{prefix}.{module}");
            dense_tensors(&name, in_features, out_features, bits(module).is_some())
        })
        .collect();
    tensors.extend(norm::LayerNorm::expected_tensors(
        &format!("{prefix}.{norm}"),
        size,
    ));
    tensors
}
