//! Feed-forward activations, in place, fused with the bias add:
//! `x = act(x + bias)` row by row.

use rayon::prelude::*;

use super::vecmath::{self, dispatch};

/// A feed-forward activation, applied elementwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// x * Phi(x), with the exact erf.
    GeluErf,
    /// The tanh approximation of GELU.
    GeluTanh,
    Relu,
    /// tanh ([`vecmath::tanh`]): BERT's pooler, sentence-transformers' Dense default.
    Tanh,
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// GELU with the exact erf (HF `gelu`): `0.5 x (1 + erf(x / sqrt 2))`.
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + vecmath::erf(x * FRAC_1_SQRT_2))
}

/// GELU, tanh approximation (HF `gelu_new`, `gelu_pytorch_tanh`).
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    0.5 * x * (1.0 + vecmath::tanh(SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)))
}

#[inline(always)]
pub fn relu(x: f32) -> f32 {
    x.max(0.0)
}

dispatch! {
    fn gelu_erf_rows(x: &mut [f32], bias: &[f32]) {
        for row in x.chunks_exact_mut(bias.len()) {
            for (value, &b) in row.iter_mut().zip(bias) {
                *value = gelu_erf(*value + b);
            }
        }
    }
}

dispatch! {
    fn gelu_tanh_rows(x: &mut [f32], bias: &[f32]) {
        for row in x.chunks_exact_mut(bias.len()) {
            for (value, &b) in row.iter_mut().zip(bias) {
                *value = gelu_tanh(*value + b);
            }
        }
    }
}

dispatch! {
    fn tanh_rows(x: &mut [f32], bias: &[f32]) {
        for row in x.chunks_exact_mut(bias.len()) {
            for (value, &b) in row.iter_mut().zip(bias) {
                *value = vecmath::tanh(*value + b);
            }
        }
    }
}

dispatch! {
    fn relu_rows(x: &mut [f32], bias: &[f32]) {
        for row in x.chunks_exact_mut(bias.len()) {
            for (value, &b) in row.iter_mut().zip(bias) {
                *value = relu(*value + b);
            }
        }
    }
}

/// `x (rows, cols) = act(x + bias (cols))`, parallel over rows on the current pool.
/// `values = act(values)`, inlined into each GEMM kernel's stores (vectorized
/// by its target features; the same operations as [`apply_activation`]).
#[inline(always)]
pub(crate) fn activate(values: &mut [f32], activation: Activation) {
    match activation {
        Activation::GeluErf => values.iter_mut().for_each(|v| *v = gelu_erf(*v)),
        Activation::GeluTanh => values.iter_mut().for_each(|v| *v = gelu_tanh(*v)),
        Activation::Relu => values.iter_mut().for_each(|v| *v = relu(*v)),
        Activation::Tanh => values.iter_mut().for_each(|v| *v = vecmath::tanh(*v)),
    }
}

pub fn apply_activation(x: &mut [f32], bias: &[f32], activation: Activation) {
    let cols = bias.len();
    if cols == 0 {
        return;
    }
    let rows_function: fn(&mut [f32], &[f32]) = match activation {
        Activation::GeluErf => gelu_erf_rows,
        Activation::GeluTanh => gelu_tanh_rows,
        Activation::Relu => relu_rows,
        Activation::Tanh => tanh_rows,
    };
    let rows_per_task = super::rows_per_task(x.len() / cols, cols);
    x.par_chunks_mut(rows_per_task * cols)
        .for_each(|chunk| rows_function(chunk, bias));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_erf(x: f64) -> f64 {
        // erf by its Maclaurin series / continued fraction is overkill here:
        // integrate exp(-t^2) with Simpson's rule on a fine grid.
        let steps = 20_000;
        let h = x / steps as f64;
        let f = |t: f64| (-t * t).exp();
        let mut sum = f(0.0) + f(x);
        for i in 1..steps {
            let weight = if i % 2 == 1 { 4.0 } else { 2.0 };
            sum += weight * f(i as f64 * h);
        }
        sum * h / 3.0 * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn activations_match_their_definitions() {
        let mut worst = [0.0f64; 4];
        for i in -800..=800 {
            let x = i as f64 / 100.0;
            let erf_gelu = 0.5 * x * (1.0 + naive_erf(x / 2f64.sqrt()));
            let tanh_gelu = 0.5
                * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh());
            let got = [
                gelu_erf(x as f32),
                gelu_tanh(x as f32),
                relu(x as f32),
                vecmath::tanh(x as f32),
            ];
            let want = [erf_gelu, tanh_gelu, x.max(0.0), x.tanh()];
            for k in 0..4 {
                worst[k] = worst[k].max((f64::from(got[k]) - want[k]).abs());
            }
        }
        println!(
            "gelu_erf {:e}, gelu_tanh {:e}, relu {:e}, tanh {:e}",
            worst[0], worst[1], worst[2], worst[3]
        );
        assert!(worst.iter().all(|&d| d < 2e-6), "{worst:?}");
    }

    #[test]
    fn bias_is_added_before_the_activation() {
        let mut x = vec![-1.0, 0.5, 2.0, -3.0];
        apply_activation(&mut x, &[1.0, -1.0], Activation::Relu);
        assert_eq!(x, vec![0.0, 0.0, 3.0, 0.0]);
    }
}
