//! LayerNorm over the last dimension: `(x - mean) / sqrt(var + eps) * gamma + beta`,
//! with the biased variance, as `torch.nn.LayerNorm`. Statistics accumulate in f64.

use rayon::prelude::*;

use super::vecmath::{dispatch, fold_lanes};

/// Sum of `f(v)` over `row` in f64, lane by lane, then the lanes in order.
#[inline(always)]
fn lane_sum(row: &mut [f32], f: impl Fn(f64) -> f64) -> f64 {
    fold_lanes(row, 0.0f64, |sum, value| sum + f(f64::from(*value)))
        .iter()
        .sum()
}

dispatch! {
    fn normalize_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f64) {
        let n = row.len() as f64;
        let mean = lane_sum(row, |v| v) / n;
        let var = lane_sum(row, |v| (v - mean) * (v - mean)) / n;
        let inv_std = 1.0 / (var + eps).sqrt();
        let (mean, inv_std) = (mean as f32, inv_std as f32);
        for ((value, &g), &b) in row.iter_mut().zip(gamma).zip(beta) {
            *value = (*value - mean) * inv_std * g + b;
        }
    }
}

/// `x (rows, cols) = LayerNorm(x)`, parallel over rows on the current pool.
pub fn layer_norm(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f64) {
    let cols = gamma.len();
    if cols == 0 {
        return;
    }
    let rows_per_task = super::rows_per_task(x.len() / cols, cols);
    x.par_chunks_mut(rows_per_task * cols).for_each(|chunk| {
        for row in chunk.chunks_exact_mut(cols) {
            normalize_row(row, gamma, beta, eps);
        }
    });
}

/// `x = LayerNorm(x + residual)`: the residual connection fused into the norm.
pub fn add_layer_norm(x: &mut [f32], residual: &[f32], gamma: &[f32], beta: &[f32], eps: f64) {
    let cols = gamma.len();
    if cols == 0 {
        return;
    }
    let rows_per_task = super::rows_per_task(x.len() / cols, cols);
    let chunk = rows_per_task * cols;
    x.par_chunks_mut(chunk)
        .zip(residual.par_chunks(chunk))
        .for_each(|(x_chunk, residual_chunk)| {
            for (row, residual_row) in x_chunk
                .chunks_exact_mut(cols)
                .zip(residual_chunk.chunks_exact(cols))
            {
                for (value, &r) in row.iter_mut().zip(residual_row) {
                    *value += r;
                }
                normalize_row(row, gamma, beta, eps);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(x: &[f32], gamma: &[f32], beta: &[f32], eps: f64) -> Vec<f32> {
        x.chunks(gamma.len())
            .flat_map(|row| {
                let n = row.len() as f64;
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
                let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
                row.iter()
                    .zip(gamma.iter().zip(beta))
                    .map(move |(&v, (&g, &b))| {
                        ((v as f64 - mean) / (var + eps).sqrt() * g as f64 + b as f64) as f32
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn matches_naive() {
        let cols = 7;
        let x: Vec<f32> = (0..cols * 5)
            .map(|i| ((i * 37) % 11) as f32 - 4.5)
            .collect();
        let residual: Vec<f32> = (0..cols * 5).map(|i| (i % 3) as f32 * 0.25).collect();
        let gamma: Vec<f32> = (0..cols).map(|i| 0.5 + i as f32 * 0.1).collect();
        let beta: Vec<f32> = (0..cols).map(|i| i as f32 * -0.2).collect();
        let summed: Vec<f32> = x.iter().zip(&residual).map(|(a, b)| a + b).collect();
        let expected = naive(&summed, &gamma, &beta, 1e-12);
        let mut fused = x.clone();
        add_layer_norm(&mut fused, &residual, &gamma, &beta, 1e-12);
        let mut plain = summed.clone();
        layer_norm(&mut plain, &gamma, &beta, 1e-12);
        let diff = |got: &[f32]| {
            got.iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max)
        };
        println!(
            "layer_norm max abs diff {:e}, fused {:e}",
            diff(&plain),
            diff(&fused)
        );
        assert!(diff(&plain) < 1e-5 && diff(&fused) < 1e-5);
    }
}
