//! HF `BertAttention` as a decoder layer's `crossattention`: queries from the decoder,
//! keys and values from the encoder's output, then `BertSelfOutput` (dense, residual,
//! LayerNorm). The keys and values depend on the input only: [`CrossAttention::memory`]
//! computes and packs them once per input, every decoding step reads them.

use rayon::prelude::*;

use super::attend::{attend, packed_sizes, par_heads, Mask, PackedHead};
use super::norm::LayerNorm;
use super::{block_tensors, sized, Scratch};
use crate::attention::AttentionShape;
use crate::config::EncoderConfig;
use crate::dense::Dense;
use crate::error::Result;
use crate::models::families::CrossAttentionNames;
use crate::ops::matmul::pack_panels_into;
use crate::quantization::Int8Layer;
use crate::weights::TensorMap;

#[derive(Debug, Clone)]
pub struct CrossAttention {
    query: Dense,
    /// key and value stacked: (2H, H), applied to the encoder's output.
    key_value: Dense,
    output: Dense,
    norm: LayerNorm,
    shape: AttentionShape,
}

/// What the decoder sees of one source (a row of the encoder's batch).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceKeys {
    /// Keys attended: the source's unpadded prefix, or all of them under `bias`.
    pub keys: usize,
    /// HF's additive mask over the keys, for masks that are not a prefix of ones.
    pub bias: Option<Vec<f32>>,
}

/// One layer's keys and values over every source, packed per (source, head).
#[derive(Debug, Clone)]
pub struct CrossMemory {
    keys_t: Vec<f32>,
    values: Vec<f32>,
    /// Positions of each source (the encoder's padded length).
    source_len: usize,
    shape: AttentionShape,
}

impl CrossMemory {
    fn head(&self, source: usize, head: usize) -> PackedHead<'_> {
        let (key_block, value_block) = packed_sizes(self.source_len, self.shape.head_size);
        let block = source * self.shape.num_heads + head;
        PackedHead {
            keys_t: &self.keys_t[block * key_block..][..key_block],
            values: &self.values[block * value_block..][..value_block],
            capacity: self.source_len,
            head_size: self.shape.head_size,
        }
    }
}

impl CrossAttention {
    /// The tensors it takes under `prefix` (a decoder layer's); `int8(module)`: int8 layers.
    pub fn expected_tensors(
        prefix: &str,
        names: &CrossAttentionNames,
        config: &EncoderConfig,
        int8: &dyn Fn(&str) -> Option<Int8Layer>,
    ) -> Vec<(String, Vec<usize>)> {
        let hidden = config.hidden_size;
        let dense = names.dense().map(|module| (module, hidden, hidden));
        block_tensors(prefix, &dense, names.norm, hidden, int8)
    }

    pub fn load(
        tensors: &mut TensorMap,
        prefix: &str,
        names: &CrossAttentionNames,
        config: &EncoderConfig,
        int8: &dyn Fn(&str) -> Option<Int8Layer>,
    ) -> Result<Self> {
        let hidden = config.hidden_size;
        let name = |module: &str| format!("{prefix}.{module}");
        let dense = |tensors: &mut TensorMap, modules: &[&str]| {
            let prefixes: Vec<String> = modules.iter().map(|module| name(module)).collect();
            let prefixes: Vec<&str> = prefixes.iter().map(String::as_str).collect();
            Dense::load_stacked(tensors, &prefixes, hidden, hidden, int8(modules[0]))
        };
        Ok(CrossAttention {
            query: dense(tensors, &[names.query])?,
            key_value: dense(tensors, &[names.key, names.value])?,
            output: dense(tensors, &[names.output])?,
            norm: LayerNorm::load(tensors, &name(names.norm), hidden, config.layer_norm_eps)?,
            shape: AttentionShape {
                num_heads: config.num_attention_heads,
                head_size: config.head_size(),
            },
        })
    }

    /// The keys and values of `memory (sources * source_len, H)`, the encoder's output.
    pub fn memory(
        &self,
        memory: &[f32],
        sources: usize,
        source_len: usize,
        scratch: &mut Scratch,
    ) -> CrossMemory {
        let (heads, d) = (self.shape.num_heads, self.shape.head_size);
        let hidden = heads * d;
        let rows = sources * source_len;
        let key_value = sized(&mut scratch.qkv, rows * 2 * hidden);
        self.key_value
            .forward(memory, rows, key_value, None, &mut scratch.quantized);
        let (key_block, value_block) = packed_sizes(source_len, d);
        let mut keys_t = vec![0.0f32; sources * heads * key_block];
        let mut values = vec![0.0f32; sources * heads * value_block];
        keys_t
            .par_chunks_mut(key_block.max(1))
            .zip(values.par_chunks_mut(value_block.max(1)))
            .enumerate()
            .for_each_init(Vec::new, |packed, (block, (keys_t, values))| {
                let (source, head) = (block / heads, block % heads);
                let first = &key_value[source * source_len * 2 * hidden + head * d..];
                // K^T: element (x, j) is key j's x-th value; V: element (j, x).
                pack_panels_into(packed, first, d, source_len, 1, 2 * hidden);
                keys_t.copy_from_slice(packed);
                pack_panels_into(packed, &first[hidden..], source_len, d, 2 * hidden, 1);
                values.copy_from_slice(packed);
            });
        CrossMemory {
            keys_t,
            values,
            source_len,
            shape: self.shape,
        }
    }

    /// `out (rows * tokens, H) = LayerNorm(attend(x W_q^T + b_q) W_o^T + b_o + x)`, where row
    /// `r`'s `tokens` queries attend to source `row_sources[r]` of `memory`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: &[f32],
        rows: usize,
        tokens: usize,
        memory: &CrossMemory,
        sources: &[SourceKeys],
        row_sources: &[usize],
        out: &mut [f32],
        scratch: &mut Scratch,
    ) {
        let (heads, d) = (self.shape.num_heads, self.shape.head_size);
        let hidden = heads * d;
        let queries = sized(&mut scratch.qkv, rows * tokens * hidden);
        self.query
            .forward(x, rows * tokens, queries, None, &mut scratch.quantized);
        let context = sized(&mut scratch.context, rows * tokens * hidden);
        let queries = &*queries;
        par_heads(rows, heads, context, |row, head, attend_scratch, shared| {
            let source = row_sources[row];
            let keys = &sources[source];
            let mask = Mask {
                causal_past: None,
                bias: keys.bias.as_deref(),
            };
            let first = row * tokens * hidden + head * d;
            // SAFETY: this task alone writes rows `row * tokens..` of `context` in the
            // columns of `head` (`par_heads`).
            unsafe {
                attend(
                    &queries[first..],
                    hidden,
                    tokens,
                    memory.head(source, head),
                    keys.keys,
                    mask,
                    attend_scratch,
                    shared.ptr().add(first),
                    hidden,
                )
            };
        });
        self.output
            .forward(context, rows * tokens, out, None, &mut scratch.quantized);
        self.norm.forward_residual(out, x);
    }
}
