//! The attention of one (sequence, head) over keys and values already packed for the GEMM:
//! `context (T, d) = softmax(Q K^T / sqrt(d) + mask) V`. The decoder's causal
//! self-attention (keys from its cache) and its cross-attention (keys from the encoder's
//! output, packed once per input) both run here; HF's eager attention is the model.
//!
//! Layouts (`PANEL` = 16, as `ops::matmul::pack_panels`): K^T `(d, capacity)` in bands of
//! 16 keys, band `b` at `b * d * 16`; V `(capacity, d)` in bands of 16 of its `d` columns,
//! band `c` at `c * capacity * 16`, `capacity` rows each. Appending key `j` writes one column
//! of K^T and one row of each band of V, so a cache grows without repacking.

use rayon::prelude::*;

use crate::ops::matmul::{matmul_strided, Epilogue, PANEL};
use crate::ops::softmax::{scaled_softmax_pair, scaled_softmax_row};

/// One head's packed keys and values.
#[derive(Debug, Clone, Copy)]
pub struct PackedHead<'a> {
    pub keys_t: &'a [f32],
    pub values: &'a [f32],
    /// Rows of each band of `values` (and the most keys `keys_t` has room for).
    pub capacity: usize,
    pub head_size: usize,
}

/// Floats of one head's K^T and of its V for `capacity` keys.
pub fn packed_sizes(capacity: usize, head_size: usize) -> (usize, usize) {
    (
        capacity.div_ceil(PANEL) * head_size * PANEL,
        head_size.div_ceil(PANEL) * capacity * PANEL,
    )
}

/// Write key `j` (`d` values) into K^T and value `j` into V.
pub fn store(
    keys_t: &mut [f32],
    values: &mut [f32],
    capacity: usize,
    j: usize,
    key: &[f32],
    value: &[f32],
) {
    let head_size = key.len();
    let key_base = (j / PANEL) * head_size * PANEL + j % PANEL;
    for (x, &k) in key.iter().enumerate() {
        keys_t[key_base + x * PANEL] = k;
    }
    for (band, chunk) in value.chunks(PANEL).enumerate() {
        let start = band * capacity * PANEL + j * PANEL;
        values[start..start + chunk.len()].copy_from_slice(chunk);
    }
}

/// Which keys the queries see.
#[derive(Debug, Clone, Copy)]
pub struct Mask<'a> {
    /// `Some(past)`: query `i` sees keys `..=past + i` only (causal), else every key.
    pub causal_past: Option<usize>,
    /// Added to the scaled scores of every query over the keys: 0, or `f32::MIN` to mask.
    pub bias: Option<&'a [f32]>,
}

/// A task's buffers, reused from one head to the next.
#[derive(Debug, Default)]
pub struct AttendScratch {
    scores: Vec<f32>,
    bias: Vec<f32>,
}

/// The attention of `queries` rows of `q` (row `i` at `q[i * q_stride..][..d]`) over the
/// first `keys` keys of `head`, written to `out[i * out_stride..][..d]`.
///
/// Masked keys weigh exactly 0 (as `exp(f32::MIN - max)` does under HF's additive mask); a
/// query that sees no key at all attends uniformly to every key, as HF's eager attention does.
///
/// # Safety
/// `out` is valid for writes at `i * out_stride + x` for `i < queries`, `x < d`, and no other
/// thread reads or writes those elements during the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn attend(
    q: &[f32],
    q_stride: usize,
    queries: usize,
    head: PackedHead<'_>,
    keys: usize,
    mask: Mask<'_>,
    scratch: &mut AttendScratch,
    out: *mut f32,
    out_stride: usize,
) {
    let d = head.head_size;
    assert!(
        keys <= head.capacity && keys > 0,
        "keys outside the packed head"
    );
    assert!(mask.bias.is_none_or(|bias| bias.len() >= keys), "mask size");
    let width = keys.next_multiple_of(PANEL);
    scratch.scores.resize(queries * width, 0.0);
    let scores = &mut scratch.scores[..queries * width];
    // SAFETY: `scores` is this task's own buffer, (queries, width); K^T holds whole bands.
    unsafe {
        // (T, width) = Q K^T over whole bands of keys (the scores past `keys` are unused).
        matmul_strided(
            q,
            q_stride,
            head.keys_t,
            scores.as_mut_ptr(),
            width,
            (queries, d, width),
            Epilogue::Overwrite,
        );
    }
    let scale = 1.0 / (d as f32).sqrt();
    if mask.causal_past.is_none() {
        // Every query sees every key: rows two at a time, their softmaxes overlapping.
        let bias = mask.bias.map(|bias| &bias[..keys]);
        let mut pairs = scores.chunks_exact_mut(2 * width);
        for pair in &mut pairs {
            let (first, second) = pair.split_at_mut(width);
            scaled_softmax_pair(&mut first[..keys], &mut second[..keys], scale, bias);
        }
        for row in pairs.into_remainder().chunks_exact_mut(width) {
            scaled_softmax_row(&mut row[..keys], scale, bias);
        }
    } else {
        for (i, row) in scores.chunks_exact_mut(width).enumerate() {
            let row = &mut row[..keys];
            let visible = mask
                .causal_past
                .map_or(keys, |past| (past + i + 1).min(keys));
            match mask.bias {
                None => {
                    scaled_softmax_row(&mut row[..visible], scale, None);
                    row[visible..].fill(0.0);
                }
                Some(bias) if visible == keys => {
                    scaled_softmax_row(row, scale, Some(&bias[..keys]))
                }
                Some(bias) => {
                    // Future keys masked like padding: a query with nothing left to see then
                    // attends uniformly to all keys, as HF's combined causal + padding mask does.
                    scratch.bias.clear();
                    scratch.bias.extend_from_slice(&bias[..visible]);
                    scratch.bias.resize(keys, f32::MIN);
                    scaled_softmax_row(row, scale, Some(&scratch.bias));
                }
            }
        }
    }
    // V's bands lie `capacity * 16` apart. When that is `keys * 16`, V is one packed
    // (keys, d) matrix and one product takes all its columns (the widest tile); else a
    // product per band.
    let (products, product_columns) = if head.capacity == keys {
        (1, d)
    } else {
        (d.div_ceil(PANEL), PANEL)
    };
    for band in 0..products {
        let columns = product_columns.min(d - band * PANEL);
        let values = &head.values[band * head.capacity * PANEL..];
        // SAFETY: the caller's contract covers columns `band * 16..` of the rows of `out`.
        unsafe {
            // (T, columns) = P V[:, band * 16..]
            matmul_strided(
                scores,
                width,
                values,
                out.add(band * PANEL),
                out_stride,
                (queries, keys, columns),
                Epilogue::Overwrite,
            );
        }
    }
}

/// Where the tasks of [`par_heads`] write: each its own (row, head) block.
#[derive(Clone, Copy)]
pub struct SharedOut(*mut f32);
// SAFETY: the tasks of `par_heads` write disjoint elements (see `par_heads`).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    pub fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// Run `task(row, head, scratch, out)` for every (row, head), in parallel on the current
/// pool. `out (rows * tokens, heads * d)`: a task may write only the `tokens` rows of its
/// `row` in the `d` columns of its `head`, which makes the writes disjoint; each task is
/// computed by one thread, so results do not depend on the number of threads.
pub fn par_heads(
    rows: usize,
    heads: usize,
    out: &mut [f32],
    task: impl Fn(usize, usize, &mut AttendScratch, SharedOut) + Sync + Send,
) {
    let shared = SharedOut(out.as_mut_ptr());
    (0..rows * heads)
        .into_par_iter()
        .with_max_len(1)
        .for_each_init(AttendScratch::default, |scratch, index| {
            task(index / heads, index % heads, scratch, shared);
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which keys query `i` sees: `visible(i, j)`.
    type Visible = Box<dyn Fn(usize, usize) -> bool>;

    /// softmax(q k^T / sqrt(d) + bias) v in f64, keys `visible(i)` only (uniform if none).
    fn naive(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        (queries, keys, d): (usize, usize, usize),
        visible: impl Fn(usize, usize) -> bool,
    ) -> Vec<f32> {
        let mut out = vec![0.0f32; queries * d];
        for i in 0..queries {
            let seen: Vec<usize> = (0..keys).filter(|&j| visible(i, j)).collect();
            // Nothing to see: every score is f32::MIN under HF's mask, so all weigh alike.
            let uniform = seen.is_empty();
            let seen = if uniform { (0..keys).collect() } else { seen };
            let scores: Vec<f64> = seen
                .iter()
                .map(|&j| {
                    if uniform {
                        return 0.0;
                    }
                    let dot: f64 = (0..d)
                        .map(|x| f64::from(q[i * d + x]) * f64::from(k[j * d + x]))
                        .sum();
                    dot / (d as f64).sqrt()
                })
                .collect();
            let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = exps.iter().sum();
            for x in 0..d {
                let value: f64 = seen
                    .iter()
                    .zip(&exps)
                    .map(|(&j, e)| e / sum * f64::from(v[j * d + x]))
                    .sum();
                out[i * d + x] = value as f32;
            }
        }
        out
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104_729) % 211) as f32 / 88.0 - 1.2)
            .collect()
    }

    fn packed(
        k: &[f32],
        v: &[f32],
        keys: usize,
        d: usize,
        capacity: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let (kt_len, v_len) = packed_sizes(capacity, d);
        let (mut keys_t, mut values) = (vec![f32::NAN; kt_len], vec![f32::NAN; v_len]);
        for j in 0..keys {
            store(
                &mut keys_t,
                &mut values,
                capacity,
                j,
                &k[j * d..][..d],
                &v[j * d..][..d],
            );
        }
        (keys_t, values)
    }

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    #[test]
    fn causal_cross_and_masked_attention_match_naive() {
        // Heads of 3 (one partial band), 20 (two bands), 32; keys across band edges;
        // slots past the keys hold NaN, which must not leak into the result.
        let mut worst = 0.0f32;
        for &(queries, keys, d, capacity) in &[
            (1, 1, 3, 1),
            (5, 5, 3, 8),
            (1, 37, 20, 40),
            (7, 23, 32, 64),
            (18, 18, 20, 18),
        ] {
            let (q, k, v) = (
                values(queries * d, 1),
                values(keys * d, 2),
                values(keys * d, 3),
            );
            let (keys_t, vals) = packed(&k, &v, keys, d, capacity);
            let head = PackedHead {
                keys_t: &keys_t,
                values: &vals,
                capacity,
                head_size: d,
            };
            let past = keys - queries.min(keys);
            let mut padding: Vec<f32> = (0..keys)
                .map(|j| if j % 3 == 1 { f32::MIN } else { 0.0 })
                .collect();
            padding[0] = f32::MIN;
            let cases: [(Mask, Visible); 4] = [
                (
                    Mask {
                        causal_past: None,
                        bias: None,
                    },
                    Box::new(|_, _| true),
                ),
                (
                    Mask {
                        causal_past: Some(past),
                        bias: None,
                    },
                    Box::new(move |i, j| j <= past + i),
                ),
                (
                    Mask {
                        causal_past: None,
                        bias: Some(&padding),
                    },
                    Box::new(|_, j| j % 3 != 1 && j != 0),
                ),
                (
                    Mask {
                        causal_past: Some(past),
                        bias: Some(&padding),
                    },
                    Box::new(move |i, j| j <= past + i && j % 3 != 1 && j != 0),
                ),
            ];
            for (mask, visible) in cases {
                let expected = naive(&q, &k, &v, (queries, keys, d), visible);
                let mut out = vec![0.0f32; queries * d];
                let mut scratch = AttendScratch::default();
                // SAFETY: `out` is (queries, d), written by this call alone.
                unsafe {
                    attend(
                        &q,
                        d,
                        queries,
                        head,
                        keys,
                        mask,
                        &mut scratch,
                        out.as_mut_ptr(),
                        d,
                    )
                };
                let diff = max_abs_diff(&out, &expected);
                println!(
                    "{queries} {keys} {d} {capacity} {:?} {diff}",
                    mask.causal_past
                );
                worst = worst.max(diff);
            }
        }
        println!("attend max abs diff {worst:e}");
        assert!(worst < 1e-5);
    }

    #[test]
    fn a_query_seeing_nothing_attends_uniformly() {
        let (keys, d) = (4, 2);
        let (k, v) = (values(keys * d, 4), values(keys * d, 5));
        let (keys_t, vals) = packed(&k, &v, keys, d, keys);
        let head = PackedHead {
            keys_t: &keys_t,
            values: &vals,
            capacity: keys,
            head_size: d,
        };
        let bias = [f32::MIN; 4];
        let mut out = [0.0f32; 2];
        let mask = Mask {
            causal_past: Some(0),
            bias: Some(&bias),
        };
        // SAFETY: `out` is (1, d), written by this call alone.
        unsafe {
            attend(
                &[0.5, -0.25],
                d,
                1,
                head,
                keys,
                mask,
                &mut AttendScratch::default(),
                out.as_mut_ptr(),
                d,
            )
        };
        let mean: Vec<f32> = (0..d)
            .map(|x| (0..keys).map(|j| v[j * d + x]).sum::<f32>() / 4.0)
            .collect();
        assert!(max_abs_diff(&out, &mean) < 1e-6, "{out:?} vs {mean:?}");
    }
}
