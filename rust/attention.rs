//! Multi-head self-attention: softmax(Q K^T / sqrt(d_k) + mask) V, parallel
//! over batch x heads. Mirrors HF `BertSelfAttention` (eager path).

use rayon::prelude::*;

use crate::ops::{matmul, softmax_rows, MatRef, Parallelism};

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq_len: usize,
    pub num_heads: usize,
    pub head_size: usize,
}

impl AttentionShape {
    pub fn hidden_size(&self) -> usize {
        self.num_heads * self.head_size
    }
}

/// The additive mask HF builds from `attention_mask`: 0 where attended,
/// `f32::MIN` where masked. A row that masks everything therefore attends
/// uniformly to all positions, exactly as HF does.
pub fn mask_bias(attention_mask: &[i64]) -> Vec<f32> {
    attention_mask
        .iter()
        .map(|&keep| (1.0 - keep as f32) * f32::MIN)
        .collect()
}

/// Attention over a fused projection `qkv (B*T, 3*H)` (Q, then K, then V
/// columns, heads contiguous inside each) with `bias (B*T)` from [`mask_bias`].
/// Writes the concatenated heads to `out (B*T, H)`.
pub fn multi_head_attention(qkv: &[f32], bias: &[f32], shape: AttentionShape, out: &mut [f32]) {
    let AttentionShape {
        batch,
        seq_len,
        num_heads,
        head_size,
    } = shape;
    let hidden = shape.hidden_size();
    let qkv_stride = 3 * hidden;
    assert_eq!(qkv.len(), batch * seq_len * qkv_stride, "qkv buffer size");
    assert_eq!(bias.len(), batch * seq_len, "mask size");
    assert_eq!(out.len(), batch * seq_len * hidden, "output buffer size");
    if batch == 0 || seq_len == 0 || hidden == 0 {
        return;
    }
    let scale = 1.0 / (head_size as f32).sqrt();
    // (B, heads, T, d): one contiguous chunk per task, then permuted into (B*T, H).
    let mut per_head = vec![0.0f32; batch * num_heads * seq_len * head_size];
    per_head
        .par_chunks_mut(seq_len * head_size)
        .enumerate()
        .for_each_init(
            || vec![0.0f32; seq_len * seq_len],
            |scores, (task, context)| {
                let (b, h) = (task / num_heads, task % num_heads);
                let base = b * seq_len * qkv_stride + h * head_size;
                let query = MatRef::new(&qkv[base..], seq_len, head_size, qkv_stride, 1);
                // K^T (d, T): a transposed view of the key rows.
                let key_t = MatRef::new(&qkv[base + hidden..], head_size, seq_len, 1, qkv_stride);
                let value =
                    MatRef::new(&qkv[base + 2 * hidden..], seq_len, head_size, qkv_stride, 1);
                // (T, T) = Q K^T / sqrt(d)
                matmul(
                    query,
                    key_t,
                    scores,
                    seq_len,
                    scale,
                    false,
                    Parallelism::Single,
                );
                let row_bias = &bias[b * seq_len..(b + 1) * seq_len];
                for row in scores.chunks_exact_mut(seq_len) {
                    for (score, &mask) in row.iter_mut().zip(row_bias) {
                        *score += mask;
                    }
                }
                softmax_rows(scores, seq_len);
                // (T, d) = P V
                let probs = MatRef::row_major(scores, seq_len, seq_len);
                matmul(
                    probs,
                    value,
                    context,
                    head_size,
                    1.0,
                    false,
                    Parallelism::Single,
                );
            },
        );
    out.par_chunks_mut(hidden)
        .enumerate()
        .for_each(|(token, out_row)| {
            let (b, t) = (token / seq_len, token % seq_len);
            for (h, head_out) in out_row.chunks_exact_mut(head_size).enumerate() {
                let start = ((b * num_heads + h) * seq_len + t) * head_size;
                head_out.copy_from_slice(&per_head[start..start + head_size]);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward attention in f64 for one (batch, head).
    fn naive(qkv: &[f32], mask: &[i64], shape: AttentionShape) -> Vec<f32> {
        let AttentionShape {
            batch,
            seq_len,
            num_heads,
            head_size,
        } = shape;
        let hidden = shape.hidden_size();
        let at = |b: usize, t: usize, part: usize, h: usize, j: usize| {
            f64::from(qkv[(b * seq_len + t) * 3 * hidden + part * hidden + h * head_size + j])
        };
        let mut out = vec![0.0f32; batch * seq_len * hidden];
        for b in 0..batch {
            for h in 0..num_heads {
                for i in 0..seq_len {
                    let scores: Vec<f64> = (0..seq_len)
                        .map(|j| {
                            let dot: f64 = (0..head_size)
                                .map(|x| at(b, i, 0, h, x) * at(b, j, 1, h, x))
                                .sum();
                            dot / (head_size as f64).sqrt()
                                + (1.0 - mask[b * seq_len + j] as f64) * f64::from(f32::MIN)
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f64 = exps.iter().sum();
                    for x in 0..head_size {
                        let value: f64 = (0..seq_len)
                            .map(|j| exps[j] / sum * at(b, j, 2, h, x))
                            .sum();
                        out[(b * seq_len + i) * hidden + h * head_size + x] = value as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_naive_with_padding_and_empty_rows() {
        let shape = AttentionShape {
            batch: 3,
            seq_len: 5,
            num_heads: 2,
            head_size: 3,
        };
        let len = shape.batch * shape.seq_len * 3 * shape.hidden_size();
        let qkv: Vec<f32> = (0..len)
            .map(|i| ((i * 7919) % 97) as f32 / 40.0 - 1.2)
            .collect();
        // row 0 full, row 1 padded after 2 tokens, row 2 fully masked (uniform, as HF).
        let mask: Vec<i64> = vec![1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let expected = naive(&qkv, &mask, shape);
        let mut out = vec![0.0; expected.len()];
        multi_head_attention(&qkv, &mask_bias(&mask), shape, &mut out);
        let diff = out
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        println!("attention max abs diff {diff:e}");
        assert!(diff < 1e-5);
    }
}
