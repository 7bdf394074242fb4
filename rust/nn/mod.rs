//! Layers shared by the models: LayerNorm, the attention blocks (self, causal with a
//! key/value cache, cross), the feed-forward block. Each mirrors one HF module; the
//! numeric work is in `ops`.

pub mod attend;
pub mod attend_int8;
pub mod causal_attention;
pub mod cross_attention;
pub mod feed_forward;
pub mod kv_cache;
pub mod norm;
pub mod self_attention;

use crate::ops::quantize::QuantizedRows;
use crate::quantization::Int8Layer;

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
    /// When calibrating for int8: max |x| per input channel of each dense layer, in the
    /// order the blocks run them (query standing for key and value).
    pub peaks: Option<Vec<Vec<f32>>>,
}

impl Scratch {
    /// Room for `tokens` rows of a model of `hidden` and `inner` sizes in every buffer,
    /// reserved now, so that the forward pass allocates nothing more.
    pub fn try_reserve(
        &mut self,
        tokens: usize,
        hidden: usize,
        inner: usize,
    ) -> Result<(), std::collections::TryReserveError> {
        for (buffer, width) in [
            (&mut self.qkv, 3 * hidden),
            (&mut self.context, hidden),
            (&mut self.attention_out, hidden),
            (&mut self.intermediate, inner),
        ] {
            let len = tokens.saturating_mul(width);
            buffer.try_reserve_exact(len.saturating_sub(buffer.len()))?;
        }
        Ok(())
    }

    /// Bytes its float buffers hold room for.
    pub fn capacity_bytes(&self) -> usize {
        let values = [
            &self.qkv,
            &self.context,
            &self.attention_out,
            &self.intermediate,
        ]
        .iter()
        .map(|buffer| buffer.capacity())
        .sum::<usize>();
        values.saturating_mul(std::mem::size_of::<f32>())
    }

    /// Record max |x| per channel of `x (rows, cols)`, when calibrating.
    pub fn observe(&mut self, x: &[f32], cols: usize) {
        if let Some(peaks) = self.peaks.as_mut() {
            let mut peak = vec![0.0f32; cols];
            for row in x.chunks_exact(cols.max(1)) {
                for (max, &value) in peak.iter_mut().zip(row) {
                    *max = max.max(value.abs());
                }
            }
            peaks.push(peak);
        }
    }
}

/// Scratch buffers kept between forward passes, so that a pass does not fault fresh pages
/// in (the kernel zeroing them took 4% of a 32x128 batch): up to [`ScratchPool::KEEP`] sets
/// (one a concurrent caller), each at most [`ScratchPool::MAX_BYTES`] (a larger one, from a
/// large batch, is freed rather than kept).
#[derive(Debug, Default)]
pub struct ScratchPool {
    sets: std::sync::Mutex<Vec<Scratch>>,
}

impl ScratchPool {
    pub const KEEP: usize = 4;
    pub const MAX_BYTES: usize = 64 << 20;

    /// A set of buffers: a kept one, or a new (empty) one.
    pub fn take(&self) -> Scratch {
        let mut sets = self
            .sets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        sets.pop().unwrap_or_default()
    }

    /// Keep `scratch` for the next pass, unless it is too large or enough are kept.
    pub fn give(&self, scratch: Scratch) {
        if scratch.capacity_bytes() > Self::MAX_BYTES || scratch.peaks.is_some() {
            return;
        }
        let mut sets = self
            .sets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if sets.len() < Self::KEEP {
            sets.push(scratch);
        }
    }
}

impl Clone for ScratchPool {
    /// A clone starts with no buffers of its own.
    fn clone(&self) -> Self {
        ScratchPool::default()
    }
}

/// `buffer` holding exactly `len` values (contents unspecified).
pub fn sized(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    buffer.resize(len, 0.0);
    &mut buffer[..len]
}

/// The tensors of a dense layer `{name}` of HF layout: `weight (out, in)`, an int8 one's
/// `weight_scale (out)` and outlier channels (`outlier_index (o)`, `outlier_weight (out, o)`),
/// `bias (out)` (what `Dense::load_stacked` takes).
pub fn dense_tensors(
    name: &str,
    in_features: usize,
    out_features: usize,
    int8: Option<Int8Layer>,
) -> Vec<(String, Vec<usize>)> {
    let mut tensors = vec![(format!("{name}.weight"), vec![out_features, in_features])];
    if let Some(int8) = int8 {
        tensors.push((format!("{name}.weight_scale"), vec![out_features]));
        if int8.outliers > 0 {
            tensors.push((format!("{name}.outlier_index"), vec![int8.outliers]));
            let shape = vec![out_features, int8.outliers];
            tensors.push((format!("{name}.outlier_weight"), shape));
        }
    }
    tensors.push((format!("{name}.bias"), vec![out_features]));
    tensors
}

/// The tensors of a block: its dense modules `(name, in, out)` under `prefix` (int8 where
/// `int8(name)` says so), then its LayerNorm `norm` of `size`.
pub fn block_tensors(
    prefix: &str,
    dense: &[(&str, usize, usize)],
    norm: &str,
    size: usize,
    int8: &dyn Fn(&str) -> Option<Int8Layer>,
) -> Vec<(String, Vec<usize>)> {
    let mut tensors: Vec<_> = dense
        .iter()
        .flat_map(|&(module, in_features, out_features)| {
            let name = format!("{prefix}.{module}");
            dense_tensors(&name, in_features, out_features, int8(module))
        })
        .collect();
    tensors.extend(norm::LayerNorm::expected_tensors(
        &format!("{prefix}.{norm}"),
        size,
    ));
    tensors
}
