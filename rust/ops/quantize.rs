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

dispatch! {
    fn row_range(row: &[f32], range: &mut [f32; 2]) {
        let (mut lo, mut hi) = (0.0f32, 0.0f32);
        for &x in row {
            lo = if x < lo { x } else { lo };
            hi = if x > hi { x } else { hi };
        }
        *range = [lo, hi];
    }
}

dispatch! {
    fn quantize_values(row: &[f32], scale: f32, zero_point: f32, q_max: f32, out: &mut [u16]) {
        for (slot, &x) in out.iter_mut().zip(row) {
            let q = rint(x / scale) + zero_point;
            *slot = q.clamp(0.0, q_max) as u16;
        }
    }
}

/// Scale and zero point of one row.
#[inline]
pub fn row_params(row: &[f32], bits: u32) -> (f32, i32) {
    let q_max = ((1u32 << bits) - 1) as f32;
    let mut range = [0.0f32; 2];
    row_range(row, &mut range);
    let [lo, hi] = range;
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
