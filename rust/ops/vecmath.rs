//! Branch-free f32 `exp`, `erf` and `tanh` that the compiler vectorizes, and
//! the run-time CPU dispatch that lets it use AVX2 on slices.
//!
//! The functions use plain `+`/`*` (never `mul_add`): Rust does not contract
//! them into FMA, so the AVX2 build of a loop and the portable one give
//! bitwise identical results, whatever CPU runs them. Accuracy (tested against
//! `f64` in the tests): `exp` about 2 ulp; `erf` 5e-7 absolute (a few ulp of 1); `tanh` 2e-7 absolute.

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in two (Cody-Waite) so that n * LN2_HI is exact.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Below this, exp(x) is under the smallest normal float: return 0.
const EXP_MIN_X: f32 = -87.33;
const EXP_MAX_X: f32 = 88.0;
/// 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// The bits of `ROUND_MAGIC`: `(ROUND_MAGIC + n).to_bits()` is this plus `n`.
const ROUND_MAGIC_BITS: u32 = 0x4B40_0000;

/// e^x for x <= 88 (larger x are clamped to 88, so the result stays finite); 0 below the normal range.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // Comparisons rather than `clamp`/`as i32`, whose NaN rules keep the loop scalar.
    let low = if x < EXP_MIN_X { EXP_MIN_X } else { x };
    let clamped = if low > EXP_MAX_X { EXP_MAX_X } else { low };
    // `shifted` holds round(x log2 e) in its low mantissa bits.
    let shifted = clamped * LOG2E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    // Cephes expf polynomial for e^r on [-ln2/2, ln2/2].
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    // 2^n from the bits of `shifted`: n + 127 in the exponent field.
    let scale = f32::from_bits(shifted.to_bits().wrapping_sub(ROUND_MAGIC_BITS - 127) << 23);
    let value = e_r * scale;
    if x < EXP_MIN_X {
        0.0
    } else {
        value
    }
}

/// e^x for x <= 0 to about 1e-5 relative (0 below -80): for values that are then rounded
/// to 8 bits (int8 attention's weights), where [`exp`]'s 2 ulp would be wasted work.
/// `2^y`, `y = x log2 e`, as `2^round(y)` times a degree-4 polynomial of the rest (`y`'s
/// rounding to f32 costs more than the polynomial's 3e-6).
#[inline(always)]
pub fn exp_coarse(x: f32) -> f32 {
    let low = if x < -80.0 { -80.0 } else { x };
    let clamped = if low > 0.0 { 0.0 } else { low };
    let y = clamped * LOG2E;
    let shifted = y + ROUND_MAGIC;
    let f = y - (shifted - ROUND_MAGIC);
    // 2^f on [-1/2, 1/2]: a degree-4 fit to its relative error, 1 at 0 (3e-6 off).
    let mut p = 9.582_85e-3_f32;
    p = p * f + 5.590_643e-2;
    p = p * f + 0.240_240_99;
    p = p * f + 0.693_124_2;
    p = p * f + 1.0;
    let scale = f32::from_bits(shifted.to_bits().wrapping_sub(ROUND_MAGIC_BITS - 127) << 23);
    let value = p * scale;
    if x < -80.0 {
        0.0
    } else {
        value
    }
}

/// erf(x): the rational minimax approximation XLA and Eigen use for f32
/// (`x P(x^2) / Q(x^2)` on [-4, 4], +-1 beyond).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p * x2 + 2.770_681_4e-8;
    p = p * x2 - 2.101_024e-6;
    p = p * x2 - 5.692_506_4e-5;
    p = p * x2 - 7.349_906_3e-4;
    p = p * x2 - 2.954_600_1e-3;
    p = p * x2 - 1.609_603_3e-2;
    let mut q = -1.456_607_2e-5_f32;
    q = q * x2 - 2.133_740_6e-4;
    q = q * x2 - 1.682_827e-3;
    q = q * x2 - 7.373_329_2e-3;
    q = q * x2 - 1.426_474e-2;
    x * p / q
}

/// x rounded to the nearest integer, ties to even (numpy's `rint`), for
/// |x| < 2^22; vectorizes, unlike `f32::round_ties_even` on baseline x86_64.
#[inline(always)]
pub fn rint(x: f32) -> f32 {
    (x + ROUND_MAGIC) - ROUND_MAGIC
}

/// tanh(x) = 1 - 2 / (e^{2x} + 1), odd-symmetric.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let a = x.abs().min(9.0);
    let magnitude = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
    if x < 0.0 {
        -magnitude
    } else {
        magnitude
    }
}

/// `x` if it is below `lo`, else `lo` (a NaN `x` is skipped): a select that vectorizes,
/// where `f32::min`'s NaN rule keeps a loop scalar.
#[inline(always)]
pub fn lower(lo: f32, x: f32) -> f32 {
    if x < lo {
        x
    } else {
        lo
    }
}

/// `x` if it is above `hi`, else `hi` (a NaN `x` is skipped).
#[inline(always)]
pub fn higher(hi: f32, x: f32) -> f32 {
    if x > hi {
        x
    } else {
        hi
    }
}

/// `lanes` folded by `pick` ([`lower`] or [`higher`]) in a tree: a few shuffles, not a chain
/// of `N` compares. For exact picks (minima, maxima) any order gives the same result.
#[inline(always)]
pub fn fold_tree<const N: usize>(mut lanes: [f32; N], pick: impl Fn(f32, f32) -> f32) -> f32 {
    let mut width = N / 2;
    while width > 0 {
        for i in 0..width {
            lanes[i] = pick(lanes[i], lanes[i + width]);
        }
        width /= 2;
    }
    lanes[0]
}

/// Partial results per lane of [`fold_lanes`]: a fixed count, so the order of
/// operations (and the result) is the same on every CPU and thread count.
pub const LANES: usize = 8;

/// Fold the values of `row` into `LANES` partial results, value `i` into lane
/// `i % LANES`, each lane in order; `step` may also rewrite the value. The
/// caller combines the lanes. Vectorizes where the row loop of a lane would not.
#[inline(always)]
pub fn fold_lanes<T: Copy>(
    row: &mut [f32],
    init: T,
    mut step: impl FnMut(T, &mut f32) -> T,
) -> [T; LANES] {
    let mut lanes = [init; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (lane, value) in lanes.iter_mut().zip(chunk) {
            *lane = step(*lane, value);
        }
    }
    for (lane, value) in lanes.iter_mut().zip(chunks.into_remainder()) {
        *lane = step(*lane, value);
    }
    lanes
}

/// Run `$body` (a loop over slices that uses the functions above) compiled for the fp32 path
/// `ops::cpu` picked: with AVX-512 or AVX2 + FMA enabled, else for the baseline target. The
/// body uses plain `+`/`*` and fixed lane folds ([`fold_lanes`]), so every build computes
/// the same bits; the wider ones only run faster. On aarch64 the baseline target already has
/// NEON (`neon` is in every aarch64 target's features), so the baseline build is the NEON one.
macro_rules! dispatch {
    ($(#[$attr:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$attr])*
        pub fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                fn avx512($($arg: $ty),*) {
                    generic($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    generic($($arg),*)
                }
                match $crate::ops::cpu::active().fp32 {
                    // SAFETY: `ops::cpu` picks a path only if the CPU has its features.
                    $crate::ops::cpu::Fp32Path::Avx512 => return unsafe { avx512($($arg),*) },
                    $crate::ops::cpu::Fp32Path::Avx2 => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            generic($($arg),*)
        }
    };
}
pub(crate) use dispatch;

#[cfg(test)]
mod tests {
    use super::*;

    fn sweep(lo: f32, hi: f32, steps: usize) -> impl Iterator<Item = f32> {
        (0..=steps).map(move |i| lo + (hi - lo) * i as f32 / steps as f32)
    }

    #[test]
    fn exp_is_within_a_few_ulp() {
        let mut worst = 0.0f64;
        for x in sweep(-87.0, 88.0, 200_000) {
            let want = f64::from(x).exp();
            let rel = ((f64::from(exp(x)) - want) / want).abs();
            worst = worst.max(rel);
        }
        println!("exp max relative error {worst:e}");
        assert!(worst < 3e-7, "{worst}");
        assert_eq!(exp(f32::MIN), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn coarse_exp_is_within_its_bound() {
        let mut worst = 0.0f64;
        for x in sweep(-80.0, 0.0, 200_000) {
            let want = f64::from(x).exp();
            worst = worst.max(((f64::from(exp_coarse(x)) - want) / want).abs());
        }
        println!("exp_coarse max relative error {worst:e}");
        assert!(worst < 1e-5, "{worst}");
        assert_eq!(exp_coarse(0.0), 1.0);
        assert_eq!(exp_coarse(-1000.0), 0.0);
        assert_eq!(exp_coarse(f32::MIN), 0.0);
        assert!(exp_coarse(f32::NAN).is_nan() || exp_coarse(f32::NAN) == 0.0);
    }

    #[test]
    fn erf_and_tanh_match_f64() {
        let (mut worst_erf, mut worst_tanh) = (0.0f64, 0.0f64);
        for x in sweep(-10.0, 10.0, 200_000) {
            let x64 = f64::from(x);
            worst_erf = worst_erf.max((f64::from(erf(x)) - libm::erf(x64)).abs());
            worst_tanh = worst_tanh.max((f64::from(tanh(x)) - x64.tanh()).abs());
        }
        println!("erf {worst_erf:e}, tanh {worst_tanh:e}");
        assert!(worst_erf < 5e-7 && worst_tanh < 3e-7);
    }

    dispatch! {
        fn exp_slice(values: &mut [f32]) {
            for value in values.iter_mut() {
                *value = exp(*value);
            }
        }
    }

    #[test]
    fn dispatched_loop_is_bitwise_equal_to_scalar() {
        let mut values: Vec<f32> = sweep(-90.0, 90.0, 10_001).collect();
        let expected: Vec<u32> = values.iter().map(|&x| exp(x).to_bits()).collect();
        exp_slice(&mut values);
        let got: Vec<u32> = values.iter().map(|x| x.to_bits()).collect();
        assert_eq!(got, expected);
    }
}
