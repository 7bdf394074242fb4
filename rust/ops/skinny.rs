//! Matrix multiply for few rows (the latency path: one short sentence).
//!
//! `out (m, n) (+)= a (m, k) @ b (k, n)` with `b` dense row-major (the Linear
//! weights, stored transposed). For small `m` the work is bound by streaming
//! `b` once from memory; `gemm` repacks it on every call instead. Here each task
//! owns a band of 16 output columns, walks down `b` once per group of up to 6
//! rows of `a` (the band stays in L1 between groups), and keeps the 6 x 16
//! accumulators in registers. Bands are split across the pool; no sum is ever
//! split across threads, so results do not depend on the thread count.

use rayon::prelude::*;

/// Output columns per task (two AVX2 registers).
const BAND: usize = 16;
/// Rows of `a` per pass over a band.
const ROWS: usize = 6;

/// Largest `m` this path is used for (above it, `gemm`'s blocking wins).
pub const MAX_ROWS: usize = 32;

/// A raw output pointer shared by tasks that write disjoint column bands.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint elements (distinct column bands), see `skinny_matmul`.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// One multiply: `out (m, n) (+)= a (m, k) @ bands(b)`.
#[derive(Clone, Copy)]
struct Problem<'a> {
    a: &'a [f32],
    b: &'a [f32],
    out: OutPtr,
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
}

/// One band: columns `col..col + width` of `out` for every row, `width <= BAND`.
#[inline(always)]
fn band_generic(problem: Problem<'_>, col: usize, width: usize) {
    let Problem {
        a,
        b,
        out,
        m,
        k,
        n,
        accumulate,
    } = problem;
    let mut row = 0;
    while row < m {
        let rows = ROWS.min(m - row);
        let mut acc = [[0.0f32; BAND]; ROWS];
        for depth in 0..k {
            let base = (col / BAND) * k * BAND + depth * BAND;
            let b_row = &b[base..base + width];
            for (r, acc_row) in acc.iter_mut().enumerate().take(rows) {
                let a_value = a[(row + r) * k + depth];
                for (sum, &b_value) in acc_row.iter_mut().zip(b_row) {
                    *sum += a_value * b_value;
                }
            }
        }
        for (r, acc_row) in acc.iter().enumerate().take(rows) {
            for (c, &value) in acc_row.iter().enumerate().take(width) {
                // SAFETY: (row + r, col + c) is inside `out` (checked by the caller) and
                // this band's columns belong to this task alone.
                unsafe {
                    let slot = out.0.add((row + r) * n + col + c);
                    *slot = if accumulate { *slot + value } else { value };
                }
            }
        }
        row += rows;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn band_avx2(problem: Problem<'_>, col: usize, width: usize) {
    let Problem {
        a,
        b,
        out,
        m,
        k,
        n,
        accumulate,
    } = problem;
    use std::arch::x86_64::*;
    if width < BAND {
        return band_generic(problem, col, width);
    }
    let mut row = 0;
    while row < m {
        let rows = ROWS.min(m - row);
        // SAFETY: every load reads b[depth * n + col .. + 16] (in bounds: col + 16 <= n,
        // depth < k) or a[(row + r) * k + depth] (r < rows, row + rows <= m); every store
        // writes this task's own band of `out`, inside its m x n elements.
        unsafe {
            let mut acc = [_mm256_setzero_ps(); 2 * ROWS];
            let b_ptr = b.as_ptr().add((col / BAND) * k * BAND);
            let a_ptr = a.as_ptr().add(row * k);
            for depth in 0..k {
                let lo = _mm256_loadu_ps(b_ptr.add(depth * BAND));
                let hi = _mm256_loadu_ps(b_ptr.add(depth * BAND + 8));
                for r in 0..rows {
                    let a_value = _mm256_broadcast_ss(&*a_ptr.add(r * k + depth));
                    acc[2 * r] = _mm256_fmadd_ps(a_value, lo, acc[2 * r]);
                    acc[2 * r + 1] = _mm256_fmadd_ps(a_value, hi, acc[2 * r + 1]);
                }
            }
            for r in 0..rows {
                let slot = out.0.add((row + r) * n + col);
                let (mut lo, mut hi) = (acc[2 * r], acc[2 * r + 1]);
                if accumulate {
                    lo = _mm256_add_ps(lo, _mm256_loadu_ps(slot));
                    hi = _mm256_add_ps(hi, _mm256_loadu_ps(slot.add(8)));
                }
                _mm256_storeu_ps(slot, lo);
                _mm256_storeu_ps(slot.add(8), hi);
            }
        }
        row += rows;
    }
}

/// `b (k, n)` row-major repacked as bands of 16 columns, each band `k` rows of
/// 16 contiguous values (the last band zero-padded): streamed linearly by
/// [`skinny_matmul`].
pub fn pack_bands(b: &[f32], k: usize, n: usize) -> Vec<f32> {
    let bands = n.div_ceil(BAND);
    let mut packed = vec![0.0f32; bands * k * BAND];
    for (band, chunk) in packed.chunks_exact_mut((k * BAND).max(1)).enumerate() {
        let col = band * BAND;
        let width = BAND.min(n - col);
        for (depth, row) in chunk.chunks_exact_mut(BAND).enumerate() {
            row[..width].copy_from_slice(&b[depth * n + col..depth * n + col + width]);
        }
    }
    packed
}

/// `out (m, n) = a (m, k) @ b (k, n)`, or `out += ...` when `accumulate`, with
/// `b` packed by [`pack_bands`]. Bands of columns run in parallel on the pool.
pub fn skinny_matmul(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n.div_ceil(BAND) * BAND && out.len() >= m * n,
        "skinny_matmul sizes"
    );
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    let use_avx2 =
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    let problem = Problem {
        a,
        b,
        out: OutPtr(out.as_mut_ptr()),
        m,
        k,
        n,
        accumulate,
    };
    let bands = n.div_ceil(BAND);
    // Enough bands per task to amortize scheduling, enough tasks to fill the pool.
    let per_task = (bands / (4 * rayon::current_num_threads())).max(1);
    (0..bands.div_ceil(per_task))
        .into_par_iter()
        .for_each(|task| {
            let first = task * per_task;
            for band in first..(first + per_task).min(bands) {
                let col = band * BAND;
                let width = BAND.min(n - col);
                #[cfg(target_arch = "x86_64")]
                if use_avx2 {
                    // SAFETY: the CPU has AVX2 and FMA.
                    unsafe { band_avx2(problem, col, width) };
                    continue;
                }
                band_generic(problem, col, width);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_for_every_small_shape() {
        let mut worst = 0.0f32;
        for &(m, k, n) in &[
            (1, 1, 1),
            (1, 384, 1152),
            (5, 7, 33),
            (16, 384, 384),
            (13, 40, 17),
            (32, 64, 48),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 53) % 97) as f32 / 48.0 - 1.0)
                .collect();
            let mut out = vec![0.5f32; m * n];
            skinny_matmul(&a, &pack_bands(&b, k, n), &mut out, m, k, n, true);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = 0.5
                        + (0..k)
                            .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
                            .sum::<f64>();
                    worst =
                        worst.max((out[i * n + j] - want as f32).abs() / (1.0 + want.abs() as f32));
                }
            }
        }
        println!("skinny_matmul max relative diff {worst:e}");
        assert!(worst < 1e-5);
    }

    #[test]
    fn same_bits_on_one_and_two_threads() {
        let (m, k, n) = (7, 100, 70);
        let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 - 6.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1).collect();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
            let mut out = vec![0.0f32; m * n];
            if let Ok(pool) = pool {
                let packed = pack_bands(&b, k, n);
                pool.install(|| skinny_matmul(&a, &packed, &mut out, m, k, n, false));
            }
            out
        };
        assert_eq!(run(1), run(2));
    }
}
