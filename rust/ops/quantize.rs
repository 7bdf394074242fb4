//! Dynamic per-token quantization of activations for the int8 GEMM.
//!
//! Each row `x` (one token) is mapped to unsigned `bits`-bit integers (8 by default) with its
//! own scale and zero point (asymmetric, the range always holding 0 so that 0 is exact):
//! `lo = min(min x, 0)`, `hi = max(max x, 0)`, `s = (hi - lo) / (2^bits - 1)`,
//! `zp = rint(-lo / s)`, `q = clamp(rint(x / s) + zp, 0, 2^bits - 1)`, so `x ~ s (q - zp)`.
//! A few outlier input channels (chosen per layer when the model was quantized) stay out of
//! it: they take no part in the range, their `q` is the zero point (so they add nothing to the
//! integer product), and their float values are kept aside for the GEMM's float32 side
//! product. `rint` rounds half to even (numpy's `rint`), and every step is one IEEE
//! operation, so the result is the same on every CPU and thread count.

use rayon::prelude::*;

use super::simd::prefetch_lines_near;
use super::vecmath::{dispatch, fold_tree, higher, lower, rint};

/// The most activation bits the int8 kernels take: u8 for `vpdpbusd`.
pub const MAX_ACTIVATION_BITS: u32 = 8;

/// Quantized rows: `values (rows, stride)` as the int8 path stores them (u8 in `bytes`, or
/// u16 in `words`), `stride = in_features` rounded up to the path's group (the padding is 0),
/// each row's scale and zero point, and the float values of its outlier channels
/// `(rows, outliers)`.
#[derive(Debug, Clone, Default)]
pub struct QuantizedRows {
    pub bytes: Vec<u8>,
    pub words: Vec<u16>,
    pub stride: usize,
    pub scales: Vec<f32>,
    pub zero_points: Vec<i32>,
    pub outliers: Vec<f32>,
}

impl QuantizedRows {
    /// Room for `rows` rows of `stride` values (u16 when `words`, else u8), their scales and
    /// zero points.
    pub fn resize(&mut self, rows: usize, stride: usize, words: bool) {
        self.stride = stride;
        if words {
            self.words.resize(rows * stride, 0);
        } else {
            self.bytes.resize(rows * stride, 0);
        }
        self.scales.resize(rows, 0.0);
        self.zero_points.resize(rows, 0);
    }
}

/// A layer's outlier input channels: their indices, increasing, and a row of multipliers,
/// 0 at them and 1 elsewhere (both empty when there are none).
#[derive(Debug, Clone, Copy, Default)]
pub struct Outliers<'a> {
    pub channels: &'a [usize],
    pub keep: &'a [f32],
}

/// Lanes of [`lane_range`]: minima and maxima are exact, so any count gives the same range;
/// 16 fill an AVX-512 register.
const RANGE_LANES: usize = 16;

/// Lanes of minima and maxima of `row * keep` (of `row` when `keep` is empty), from 0, over
/// the whole chunks of [`RANGE_LANES`]; NaN values are skipped (`x < lo` is false).
#[inline(always)]
fn lanes_of(row: &[f32], keep: &[f32]) -> [[f32; RANGE_LANES]; 2] {
    let (mut lo, mut hi) = ([0.0f32; RANGE_LANES], [0.0f32; RANGE_LANES]);
    if keep.is_empty() {
        for chunk in row.chunks_exact(RANGE_LANES) {
            for ((lo, hi), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(chunk) {
                *lo = lower(*lo, x);
                *hi = higher(*hi, x);
            }
        }
    } else {
        let kept = row
            .chunks_exact(RANGE_LANES)
            .zip(keep.chunks_exact(RANGE_LANES));
        for (chunk, keep) in kept {
            for (((lo, hi), &x), &k) in lo.iter_mut().zip(hi.iter_mut()).zip(chunk).zip(keep) {
                let x = x * k;
                *lo = lower(*lo, x);
                *hi = higher(*hi, x);
            }
        }
    }
    [lo, hi]
}

dispatch! {
    /// [`lanes_of`], compiled for the path.
    fn lane_range(row: &[f32], keep: &[f32], out: &mut [[f32; RANGE_LANES]; 2]) {
        *out = lanes_of(row, keep);
    }
}

/// `[min(min x, 0), max(max x, 0)]` over the values of `row` that `keep` keeps (the
/// outlier channels, multiplied by 0, add only zeros, which the range always holds), from the
/// lanes of its whole chunks; NaN values are skipped. Minima and maxima are exact, so the
/// order (lanes, then a tree over them) is free.
#[inline(always)]
fn finish_range(mut lanes: [[f32; RANGE_LANES]; 2], row: &[f32], keep: &[f32]) -> [f32; 2] {
    let [lo, hi] = &mut lanes;
    let whole = row.len() - row.len() % RANGE_LANES;
    for (i, &x) in row[whole..].iter().enumerate() {
        let x = keep.get(whole + i).map_or(x, |&k| x * k);
        lo[i] = lower(lo[i], x);
        hi[i] = higher(hi[i], x);
    }
    [fold_tree(*lo, lower), fold_tree(*hi, higher)]
}

/// The range of `row` (see [`finish_range`]).
fn row_range(row: &[f32], keep: &[f32]) -> [f32; 2] {
    let mut lanes = [[0.0f32; RANGE_LANES]; 2];
    lane_range(row, keep, &mut lanes);
    finish_range(lanes, row, keep)
}

/// The quantized value of `x`: `clamp(rint(x / scale) + zero_point, 0, q_max)`, NaN to 0,
/// with selects that vectorize.
#[inline(always)]
fn quantize_value(x: f32, scale: f32, zero_point: f32, q_max: f32) -> u8 {
    let q = rint(x / scale) + zero_point;
    let q = if q > 0.0 { q } else { 0.0 };
    let q = if q < q_max { q } else { q_max };
    // SAFETY: q is finite and in [0, q_max], q_max <= 255: it fits in i32.
    unsafe { q.to_int_unchecked::<i32>() as u8 }
}

/// `row` quantized into `out` (`out[row.len()..]` set to 0).
#[inline(always)]
fn store_values<T: From<u8>>(
    row: &[f32],
    (scale, zero_point, q_max): (f32, f32, f32),
    out: &mut [T],
) {
    let (head, rest) = out.split_at_mut(row.len().min(out.len()));
    for (slot, &x) in head.iter_mut().zip(row) {
        *slot = T::from(quantize_value(x, scale, zero_point, q_max));
    }
    for slot in rest {
        *slot = T::from(0);
    }
}

dispatch! {
    fn quantize_bytes(row: &[f32], scale: f32, zero_point: f32, q_max: f32, out: &mut [u8]) {
        store_values(row, (scale, zero_point, q_max), out);
    }
}

dispatch! {
    fn quantize_words(row: &[f32], scale: f32, zero_point: f32, q_max: f32, out: &mut [u16]) {
        store_values(row, (scale, zero_point, q_max), out);
    }
}

/// Scale and zero point of one row, its outlier channels left out.
#[inline]
pub fn row_params(row: &[f32], bits: u32, outliers: Outliers<'_>) -> (f32, i32) {
    let q_max = ((1u32 << bits) - 1) as f32;
    let [lo, hi] = row_range(row, outliers.keep);
    params(lo, hi, q_max)
}

/// Scale and zero point of a row whose range (holding 0) is `[lo, hi]`.
#[inline(always)]
fn params(lo: f32, hi: f32, q_max: f32) -> (f32, i32) {
    let scale = (hi - lo) / q_max;
    // zero (a row of zeros), NaN or infinite: leave the row at zero
    if scale.is_nan() || scale <= 0.0 || !scale.is_finite() {
        return (1.0, 0);
    }
    let zero_point = rint(-lo / scale).clamp(0.0, q_max);
    (scale, zero_point as i32)
}

dispatch! {
    /// Quantize `rows` short rows of `width` values (row `i` at `input[i * in_stride..]`),
    /// each as [`quantize_row`] does without outliers (the same bits), into `out`, whose
    /// `stride` the caller set and whose values, scales and zero points are sized: u16
    /// values when `words`. One call for all the query rows of an attention head.
    fn quantize_short_rows(input: &[f32], in_stride: usize, rows: usize, width: usize, bits: u32, out: &mut QuantizedRows, words: bool) {
        let q_max = ((1u32 << bits) - 1) as f32;
        let stride = out.stride;
        for i in 0..rows {
            let row = &input[i * in_stride..][..width];
            // Rows far apart: their lines asked for a few rows ahead.
            if let Some(ahead) = input.get((i + 4) * in_stride..) {
                prefetch_lines_near(&ahead[..width.min(ahead.len())]);
            }
            let [lo, hi] = finish_range(lanes_of(row, &[]), row, &[]);
            let (scale, zero_point) = params(lo, hi, q_max);
            let zp = zero_point as f32;
            if words {
                let slot = &mut out.words[i * stride..(i + 1) * stride];
                store_values(row, (scale, zp, q_max), slot);
            } else {
                let slot = &mut out.bytes[i * stride..(i + 1) * stride];
                store_values(row, (scale, zp, q_max), slot);
            }
            (out.scales[i], out.zero_points[i]) = (scale, zero_point);
        }
    }
}

/// Where quantized values go: u8 or u16 (see `qmatmul::storage`).
pub enum Values<'a> {
    Bytes(&'a mut [u8]),
    Words(&'a mut [u16]),
}

/// Quantize one row into `out` (at least `row.len()` values; the rest are set to 0); the
/// `outliers` get the zero point, and their values go to `kept`.
#[inline]
pub fn quantize_row(
    row: &[f32],
    bits: u32,
    outliers: Outliers<'_>,
    out: Values<'_>,
    kept: &mut [f32],
) -> (f32, i32) {
    let (scale, zero_point) = row_params(row, bits, outliers);
    for (slot, &channel) in kept.iter_mut().zip(outliers.channels) {
        *slot = row[channel];
    }
    let q_max = ((1u32 << bits) - 1) as f32;
    let zp = zero_point as f32;
    match out {
        Values::Bytes(out) => {
            quantize_bytes(row, scale, zp, q_max, out);
            for &channel in outliers.channels {
                out[channel] = zero_point as u8;
            }
        }
        Values::Words(out) => {
            quantize_words(row, scale, zp, q_max, out);
            for &channel in outliers.channels {
                out[channel] = zero_point as u16;
            }
        }
    }
    (scale, zero_point)
}

/// Quantize `input (rows, in_features)` row by row into `out` (buffers reused): values as u16
/// when `words`, else u8, in rows of `stride` (at least `in_features`).
pub fn quantize_rows(
    input: &[f32],
    (rows, in_features): (usize, usize),
    bits: u32,
    outliers: Outliers<'_>,
    (stride, words): (usize, bool),
    out: &mut QuantizedRows,
) {
    out.resize(rows, stride, words);
    // At least a value a row, so that the chunks below zip with every chunk of rows.
    out.outliers
        .resize(rows * outliers.channels.len().max(1), 0.0);
    let rows_per_task = super::rows_per_task(rows, in_features).max(1);
    let (width, stride, count) = (in_features.max(1), stride.max(1), outliers.channels.len());
    let QuantizedRows {
        bytes,
        words: wide,
        scales,
        zero_points,
        outliers: kept,
        ..
    } = out;
    let input = &input[..rows * in_features];
    let kept = kept.par_chunks_mut(rows_per_task * count.max(1));
    let params = scales
        .par_chunks_mut(rows_per_task)
        .zip(zero_points.par_chunks_mut(rows_per_task));
    let run = |input: &[f32],
               mut values: Values<'_>,
               scales: &mut [f32],
               zps: &mut [i32],
               kept: &mut [f32]| {
        for (r, (row, (scale, zero_point))) in input
            .chunks_exact(width)
            .zip(scales.iter_mut().zip(zps.iter_mut()))
            .enumerate()
        {
            let len = kept.len();
            let kept = &mut kept[(r * count).min(len)..((r + 1) * count).min(len)];
            let slot = match &mut values {
                Values::Bytes(values) => Values::Bytes(&mut values[r * stride..(r + 1) * stride]),
                Values::Words(values) => Values::Words(&mut values[r * stride..(r + 1) * stride]),
            };
            (*scale, *zero_point) = quantize_row(row, bits, outliers, slot, kept);
        }
    };
    if words {
        input
            .par_chunks(rows_per_task * width)
            .zip(wide.par_chunks_mut(rows_per_task * stride))
            .zip(params)
            .zip(kept)
            .for_each(|(((input, values), (scales, zps)), kept)| {
                run(input, Values::Words(values), scales, zps, kept)
            });
    } else {
        input
            .par_chunks(rows_per_task * width)
            .zip(bytes.par_chunks_mut(rows_per_task * stride))
            .zip(params)
            .zip(kept)
            .for_each(|(((input, values), (scales, zps)), kept)| {
                run(input, Values::Bytes(values), scales, zps, kept)
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_within_half_a_step() {
        let input: Vec<f32> = (0..3 * 7)
            .map(|i| ((i * 37 % 23) as f32 - 9.0) * 0.31)
            .collect();
        for words in [false, true] {
            let mut rows = QuantizedRows::default();
            quantize_rows(
                &input,
                (3, 7),
                8,
                Outliers::default(),
                (8, words),
                &mut rows,
            );
            assert_eq!(rows.stride, 8);
            let value = |i: usize| {
                if words {
                    i32::from(rows.words[i])
                } else {
                    i32::from(rows.bytes[i])
                }
            };
            for (r, row) in input.chunks_exact(7).enumerate() {
                let (scale, zp) = (rows.scales[r], rows.zero_points[r]);
                for (c, &x) in row.iter().enumerate() {
                    let q = value(r * 8 + c);
                    assert!(q < 256);
                    let back = (q - zp) as f32 * scale;
                    assert!((back - x).abs() <= 0.5 * scale * 1.0001, "{x} -> {back}");
                }
                assert_eq!(value(r * 8 + 7), 0, "padding column");
            }
        }
    }

    #[test]
    fn outliers_stay_out_of_the_range() {
        // Channel 1 is 1000x the others: without it, the scale follows the others.
        let row = [0.5f32, -700.0, 0.25, -0.5, 300.0, 0.1];
        let mut bytes = [0u8; 8];
        let mut kept = [0.0f32; 2];
        let keep = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0];
        let outliers = Outliers {
            channels: &[1, 4],
            keep: &keep,
        };
        let (scale, zp) = quantize_row(&row, 8, outliers, Values::Bytes(&mut bytes), &mut kept);
        assert_eq!(kept, [-700.0, 300.0]);
        assert_eq!(scale, 1.0 / 255.0);
        assert_eq!(
            (bytes[1], bytes[4]),
            (zp as u8, zp as u8),
            "outliers get the zero point"
        );
        for c in [0, 2, 3, 5] {
            let back = (i32::from(bytes[c]) - zp) as f32 * scale;
            assert!((back - row[c]).abs() <= 0.5 * scale * 1.0001);
        }
        // Outliers at both ends and next to each other, past whole chunks of 8.
        let mut long: Vec<f32> = (0..21).map(|i| (i as f32 * 0.7).sin()).collect();
        let plain = row_params(&long, 8, Outliers::default());
        let mut keep = vec![1.0f32; 21];
        for c in [0, 1, 9, 20] {
            long[c] = if c % 2 == 0 { 900.0 } else { f32::NEG_INFINITY };
            keep[c] = 0.0;
        }
        let (channels, values) = ([0, 1, 9, 20], &keep);
        let outliers = Outliers {
            channels: &channels,
            keep: values,
        };
        let mut rest: Vec<f32> = long.clone();
        for c in channels {
            rest[c] = 0.0;
        }
        assert_eq!(
            row_params(&long, 8, outliers),
            row_params(&rest, 8, Outliers::default())
        );
        assert_ne!(row_params(&long, 8, outliers), plain);
    }

    #[test]
    fn the_vector_range_is_the_scalar_range() {
        for len in [0, 1, 7, 8, 9, 100] {
            let mut row: Vec<f32> = (0..len)
                .map(|i| ((i * 41 % 29) as f32 - 13.0) * 0.37)
                .collect();
            if len > 3 {
                row[2] = f32::NAN;
            }
            let scalar = row.iter().fold([0.0f32, 0.0], |[lo, hi], &x| {
                [if x < lo { x } else { lo }, if x > hi { x } else { hi }]
            });
            assert_eq!(row_range(&row, &[]), scalar, "{len}");
        }
    }

    #[test]
    fn constant_and_zero_rows() {
        let mut out = [0u16; 4];
        let quantize = |row: &[f32], out: &mut [u16]| {
            quantize_row(row, 8, Outliers::default(), Values::Words(out), &mut [])
        };
        assert_eq!(quantize(&[0.0; 4], &mut out), (1.0, 0));
        assert_eq!(out, [0; 4]);
        // all positive: lo is 0, the zero point is 0
        let (scale, zp) = quantize(&[1.0, 2.0, 4.0, 0.5], &mut out);
        assert_eq!(zp, 0);
        assert_eq!(scale, 4.0 / 255.0);
        assert_eq!(out[2], 255);
        // all negative: the zero point is the top of the range
        let (_, zp) = quantize(&[-1.0, -2.0, -4.0, -0.5], &mut out);
        assert_eq!(zp, 255);
        assert_eq!(out[2], 0);
    }
}
