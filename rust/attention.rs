//! Multi-head self-attention: softmax(Q K^T / sqrt(d_k) + mask) V, parallel
//! over batch x heads. Mirrors HF `BertSelfAttention` (eager path).

use rayon::prelude::*;

use crate::nn::attend::{attend, AttendScratch, Mask, PackedHead};
use crate::nn::attend_int8::{attend_int8, HeadRows, Int8Scratch};
use crate::ops::cpu::Int8Path;
use crate::ops::matmul::{pack_panels_into, prefetch_l2};

/// Sizes shared by every sequence of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub num_heads: usize,
    pub head_size: usize,
}

impl AttentionShape {
    pub fn hidden_size(&self) -> usize {
        self.num_heads * self.head_size
    }
}

/// The rows of one sequence inside the token buffers: `start..start + len`;
/// every row attends to the first `keys` rows (`keys <= len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub len: usize,
    pub keys: usize,
}

/// Spans of a padded batch: `batch` rows of `seq_len` tokens each, all attended
/// (the mask, if any, is applied as a bias).
pub fn padded_spans(batch: usize, seq_len: usize) -> Vec<Span> {
    (0..batch)
        .map(|b| Span {
            start: b * seq_len,
            len: seq_len,
            keys: seq_len,
        })
        .collect()
}

/// Spans of a padded batch whose mask rows are all prefixes (ones, then zeros)
/// with at least one 1: each row attends to its valid prefix only, no bias
/// needed. Masked keys would get weight exp(f32::MIN) = 0 under the bias, so
/// this is the same attention with the padding skipped (and the same as the
/// packed path). `None` for any other mask.
pub fn prefix_spans(attention_mask: &[i64], batch: usize, seq_len: usize) -> Option<Vec<Span>> {
    if seq_len == 0 {
        return Some(Vec::new());
    }
    attention_mask
        .chunks_exact(seq_len)
        .take(batch)
        .enumerate()
        .map(|(b, row)| {
            let keys = row.iter().take_while(|&&keep| keep == 1).count();
            let prefix = keys > 0 && row[keys..].iter().all(|&keep| keep == 0);
            prefix.then_some(Span {
                start: b * seq_len,
                len: seq_len,
                keys,
            })
        })
        .collect()
}

/// Spans of packed sequences of the given lengths, back to back.
pub fn packed_spans(lengths: &[usize]) -> Vec<Span> {
    let mut start = 0;
    lengths
        .iter()
        .map(|&len| {
            let span = Span {
                start,
                len,
                keys: len,
            };
            start += len;
            span
        })
        .collect()
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

/// Where the heads write their context: rows of `out (N, H)`, each task its
/// own head's columns of its own span's rows.
#[derive(Clone, Copy)]
struct Context(*mut f32);
// SAFETY: tasks write disjoint elements (distinct heads or spans), see
// `multi_head_attention`.
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

/// A task's buffers, reused from one (sequence, head) to the next.
#[derive(Default)]
struct Scratch {
    /// K^T of the head, `(d, keys)`, packed in bands.
    keys_t: Vec<f32>,
    /// V of the head, `(keys, d)`, packed in bands.
    values: Vec<f32>,
    attend: AttendScratch,
}

/// Attention of one (sequence, head): `context (T, d) = softmax(Q K^T / sqrt(d)
/// + bias) V`, written into the head's columns of the span's rows of `out`. Packs the
/// head's keys and values, then [`attend`]s as the decoder does.
///
/// # Safety
/// `out` holds the `(N, H)` output, and no other task touches this span's rows
/// in this head's columns during the call.
unsafe fn attend_one(
    qkv: &[f32],
    span: Span,
    head: usize,
    bias: Option<&[f32]>,
    shape: AttentionShape,
    scratch: &mut Scratch,
    out: Context,
) {
    let (len, keys, head_size) = (span.len, span.keys, shape.head_size);
    if len == 0 {
        return;
    }
    let hidden = shape.hidden_size();
    let stride = 3 * hidden;
    let base = span.start * stride + head * head_size;
    // K^T: element (x, j) is key j's x-th value; V: element (j, x). As the layouts of
    // `PackedHead` with `capacity = keys`.
    pack_panels_into(
        &mut scratch.keys_t,
        &qkv[base + hidden..],
        head_size,
        keys,
        1,
        stride,
    );
    pack_panels_into(
        &mut scratch.values,
        &qkv[base + 2 * hidden..],
        keys,
        head_size,
        stride,
        1,
    );
    let packed = PackedHead {
        keys_t: &scratch.keys_t,
        values: &scratch.values,
        capacity: keys,
        head_size,
    };
    let mask = Mask {
        causal_past: None,
        bias: bias.map(|bias| &bias[span.start..span.start + keys]),
    };
    // SAFETY: the context rows `start..start + len`, columns of `head`, are this task's
    // alone (the caller's contract).
    unsafe {
        attend(
            &qkv[base..],
            stride,
            len,
            packed,
            keys,
            mask,
            &mut scratch.attend,
            out.0.add(span.start * hidden + head * head_size),
            hidden,
        );
    }
}

/// Ask for the rows of Q, K and V of one (sequence, head) to be brought into
/// L2: the next task of a thread, most often, so they arrive while this one
/// computes. Each row is in its own page of a large `qkv`, out of the reach of
/// the hardware's prefetchers (32x128: the packing of K and V waited on memory).
fn prefetch_head(qkv: &[f32], span: Span, head: usize, shape: AttentionShape) {
    let hidden = shape.hidden_size();
    let stride = 3 * hidden;
    for row in span.start..span.start + span.len {
        for part in 0..3 {
            let first = row * stride + part * hidden + head * shape.head_size;
            prefetch_l2(&qkv[first..first + shape.head_size]);
        }
    }
}

/// Multi-head attention over a fused projection `qkv (N, 3*H)` (Q, then K,
/// then V columns, heads contiguous inside each), one independent attention
/// per span (a padded batch row, or one packed sequence), parallel over
/// spans x heads. `bias (N)` from [`mask_bias`] masks keys; packed sequences
/// need none. Writes the concatenated heads to `out (N, H)`; rows outside
/// every span are left as they are.
pub fn multi_head_attention(
    qkv: &[f32],
    spans: &[Span],
    bias: Option<&[f32]>,
    shape: AttentionShape,
    out: &mut [f32],
) {
    for_each_head(
        (qkv, bias),
        spans,
        shape,
        out,
        |span, head, scratch: &mut Scratch, out| {
            // SAFETY: `for_each_head`'s contract: this (span, head) block of `out` is the task's.
            unsafe { attend_one(qkv, span, head, bias, shape, scratch, out) };
        },
    );
}

/// [`multi_head_attention`] of an int8 model: its two products in 8-bit integers on the
/// int8 tiles of `path` (the scheme of `nn::attend_int8`).
pub fn multi_head_attention_int8(
    path: Int8Path,
    qkv: &[f32],
    spans: &[Span],
    bias: Option<&[f32]>,
    shape: AttentionShape,
    out: &mut [f32],
) {
    let hidden = shape.hidden_size();
    let stride = 3 * hidden;
    for_each_head(
        (qkv, bias),
        spans,
        shape,
        out,
        |span, head, scratch: &mut Int8Scratch, out| {
            if span.len == 0 {
                return;
            }
            let base = span.start * stride + head * shape.head_size;
            let rows = HeadRows {
                q: &qkv[base..],
                q_stride: stride,
                k: &qkv[base + hidden..],
                v: &qkv[base + 2 * hidden..],
                kv_stride: stride,
                queries: span.len,
                keys: span.keys,
                head_size: shape.head_size,
            };
            let bias = bias.map(|bias| &bias[span.start..span.start + span.keys]);
            let at = span.start * hidden + head * shape.head_size;
            // SAFETY: `for_each_head`'s contract: this (span, head) block of `out` is the task's.
            unsafe { attend_int8(path, rows, bias, scratch, (out.0.add(at), hidden)) };
        },
    );
}

/// Run `task(span, head, scratch, out)` for every (span, head) in parallel, after checking
/// that the spans lie inside `out (rows, hidden)` without overlapping; each task may write
/// only its span's rows in its head's columns.
fn for_each_head<S: Default + Send>(
    (qkv, bias): (&[f32], Option<&[f32]>),
    spans: &[Span],
    shape: AttentionShape,
    out: &mut [f32],
    task: impl Fn(Span, usize, &mut S, Context) + Sync + Send,
) {
    let hidden = shape.hidden_size();
    let rows = out.len() / hidden.max(1);
    assert_eq!(qkv.len(), rows * 3 * hidden, "qkv buffer size");
    assert!(bias.is_none_or(|b| b.len() == rows), "mask size");
    assert!(
        spans.iter().all(|span| span.start + span.len <= rows
            && span.keys <= span.len
            && (span.keys > 0 || span.len == 0)),
        "span outside the token buffer, or without keys"
    );
    let mut sorted: Vec<(usize, usize)> = spans.iter().map(|s| (s.start, s.len)).collect();
    sorted.sort_unstable();
    assert!(
        sorted.windows(2).all(|w| w[0].0 + w[0].1 <= w[1].0),
        "overlapping spans"
    );
    if rows == 0 || hidden == 0 {
        return;
    }
    let context = Context(out.as_mut_ptr());
    let heads = shape.num_heads;
    (0..spans.len() * heads)
        .into_par_iter()
        .for_each_init(S::default, |scratch, index| {
            let (span, head) = (spans[index / heads], index % heads);
            if let Some(&next) = spans.get((index + 1) / heads) {
                prefetch_head(qkv, next, (index + 1) % heads, shape);
            }
            // `out` is (rows, hidden) and spans lie inside it (checked above) without
            // overlapping: each (span, head) is one task.
            task(span, head, scratch, context);
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward attention in f64 for one (batch, head).
    fn naive(
        qkv: &[f32],
        mask: &[i64],
        batch: usize,
        seq_len: usize,
        shape: AttentionShape,
    ) -> Vec<f32> {
        let AttentionShape {
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

    /// A fused QKV buffer of varied values in [-1.2, 1.2) (`modulo` of them) for
    /// `tokens` tokens and heads of `head_size`.
    fn qkv_of(tokens: usize, shape: AttentionShape, modulo: usize) -> Vec<f32> {
        let step = 2.4 / modulo as f32;
        (0..tokens * 3 * shape.hidden_size())
            .map(|i| ((i * 7919) % modulo) as f32 * step - 1.2)
            .collect()
    }

    /// 3 sequences of 5 tokens, 2 heads of 3.
    fn small_batch() -> (usize, usize, AttentionShape, Vec<f32>) {
        let (batch, seq_len) = (3, 5);
        let shape = AttentionShape {
            num_heads: 2,
            head_size: 3,
        };
        (batch, seq_len, shape, qkv_of(batch * seq_len, shape, 97))
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    }

    #[test]
    fn matches_naive_with_padding_and_empty_rows() {
        let (batch, seq_len, shape, qkv) = small_batch();
        // row 0 full, row 1 padded after 2 tokens, row 2 fully masked (uniform, as HF).
        let mask: Vec<i64> = vec![1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        let expected = naive(&qkv, &mask, batch, seq_len, shape);
        let mut out = vec![0.0; expected.len()];
        let bias = mask_bias(&mask);
        multi_head_attention(
            &qkv,
            &padded_spans(batch, seq_len),
            Some(&bias),
            shape,
            &mut out,
        );
        let diff = max_abs_diff(&out, &expected);
        println!("attention max abs diff {diff:e}");
        assert!(diff < 1e-5);
    }

    #[test]
    fn matches_naive_on_whole_bands_and_two_depth_slices() {
        // Heads of 32 (the AVX2 tiles on both products), 400 keys (two depth
        // slices of P V), and a padded row whose 37 keys are not whole bands.
        let (batch, seq_len) = (2, 400);
        let shape = AttentionShape {
            num_heads: 2,
            head_size: 32,
        };
        let qkv = qkv_of(batch * seq_len, shape, 211);
        let mask: Vec<i64> = (0..batch * seq_len)
            .map(|i| i64::from(i >= seq_len || i < 37))
            .collect();
        let expected = naive(&qkv, &mask, batch, seq_len, shape);
        let mut out = vec![0.0; expected.len()];
        let bias = mask_bias(&mask);
        let spans = padded_spans(batch, seq_len);
        multi_head_attention(&qkv, &spans, Some(&bias), shape, &mut out);
        let diff = max_abs_diff(&out, &expected);
        println!("attention (heads of 32, 400 keys) max abs diff {diff:e}");
        assert!(diff < 1e-5);
    }

    #[test]
    fn packed_sequences_equal_their_padded_rows() {
        let shape = AttentionShape {
            num_heads: 3,
            head_size: 2,
        };
        let hidden = shape.hidden_size();
        let lengths = [4usize, 1, 3];
        let seq_len = 4;
        let padded_qkv: Vec<f32> = (0..lengths.len() * seq_len * 3 * hidden)
            .map(|i| ((i * 31) % 23) as f32 / 10.0 - 1.0)
            .collect();
        let mask: Vec<i64> = lengths
            .iter()
            .flat_map(|&len| (0..seq_len).map(move |t| i64::from(t < len)))
            .collect();
        let bias = mask_bias(&mask);
        let mut padded = vec![0.0; lengths.len() * seq_len * hidden];
        let spans = padded_spans(lengths.len(), seq_len);
        multi_head_attention(&padded_qkv, &spans, Some(&bias), shape, &mut padded);
        // The same tokens without the padding rows.
        let packed_qkv: Vec<f32> = padded_qkv
            .chunks_exact(3 * hidden)
            .zip(&mask)
            .filter(|(_, &keep)| keep == 1)
            .flat_map(|(row, _)| row.iter().copied())
            .collect();
        let total: usize = lengths.iter().sum();
        let mut packed = vec![0.0; total * hidden];
        multi_head_attention(
            &packed_qkv,
            &packed_spans(&lengths),
            None,
            shape,
            &mut packed,
        );
        let kept: Vec<f32> = padded
            .chunks_exact(hidden)
            .zip(&mask)
            .filter(|(_, &keep)| keep == 1)
            .flat_map(|(row, _)| row.iter().copied())
            .collect();
        let diff = max_abs_diff(&kept, &packed);
        println!("packed vs padded attention max abs diff {diff:e}");
        assert!(diff < 1e-6);
    }

    #[test]
    fn prefix_masks_skip_the_padded_keys() {
        let (batch, seq_len, shape, qkv) = small_batch();
        let mask: Vec<i64> = vec![1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0];
        let spans = prefix_spans(&mask, batch, seq_len);
        let keys: Vec<usize> = spans.iter().flatten().map(|span| span.keys).collect();
        assert_eq!(keys, [5, 2, 1]);
        let expected = naive(&qkv, &mask, batch, seq_len, shape);
        let mut out = vec![0.0; expected.len()];
        let spans = spans.unwrap_or_default();
        multi_head_attention(&qkv, &spans, None, shape, &mut out);
        let diff = max_abs_diff(&out, &expected);
        println!("prefix-mask attention max abs diff {diff:e} (padded query rows included)");
        assert!(diff < 1e-5);
        // not prefixes: a hole, a fully masked row
        assert!(prefix_spans(&[1, 0, 1, 1, 1, 1], 2, 3).is_none());
        assert!(prefix_spans(&[0, 0, 0, 1, 1, 1], 2, 3).is_none());
    }
}
