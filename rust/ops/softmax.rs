//! Row-wise softmax, `exp(x - max) / sum`, as `torch.softmax` computes it.

use super::vecmath::{self, dispatch, fold_lanes};

dispatch! {
    fn softmax_row(row: &mut [f32]) {
        // Maxima with `>` (not `f32::max`, whose NaN rule keeps it scalar).
        let larger = |max: f32, value: f32| if value > max { value } else { max };
        let max = fold_lanes(row, f32::NEG_INFINITY, |max, value| larger(max, *value))
            .into_iter()
            .fold(f32::NEG_INFINITY, larger);
        let partial = fold_lanes(row, 0.0f32, |sum, value| {
            *value = vecmath::exp(*value - max);
            sum + *value
        });
        let sum = partial.iter().sum::<f32>();
        let inv = 1.0 / sum;
        for value in row.iter_mut() {
            *value *= inv;
        }
    }
}

/// Softmax of each row of `x (rows, cols)` in place.
pub fn softmax_rows(x: &mut [f32], cols: usize) {
    if cols == 0 {
        return;
    }
    for row in x.chunks_exact_mut(cols) {
        softmax_row(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_and_survives_huge_negative_bias() {
        let cols = 5;
        let mut x = vec![1.0, 2.0, 3.0, 4.0, 5.0, -1.0, f32::MIN, 0.5, f32::MIN, 2.0];
        let expected: Vec<f64> = x
            .chunks(cols)
            .flat_map(|row| {
                let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                let exps: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                exps.into_iter().map(move |e| e / sum)
            })
            .collect();
        softmax_rows(&mut x, cols);
        let diff = x
            .iter()
            .zip(&expected)
            .map(|(&a, &b)| (a as f64 - b).abs())
            .fold(0.0, f64::max);
        println!("softmax max abs diff {diff:e}");
        assert!(diff < 1e-6);
        assert_eq!(x[6], 0.0);
        // A row that is entirely masked (every score at f32::MIN) is uniform, as in HF.
        let mut masked = vec![f32::MIN; 4];
        softmax_rows(&mut masked, 4);
        assert_eq!(masked, vec![0.25; 4]);
    }
}
