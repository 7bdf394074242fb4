//! Row-wise softmax, `exp(x - max) / sum`, as `torch.softmax` computes it,
//! fused with attention's scaling and mask.

use super::vecmath::{self, dispatch, fold_tree, higher, LANES};

/// Values a step of a pass takes: an AVX-512 register, two AVX2 ones.
const WIDE: usize = 16;

type Chunk = [f32; WIDE];

dispatch! {
    /// `row = softmax(row * scale + bias)` (HF's order: scale, then add the
    /// mask; `bias` holds at least `row.len()` values), in place: attention's
    /// scores become its weights in one call.
    fn scaled_softmax_row(row: &mut [f32], scale: f32, bias: Option<&[f32]>) {
        let masks = bias.map(|bias| bias[..row.len()].as_chunks::<WIDE>());
        let (chunks, tail) = row.as_chunks_mut::<WIDE>();
        let mut maxima = [f32::NEG_INFINITY; WIDE];
        for (index, chunk) in chunks.iter_mut().enumerate() {
            scale_chunk(chunk, masks.map(|(masks, _)| &masks[index]), scale, &mut maxima);
        }
        let max = maximum(maxima, tail, masks.map(|(_, tail)| tail), scale);
        let mut lanes = [0.0f32; LANES];
        for chunk in chunks.iter_mut() {
            exp_chunk(chunk, max, &mut lanes);
        }
        normalize(chunks, tail, max, lanes);
    }
}

dispatch! {
    /// [`scaled_softmax_row`] of two rows of the same length at once, each with the
    /// same bits as alone: their chains of operations overlap, where a single row of
    /// attention's length leaves the CPU waiting on each step's latency.
    fn scaled_softmax_pair(first: &mut [f32], second: &mut [f32], scale: f32, bias: Option<&[f32]>) {
        assert_eq!(first.len(), second.len(), "softmax pair of rows of different lengths");
        let masks = bias.map(|bias| bias[..first.len()].as_chunks::<WIDE>());
        let (one, one_tail) = first.as_chunks_mut::<WIDE>();
        let (two, two_tail) = second.as_chunks_mut::<WIDE>();
        let mut maxima = [[f32::NEG_INFINITY; WIDE]; 2];
        for (index, (a, b)) in one.iter_mut().zip(two.iter_mut()).enumerate() {
            let mask = masks.map(|(masks, _)| &masks[index]);
            scale_chunk(a, mask, scale, &mut maxima[0]);
            scale_chunk(b, mask, scale, &mut maxima[1]);
        }
        let mask_tail = masks.map(|(_, tail)| tail);
        let max = [
            maximum(maxima[0], one_tail, mask_tail, scale),
            maximum(maxima[1], two_tail, mask_tail, scale),
        ];
        let mut lanes = [[0.0f32; LANES]; 2];
        for (a, b) in one.iter_mut().zip(two.iter_mut()) {
            exp_chunk(a, max[0], &mut lanes[0]);
            exp_chunk(b, max[1], &mut lanes[1]);
        }
        normalize(one, one_tail, max[0], lanes[0]);
        normalize(two, two_tail, max[1], lanes[1]);
    }
}

// The passes: scale, mask and maximum; exponentials and their sum; normalization, each
// over whole chunks of [`WIDE`] values that the compiler vectorizes at the path's width,
// then the row's tail. The sum keeps the fixed order of `vecmath::fold_lanes` (value `i`
// into partial sum `i % 8`, each in order), so every path gives the same bits; maxima are
// exact in any order. The tails go into copies of the running lanes, which so stay in
// registers.

/// `chunk = chunk * scale (+ mask)`, into the running maxima.
#[inline(always)]
fn scale_chunk(chunk: &mut Chunk, mask: Option<&Chunk>, scale: f32, maxima: &mut Chunk) {
    match mask {
        Some(mask) => {
            for ((value, &mask), max) in chunk.iter_mut().zip(mask).zip(maxima) {
                *value = *value * scale + mask;
                *max = higher(*max, *value);
            }
        }
        None => {
            for (value, max) in chunk.iter_mut().zip(maxima) {
                *value *= scale;
                *max = higher(*max, *value);
            }
        }
    }
}

/// The tail scaled and masked, and the maximum of the row (a tree over the lanes: a few
/// shuffles, not a chain of 16 compares).
#[inline(always)]
fn maximum(mut maxima: Chunk, tail: &mut [f32], mask: Option<&[f32]>, scale: f32) -> f32 {
    for (index, value) in tail.iter_mut().enumerate() {
        *value = match mask {
            Some(mask) => *value * scale + mask[index],
            None => *value * scale,
        };
        maxima[index] = higher(maxima[index], *value);
    }
    fold_tree(maxima, higher)
}

/// `chunk = exp(chunk - max)`, into the partial sums in order.
#[inline(always)]
fn exp_chunk(chunk: &mut Chunk, max: f32, lanes: &mut [f32; LANES]) {
    for value in chunk.iter_mut() {
        *value = vecmath::exp(*value - max);
    }
    let (low, high) = chunk.split_at(LANES);
    lanes
        .iter_mut()
        .zip(low)
        .for_each(|(lane, &value)| *lane += value);
    lanes
        .iter_mut()
        .zip(high)
        .for_each(|(lane, &value)| *lane += value);
}

/// The tail's exponentials into the sum, and every value divided by it.
#[inline(always)]
fn normalize(chunks: &mut [Chunk], tail: &mut [f32], max: f32, mut lanes: [f32; LANES]) {
    for (index, value) in tail.iter_mut().enumerate() {
        *value = vecmath::exp(*value - max);
        lanes[index % LANES] += *value;
    }
    let sum = lanes.iter().sum::<f32>();
    let inv = 1.0 / sum;
    for value in chunks.as_flattened_mut() {
        *value *= inv;
    }
    for value in tail {
        *value *= inv;
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

    #[test]
    fn a_pair_of_rows_has_the_bits_of_each_row_alone() {
        for len in [1, 7, 8, 15, 16, 17, 31, 32, 33, 100, 128, 129] {
            let first: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 23) as f32 - 9.0) * 0.41)
                .collect();
            let second: Vec<f32> = (0..len)
                .map(|i| ((i * 11 % 19) as f32 - 4.0) * 1.3)
                .collect();
            let bias: Vec<f32> = (0..len)
                .map(|i| if i % 5 == 3 { f32::MIN } else { 0.0 })
                .collect();
            for bias in [None, Some(&bias[..])] {
                let (mut a, mut b) = (first.clone(), second.clone());
                scaled_softmax_pair(&mut a, &mut b, 0.3, bias);
                let (mut x, mut y) = (first.clone(), second.clone());
                scaled_softmax_row(&mut x, 0.3, bias);
                scaled_softmax_row(&mut y, 0.3, bias);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!((bits(&a), bits(&b)), (bits(&x), bits(&y)), "length {len}");
                let sum: f32 = a.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "{sum}");
            }
        }
    }

    #[test]
    fn a_longer_mask_counts_only_the_row_length() {
        for len in [5, 16, 20] {
            let scores: Vec<f32> = (0..len).map(|i| (i as f32 * 0.7).sin()).collect();
            let exact: Vec<f32> = (0..len)
                .map(|i| if i % 3 == 0 { f32::MIN } else { 0.0 })
                .collect();
            let mut longer = exact.clone();
            longer.extend([
                f32::MIN,
                5.0,
                -3.0,
                0.0,
                f32::MIN,
                1.0,
                2.0,
                3.0,
                4.0,
                5.0,
                6.0,
                7.0,
                8.0,
            ]);
            let (mut a, mut b) = (scores.clone(), scores.clone());
            scaled_softmax_row(&mut a, 0.5, Some(&exact));
            scaled_softmax_row(&mut b, 0.5, Some(&longer));
            assert_eq!(a, b, "length {len}");
            let (mut c, mut d) = (scores.clone(), scores.clone());
            scaled_softmax_pair(&mut c, &mut d, 0.5, Some(&longer));
            assert_eq!((&a, &a), (&c, &d), "length {len}");
        }
    }
}
