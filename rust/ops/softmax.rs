//! Row-wise softmax, `exp(x - max) / sum`, as `torch.softmax` computes it,
//! fused with attention's scaling and mask.

use super::vecmath::{self, dispatch, fold_lanes, LANES};

dispatch! {
    /// `row = softmax(row * scale + bias)` (HF's order: scale, then add the
    /// mask), in place: attention's scores become its weights in one call.
    /// Each pass is a plain loop the compiler vectorizes at the path's width;
    /// the sum keeps the fixed order of [`fold_lanes`] (8 partial sums), so
    /// every path gives the same bits.
    fn scaled_softmax_row(row: &mut [f32], scale: f32, bias: Option<&[f32]>) {
        match bias {
            Some(bias) => row.iter_mut().zip(bias).for_each(|(value, &mask)| *value = *value * scale + mask),
            None => row.iter_mut().for_each(|value| *value *= scale),
        }
        // Maxima with `>` (not `f32::max`, whose NaN rule keeps it scalar).
        let larger = |max: f32, value: f32| if value > max { value } else { max };
        let max = fold_lanes(row, f32::NEG_INFINITY, |max, value| larger(max, *value))
            .into_iter()
            .fold(f32::NEG_INFINITY, larger);
        for value in row.iter_mut() {
            *value = vecmath::exp(*value - max);
        }
        let sum = lane_sum(row).iter().sum::<f32>();
        let inv = 1.0 / sum;
        for value in row.iter_mut() {
            *value *= inv;
        }
    }
}

/// The 8 partial sums of [`fold_lanes`]: value `i` into lane `i % 8`, each
/// lane in order (one 8-wide vector accumulator).
#[inline(always)]
fn lane_sum(row: &[f32]) -> [f32; LANES] {
    let mut lanes = [0.0f32; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, &value) in lanes.iter_mut().zip(chunk) {
            *lane += value;
        }
    }
    for (lane, &value) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane += value;
    }
    lanes
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
        x.chunks_exact_mut(cols)
            .for_each(|row| scaled_softmax_row(row, 1.0, None));
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
        scaled_softmax_row(&mut masked, 1.0, None);
        assert_eq!(masked, vec![0.25; 4]);
    }

    #[test]
    fn scales_then_adds_the_mask() {
        let scores = [1.0f32, -2.0, 0.5, 3.0, 0.25, -0.75, 2.5, 1.5, -1.0];
        let bias = [0.0, f32::MIN, 0.0, 0.0, 0.0, f32::MIN, 0.0, 0.0, 0.0];
        let scale = 0.125f32.sqrt();
        let mut fused = scores;
        scaled_softmax_row(&mut fused, scale, Some(&bias));
        let max = scores
            .iter()
            .zip(&bias)
            .map(|(&s, &b)| f64::from(s * scale + b))
            .fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = scores
            .iter()
            .zip(&bias)
            .map(|(&s, &b)| (f64::from(s * scale + b) - max).exp())
            .collect();
        let sum: f64 = exps.iter().sum();
        let diff = fused
            .iter()
            .zip(&exps)
            .map(|(&got, &e)| (f64::from(got) - e / sum).abs())
            .fold(0.0, f64::max);
        println!("scaled masked softmax max abs diff {diff:e}");
        assert!(diff < 1e-6);
        assert_eq!((fused[1], fused[5]), (0.0, 0.0));
    }
}
