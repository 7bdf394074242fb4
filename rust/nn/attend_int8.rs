//! The attention of one (sequence, head) of an int8 model, its two products in 8-bit
//! integers on the int8 GEMM's tiles (`ops::qmatmul`):
//! `context (T, d) = softmax(Q K^T / sqrt(d) + mask) V`.
//!
//! The scheme is the quantized model's, the same integers and float operations on every path
//! (as the int8 layers'):
//! - each query row as the int8 layers' activations (`ops::quantize`: u8, its own scale and
//!   zero point); each key symmetric int8, scale `max |k| / 127`;
//! - the scores dequantized by the int8 epilogue, then scaled and masked as the float softmax
//!   does; the weights `e = exp(x - max)` (in [0, 1], [`exp_coarse`]: they are rounded to 8
//!   bits next) stored as u8 `rint(255 e)`, zero point 0, the row's scale `1 / sum` of its
//!   integers (its weights sum to 1 exactly before rounding);
//! - each of V's `d` columns symmetric int8 over the keys.
//!
//! On MiniLM it costs little against the float attention (both with int8 layers, min cosine
//! to fp32): golden texts, sentence 0.9988 to 0.9985, token 0.9979 to 0.9977; 1,000
//! multilingual sentences, sentence 0.9986 to 0.9982, token 0.9977 to 0.9958
//! (`benches/RESULTS.md`).

use crate::ops::cpu::Int8Path;
use crate::ops::grid::PANEL;
use crate::ops::qmatmul::{qmatmul_strided, storage, Activations, Epilogue, PackedInt8};
use crate::ops::quantize::{quantize_short_rows, QuantizedRows};
use crate::ops::simd::prefetch_lines_near;
use crate::ops::vecmath::{dispatch, exp_coarse, fold_tree, higher, rint};

/// Bits of the queries and the weights.
const BITS: u32 = 8;
/// The largest magnitude of a symmetric int8 key or value.
const SYMMETRIC_MAX: f32 = 127.0;
/// The weights' largest integer: `e = 1` (the row's maximum).
const WEIGHT_MAX: f32 = 255.0;

/// A task's buffers, reused from one head to the next.
#[derive(Debug, Default)]
pub struct Int8Scratch {
    queries: QuantizedRows,
    keys: PackedInt8,
    key_scales: Vec<f32>,
    values: PackedInt8,
    value_scales: Vec<f32>,
    /// A head's keys or values as int8, `(keys, d)`, before packing.
    quantized: Vec<i8>,
    factors: Vec<f32>,
    scores: Vec<f32>,
    weights: QuantizedRows,
    zeros: Vec<f32>,
}

/// One head's operands: `queries` rows of `q` (row `i` at `q[i * q_stride..][..d]`), and
/// `keys` rows of keys and values (row `j` at `k[j * kv_stride..][..d]`, `v` likewise).
#[derive(Debug, Clone, Copy)]
pub struct HeadRows<'a> {
    pub q: &'a [f32],
    pub q_stride: usize,
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub kv_stride: usize,
    pub queries: usize,
    pub keys: usize,
    pub head_size: usize,
}

/// The attention of `head`'s queries over all its keys (`bias`, at least `keys` values, added
/// to the scaled scores: 0, or `f32::MIN` to mask), written to `out[i * out_stride..][..d]`,
/// with the int8 tiles of `path`.
///
/// # Safety
/// `out` is valid for writes at `i * out_stride + x` for `i < queries`, `x < d`, and no other
/// thread reads or writes those elements during the call.
pub unsafe fn attend_int8(
    path: Int8Path,
    head: HeadRows<'_>,
    bias: Option<&[f32]>,
    scratch: &mut Int8Scratch,
    (out, out_stride): (*mut f32, usize),
) {
    let HeadRows {
        queries,
        keys,
        head_size: d,
        ..
    } = head;
    assert!(keys > 0 && bias.is_none_or(|bias| bias.len() >= keys));
    if queries == 0 || d == 0 {
        return;
    }
    let (group, words) = storage(path);
    quantize_queries(head, (group, words), &mut scratch.queries);
    pack_keys(head, group, scratch);
    // The scores of whole panels of keys (the keys past `keys` are 0): whole tiles, stored
    // from registers.
    let width = keys.next_multiple_of(PANEL);
    // Only ever zeros: grown, never rewritten.
    scratch
        .zeros
        .resize(scratch.zeros.len().max(width.max(d)), 0.0);
    scratch.scores.resize(queries * width, 0.0);
    // SAFETY: `scores` is this task's own (queries, width) buffer.
    unsafe {
        product(
            path,
            (&scratch.queries, words),
            (&scratch.keys, &scratch.key_scales),
            &scratch.zeros,
            (scratch.scores.as_mut_ptr(), width),
        );
    }
    let scale = 1.0 / (d as f32).sqrt();
    scratch
        .weights
        .resize(queries, keys.next_multiple_of(group), words);
    let bias = bias.map(|bias| &bias[..keys]);
    quantize_weights(
        &scratch.scores,
        width,
        keys,
        scale,
        bias,
        &mut scratch.weights,
        words,
    );
    pack_values(head, group, scratch);
    // SAFETY: the caller's contract.
    unsafe {
        product(
            path,
            (&scratch.weights, words),
            (&scratch.values, &scratch.value_scales),
            &scratch.zeros,
            (out, out_stride),
        );
    }
}

/// `out (m, n) = dequantize(rows (m, k) @ weights (n, k)^T)` on this thread: the int8
/// epilogue with `rows`' scales and zero points and the weights' scales, no bias (`zeros`, at
/// least `n`) and no outlier channels.
///
/// # Safety
/// As [`qmatmul_strided`]'s.
unsafe fn product(
    path: Int8Path,
    (rows, words): (&QuantizedRows, bool),
    (weights, weight_scale): (&PackedInt8, &[f32]),
    zeros: &[f32],
    out: (*mut f32, usize),
) {
    let epilogue = Epilogue {
        scales: &rows.scales,
        zero_points: &rows.zero_points,
        column_sums: weights.sums(),
        weight_scale,
        bias: zeros,
        outliers: &[],
        outlier_weight: &[],
        activation: None,
    };
    let activations = if words {
        Activations::Words(&rows.words)
    } else {
        Activations::Bytes(&rows.bytes)
    };
    let m = rows.scales.len();
    // SAFETY: the caller's contract.
    unsafe { qmatmul_strided(path, activations, m, weights, epilogue, out) };
}

/// Each query row quantized as the int8 layers' activations.
fn quantize_queries(head: HeadRows<'_>, (group, words): (usize, bool), out: &mut QuantizedRows) {
    let d = head.head_size;
    out.resize(head.queries, d.next_multiple_of(group), words);
    quantize_short_rows(head.q, head.q_stride, head.queries, d, BITS, out, words);
}

/// Lanes of the largest magnitudes: minima and maxima are exact in any order.
const LANES: usize = 16;

/// The largest magnitude of `values` (NaN skipped).
#[inline(always)]
fn max_abs(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (chunks, tail) = values.as_chunks::<LANES>();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = higher(*lane, x.abs());
        }
    }
    for (lane, &x) in lanes.iter_mut().zip(tail) {
        *lane = higher(*lane, x.abs());
    }
    fold_tree(lanes, higher)
}

/// The scale of symmetric int8 values whose largest magnitude is `max`, and the factor that
/// quantizes them; (1, 0) for none (all zero, or NaN) or an infinite one.
#[inline(always)]
fn symmetric_scale(max: f32) -> (f32, f32) {
    if max > 0.0 && max.is_finite() {
        (max / SYMMETRIC_MAX, SYMMETRIC_MAX / max)
    } else {
        (1.0, 0.0)
    }
}

/// `rint(x * factor)` within ±127 (NaN to -127).
#[inline(always)]
fn symmetric(x: f32, factor: f32) -> i8 {
    let q = rint(x * factor);
    let q = if q > -SYMMETRIC_MAX {
        q
    } else {
        -SYMMETRIC_MAX
    };
    let q = if q < SYMMETRIC_MAX { q } else { SYMMETRIC_MAX };
    // SAFETY: q is finite and within ±127.
    unsafe { q.to_int_unchecked::<i32>() as i8 }
}

dispatch! {
    /// Each of the `keys` rows of `d` values (row `j` at `k[j * stride..]`) symmetric int8
    /// with its own scale: `out (keys, d)`, `scales (keys)`.
    fn quantize_keys(k: &[f32], stride: usize, d: usize, out: &mut [i8], scales: &mut [f32]) {
        for (j, (quantized, scale)) in out.chunks_exact_mut(d).zip(scales.iter_mut()).enumerate() {
            let key = &k[j * stride..][..d];
            prefetch_ahead(k, (j + AHEAD) * stride, d);
            let factor;
            (*scale, factor) = symmetric_scale(max_abs(key));
            for (q, &x) in quantized.iter_mut().zip(key) {
                *q = symmetric(x, factor);
            }
        }
    }
}

dispatch! {
    /// Each of the `d` columns of the `keys` rows (row `j` at `v[j * stride..]`) symmetric
    /// int8 over the rows with its own scale: `out (keys, d)`, `scales (d)`; `factors (d)` is
    /// room for the factors.
    fn quantize_values(v: &[f32], stride: usize, d: usize, out: &mut [i8], scales: &mut [f32], factors: &mut [f32]) {
        let keys = out.len() / d;
        scales.fill(0.0);
        for j in 0..keys {
            prefetch_ahead(v, (j + AHEAD) * stride, d);
            for (max, &x) in scales.iter_mut().zip(&v[j * stride..][..d]) {
                *max = higher(*max, x.abs());
            }
        }
        for (scale, factor) in scales.iter_mut().zip(factors.iter_mut()) {
            (*scale, *factor) = symmetric_scale(*scale);
        }
        for (j, quantized) in out.chunks_exact_mut(d).enumerate() {
            let row = &v[j * stride..][..d];
            for ((q, &x), &factor) in quantized.iter_mut().zip(row).zip(factors.iter()) {
                *q = symmetric(x, factor);
            }
        }
    }
}

dispatch! {
    /// The weights of the first `keys` scores of each row of `scores (rows, width)`: each row
    /// scaled, masked (`bias`) and its exponentials `e = exp(x - max)` (in [0, 1],
    /// [`exp_coarse`]) stored as `rint(255 e)`, u8 or u16 (`words`) in rows of `out.stride`
    /// (the padding 0), the row's scale `1 / sum` of its integers (so that its weights sum to
    /// 1) and zero point 0.
    fn quantize_weights(scores: &[f32], width: usize, keys: usize, scale: f32, bias: Option<&[f32]>, out: &mut QuantizedRows, words: bool) {
        let stride = out.stride;
        for (i, row) in scores.chunks_exact(width).enumerate() {
            let row = &row[..keys];
            let max = row_maximum(row, scale, bias);
            let total = if words {
                store_weights(row, (scale, bias, max), &mut out.words[i * stride..(i + 1) * stride])
            } else {
                store_weights(row, (scale, bias, max), &mut out.bytes[i * stride..(i + 1) * stride])
            };
            out.scales[i] = if total > 0 { 1.0 / total as f32 } else { 0.0 };
            out.zero_points[i] = 0;
        }
    }
}

/// The weight integer of a scaled, masked score: `rint(255 exp(value - max))` (NaN to 0).
#[inline(always)]
fn weight(value: f32, max: f32) -> u32 {
    let q = rint(exp_coarse(value - max) * WEIGHT_MAX);
    let q = if q > 0.0 { q } else { 0.0 };
    let q = if q < WEIGHT_MAX { q } else { WEIGHT_MAX };
    // SAFETY: q is in [0, 255].
    unsafe { q.to_int_unchecked::<u32>() }
}

/// `chunk * scale + mask` (HF's order), or `chunk * scale` without a mask.
#[inline(always)]
fn scaled(chunk: &[f32; LANES], scale: f32, mask: Option<&[f32; LANES]>) -> [f32; LANES] {
    let mut values = [0.0f32; LANES];
    match mask {
        Some(mask) => {
            for ((value, &x), &mask) in values.iter_mut().zip(chunk).zip(mask) {
                *value = x * scale + mask;
            }
        }
        None => {
            for (value, &x) in values.iter_mut().zip(chunk) {
                *value = x * scale;
            }
        }
    }
    values
}

/// The last, partial chunk of `row` (from `start`) and of its mask, padded: the scores with
/// -inf (their weight is 0), the mask with 0.
#[inline(always)]
fn padded_tail(
    tail: &[f32],
    bias: Option<&[f32]>,
    start: usize,
) -> ([f32; LANES], Option<[f32; LANES]>) {
    let mut last = [f32::NEG_INFINITY; LANES];
    last[..tail.len()].copy_from_slice(tail);
    let mut mask = [0.0f32; LANES];
    let Some(bias) = bias else {
        return (last, None);
    };
    mask[..tail.len()].copy_from_slice(&bias[start..start + tail.len()]);
    (last, Some(mask))
}

/// The largest scaled, masked score of `row` (NaN skipped).
#[inline(always)]
fn row_maximum(row: &[f32], scale: f32, bias: Option<&[f32]>) -> f32 {
    let mut maxima = [f32::NEG_INFINITY; LANES];
    let (chunks, tail) = row.as_chunks::<LANES>();
    let masks = match bias {
        Some(bias) => bias.as_chunks::<LANES>().0,
        None => &[],
    };
    for (index, chunk) in chunks.iter().enumerate() {
        let values = scaled(chunk, scale, masks.get(index));
        for (max, value) in maxima.iter_mut().zip(values) {
            *max = higher(*max, value);
        }
    }
    if !tail.is_empty() {
        let (last, mask) = padded_tail(tail, bias, chunks.len() * LANES);
        for (max, value) in maxima.iter_mut().zip(scaled(&last, scale, mask.as_ref())) {
            *max = higher(*max, value);
        }
    }
    fold_tree(maxima, higher)
}

/// The weight integers of a chunk of scores, into the running sums.
#[inline(always)]
fn chunk_weights(values: [f32; LANES], max: f32, sums: &mut [u32; LANES]) -> [u32; LANES] {
    let mut weights = [0u32; LANES];
    for ((q, value), sum) in weights.iter_mut().zip(values).zip(sums.iter_mut()) {
        *q = weight(value, max);
        *sum += *q;
    }
    weights
}

/// `row`'s weight integers into `out` (the rest 0); their sum.
#[inline(always)]
fn store_weights<T: From<u8> + Copy>(
    row: &[f32],
    (scale, bias, max): (f32, Option<&[f32]>, f32),
    out: &mut [T],
) -> u32 {
    let mut sums = [0u32; LANES];
    let (chunks, tail) = row.as_chunks::<LANES>();
    let masks = match bias {
        Some(bias) => bias.as_chunks::<LANES>().0,
        None => &[],
    };
    let (slots, _) = out.as_chunks_mut::<LANES>();
    for (index, (chunk, slots)) in chunks.iter().zip(slots.iter_mut()).enumerate() {
        let values = scaled(chunk, scale, masks.get(index));
        for (slot, q) in slots.iter_mut().zip(chunk_weights(values, max, &mut sums)) {
            *slot = T::from(q as u8);
        }
    }
    let start = chunks.len() * LANES;
    if !tail.is_empty() {
        let (last, mask) = padded_tail(tail, bias, start);
        let weights = chunk_weights(scaled(&last, scale, mask.as_ref()), max, &mut sums);
        for (slot, &q) in out[start..].iter_mut().zip(&weights[..tail.len()]) {
            *slot = T::from(q as u8);
        }
    }
    out[row.len()..].fill(T::from(0));
    sums.iter().sum()
}

/// Rows ahead whose lines the loops over a head's rows ask for: its rows lie far apart (a
/// token's fused Q, K and V), out of the hardware prefetchers' sight.
const AHEAD: usize = 4;

/// Ask for the lines of `values[start..][..len]` (if inside) to be brought into L1.
#[inline(always)]
fn prefetch_ahead(values: &[f32], start: usize, len: usize) {
    if let Some(row) = values.get(start..) {
        prefetch_lines_near(&row[..len.min(row.len())]);
    }
}

/// Each key symmetric int8 with its own scale, packed as int8 weights `(keys, d)` padded
/// with zero keys to whole panels.
fn pack_keys(head: HeadRows<'_>, group: usize, scratch: &mut Int8Scratch) {
    let (keys, d) = (head.keys, head.head_size);
    let width = keys.next_multiple_of(PANEL);
    scratch.quantized.resize(keys * d, 0);
    scratch.key_scales.clear();
    scratch.key_scales.resize(width, 0.0);
    quantize_keys(
        head.k,
        head.kv_stride,
        d,
        &mut scratch.quantized,
        &mut scratch.key_scales[..keys],
    );
    scratch
        .keys
        .fill_rows(&scratch.quantized, (width, d, group));
}

/// Each of V's `d` columns symmetric int8 over the keys, packed as int8 weights `(d, keys)`.
fn pack_values(head: HeadRows<'_>, group: usize, scratch: &mut Int8Scratch) {
    let (keys, d) = (head.keys, head.head_size);
    scratch.quantized.resize(keys * d, 0);
    scratch.value_scales.resize(d, 0.0);
    scratch.factors.resize(d, 0.0);
    quantize_values(
        head.v,
        head.kv_stride,
        d,
        &mut scratch.quantized,
        &mut scratch.value_scales,
        &mut scratch.factors,
    );
    scratch
        .values
        .fill_columns(&scratch.quantized, (d, keys, group));
}

#[cfg(test)]
mod tests;
