//! Causal self-attention over a key/value cache (HF `BertSelfAttention` with
//! `is_decoder`): each row's new queries see the cached keys and themselves, never later
//! tokens.

use super::attend::{attend, par_heads, Mask};
use super::kv_cache::KvCache;
use crate::attention::AttentionShape;

/// Each row's `tokens` queries (from `qkv (rows * tokens, 3H)`) over its cached keys
/// `..past + tokens`, causally; `bias (rows, past + tokens)` masks padded keys.
#[allow(clippy::too_many_arguments)]
pub fn causal_attention(
    qkv: &[f32],
    rows: usize,
    tokens: usize,
    cache: &KvCache,
    layer: usize,
    past: usize,
    bias: Option<&[f32]>,
    shape: AttentionShape,
    context: &mut [f32],
) {
    let (heads, d) = (shape.num_heads, shape.head_size);
    let hidden = heads * d;
    let keys = past + tokens;
    par_heads(rows, heads, context, |row, head, scratch, shared| {
        let mask = Mask {
            causal_past: Some(past),
            bias: bias.map(|bias| &bias[row * keys..][..keys]),
        };
        let first = row * tokens;
        // SAFETY: this task alone writes rows `row * tokens..` of `context` in the columns
        // of `head` (`par_heads`).
        unsafe {
            attend(
                &qkv[first * 3 * hidden + head * d..],
                3 * hidden,
                tokens,
                cache.head(layer, row, head),
                keys,
                mask,
                scratch,
                shared.ptr().add(first * hidden + head * d),
                hidden,
            )
        };
    });
}
