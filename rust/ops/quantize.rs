//! Dynamic per-token quantization of activations for the int8 GEMM.
//!
//! Each row `x` (one token) is mapped to unsigned `bits`-bit integers with its
//! own scale and zero point (asymmetric, the range always holding 0 so that 0
//! is exact): `lo = min(min x, 0)`, `hi = max(max x, 0)`,
//! `s = (hi - lo) / (2^bits - 1)`, `zp = rint(-lo / s)`,
//! `q = clamp(rint(x / s) + zp, 0, 2^bits - 1)`, so `x ~ s (q - zp)`.
//! `rint` rounds half to even (numpy's `rint`), and every step is one IEEE
//! operation, so the result is the same on every CPU and thread count (the
//! AVX2 build of the loops and the portable one give the same bits).

use rayon::prelude::*;

use super::vecmath::{dispatch, rint};

/// The most activation bits the int8 kernels take: values must fit in i16.
pub const MAX_ACTIVATION_BITS: u32 = 15;

/// Quantized rows: `values (rows, stride)` with `stride = in_features` rounded
/// up to even (the padding column is 0), and each row's scale and zero point.
#[derive(Debug, Clone, Default)]
pub struct QuantizedRows {
    pub values: Vec<u16>,
    pub stride: usize,
    pub scales: Vec<f32>,
    pub zero_points: Vec<i32>,
}

/// `[min(min row, 0), max(max row, 0)]`; NaN values are skipped.
fn row_range(row: &[f32]) -> [f32; 2] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: AVX was detected just above.
        return unsafe { row_range_avx(row) };
    }
    row_range_scalar(row, [0.0, 0.0])
}

#[inline(always)]
fn row_range_scalar(row: &[f32], [mut lo, mut hi]: [f32; 2]) -> [f32; 2] {
    for &x in row {
        lo = if x < lo { x } else { lo };
        hi = if x > hi { x } else { hi };
    }
    [lo, hi]
}

/// Eight lanes of `row_range_scalar`: `vminps(x, lo)` is `x < lo ? x : lo`, the
/// same select, and min and max are exact, so the result is the same.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn row_range_avx(row: &[f32]) -> [f32; 2] {
    use std::arch::x86_64::*;
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder();
    let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for chunk in chunks {
        // SAFETY: `chunk` holds 8 floats.
        let x = unsafe { _mm256_loadu_ps(chunk.as_ptr()) };
        lo = _mm256_min_ps(x, lo);
        hi = _mm256_max_ps(x, hi);
    }
    let (mut lows, mut highs) = ([0.0f32; 8], [0.0f32; 8]);
    // SAFETY: the arrays hold 8 floats.
    unsafe {
        _mm256_storeu_ps(lows.as_mut_ptr(), lo);
        _mm256_storeu_ps(highs.as_mut_ptr(), hi);
    }
    let [low, _] = row_range_scalar(&lows, [0.0, 0.0]);
    let [_, high] = row_range_scalar(&highs, [0.0, 0.0]);
    row_range_scalar(tail, [low, high])
}

dispatch! {
    fn quantize_values(row: &[f32], scale: f32, zero_point: f32, q_max: f32, out: &mut [u16]) {
        for (slot, &x) in out.iter_mut().zip(row) {
            let q = rint(x / scale) + zero_point;
            // clamp to [0, q_max], NaN to 0, with selects that vectorize
            let q = if q > 0.0 { q } else { 0.0 };
            let q = if q < q_max { q } else { q_max };
            // SAFETY: q is finite and in [0, q_max], q_max < 2^15: it fits in i32.
            *slot = unsafe { q.to_int_unchecked::<i32>() } as u16;
        }
    }
}

/// Scale and zero point of one row.
#[inline]
pub fn row_params(row: &[f32], bits: u32) -> (f32, i32) {
    let q_max = ((1u32 << bits) - 1) as f32;
    let [lo, hi] = row_range(row);
    let scale = (hi - lo) / q_max;
    // zero (a row of zeros), NaN or infinite: leave the row at zero
    if scale.is_nan() || scale <= 0.0 || !scale.is_finite() {
        return (1.0, 0);
    }
    let zero_point = rint(-lo / scale).clamp(0.0, q_max);
    (scale, zero_point as i32)
}

/// Quantize one row into `out` (at least `row.len()` values; the rest are set to 0).
#[inline]
pub fn quantize_row(row: &[f32], bits: u32, out: &mut [u16]) -> (f32, i32) {
    let (scale, zero_point) = row_params(row, bits);
    let q_max = ((1u32 << bits) - 1) as f32;
    quantize_values(row, scale, zero_point as f32, q_max, out);
    out[row.len()..].fill(0);
    (scale, zero_point)
}

/// Quantize `input (rows, in_features)` row by row into `rows` (buffers reused).
pub fn quantize_rows(
    input: &[f32],
    rows: usize,
    in_features: usize,
    bits: u32,
    out: &mut QuantizedRows,
) {
    let stride = in_features.next_multiple_of(2);
    out.stride = stride;
    out.values.resize(rows * stride, 0);
    out.scales.resize(rows, 0.0);
    out.zero_points.resize(rows, 0);
    let rows_per_task = super::rows_per_task(rows, in_features).max(1);
    let width = in_features.max(1);
    input[..rows * in_features]
        .par_chunks(rows_per_task * width)
        .zip(out.values.par_chunks_mut(rows_per_task * stride.max(1)))
        .zip(out.scales.par_chunks_mut(rows_per_task))
        .zip(out.zero_points.par_chunks_mut(rows_per_task))
        .for_each(|(((input, values), scales), zero_points)| {
            for (((row, q), scale), zero_point) in input
                .chunks_exact(width)
                .zip(values.chunks_exact_mut(stride.max(1)))
                .zip(scales.iter_mut())
                .zip(zero_points.iter_mut())
            {
                (*scale, *zero_point) = quantize_row(row, bits, q);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_within_half_a_step() {
        let input: Vec<f32> = (0..3 * 7)
            .map(|i| ((i * 37 % 23) as f32 - 9.0) * 0.31)
            .collect();
        for bits in [8, 12] {
            let mut rows = QuantizedRows::default();
            quantize_rows(&input, 3, 7, bits, &mut rows);
            assert_eq!(rows.stride, 8);
            for (r, row) in input.chunks_exact(7).enumerate() {
                let (scale, zp) = (rows.scales[r], rows.zero_points[r]);
                for (c, &x) in row.iter().enumerate() {
                    let q = rows.values[r * 8 + c] as i32;
                    assert!(q < 1 << bits);
                    let back = (q - zp) as f32 * scale;
                    assert!((back - x).abs() <= 0.5 * scale * 1.0001, "{x} -> {back}");
                }
                assert_eq!(rows.values[r * 8 + 7], 0, "padding column");
                // zero is exact
                assert_eq!(((0.0f32 / scale).round_ties_even() as i32 + zp - zp), 0);
            }
        }
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
            assert_eq!(row_range(&row), row_range_scalar(&row, [0.0, 0.0]), "{len}");
        }
    }

    #[test]
    fn constant_and_zero_rows() {
        let mut out = [0u16; 4];
        assert_eq!(quantize_row(&[0.0; 4], 8, &mut out), (1.0, 0));
        assert_eq!(out, [0; 4]);
        // all positive: lo is 0, the zero point is 0
        let (scale, zp) = quantize_row(&[1.0, 2.0, 4.0, 0.5], 8, &mut out);
        assert_eq!(zp, 0);
        assert_eq!(scale, 4.0 / 255.0);
        assert_eq!(out[2], 255);
        // all negative: the zero point is the top of the range
        let (_, zp) = quantize_row(&[-1.0, -2.0, -4.0, -0.5], 8, &mut out);
        assert_eq!(zp, 255);
        assert_eq!(out[2], 0);
    }
}
