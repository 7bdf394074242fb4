//! Matrix multiply over weights prepacked in bands of 16 columns: every dense
//! layer's product.
//!
//! `out (m, n) (+)= a (m, k) @ b (k, n)` with `b` (the Linear weight, transposed)
//! packed once at load by [`pack_bands`]: band `j` is `k` rows of 16 contiguous
//! values, so a pass over it reads memory linearly. A micro tile keeps 6 rows x
//! 16 columns of sums in registers while it walks down the band.
//!
//! Few rows (one short sentence, the latency path): the work is bound by
//! streaming the weights once; tasks are groups of bands, each over every row.
//! Many rows: tasks are (block of 48 rows, band) tiles; a block of `a` stays in
//! cache while the bands stream past it. The `gemm` crate repacks `b` on every
//! call instead, and measured 2-24% slower on the encoder's shapes (`benches/`).
//! No sum is ever split across threads, so results do not depend on the thread
//! count.

use rayon::prelude::*;

/// Output columns per task (two AVX2 registers).
const BAND: usize = 16;
/// Rows of `a` per pass over a band.
const ROWS: usize = 6;

/// Up to this many rows, tasks take every row (the latency path).
pub const MAX_ROWS: usize = 32;
/// Rows per task above `MAX_ROWS`.
const BLOCK_ROWS: usize = 48;

/// A raw output pointer shared by tasks that write disjoint column bands.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint elements (distinct column bands), see `banded_matmul`.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// One multiply: `out (m, n) (+)= a (m, k) @ bands(b)`.
#[derive(Clone, Copy)]
struct Problem<'a> {
    a: &'a [f32],
    b: &'a [f32],
    out: OutPtr,
    k: usize,
    n: usize,
    accumulate: bool,
}

/// One band: columns `col..col + width` of `out` for rows `first..first + count`,
/// `width <= BAND`.
#[inline(always)]
fn band_generic(problem: Problem<'_>, first: usize, count: usize, col: usize, width: usize) {
    let Problem {
        a,
        b,
        out,
        k,
        n,
        accumulate,
    } = problem;
    let mut row = first;
    while row < first + count {
        let rows = ROWS.min(first + count - row);
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
fn band_avx2(problem: Problem<'_>, first: usize, count: usize, col: usize, width: usize) {
    if width < BAND {
        return band_generic(problem, first, count, col, width);
    }
    let mut row = first;
    while row < first + count {
        let rows = ROWS.min(first + count - row);
        // SAFETY (every arm): the caller bounds `a` to `m x k` and `out` to `m x n` with
        // rows `first..first + count` inside `m`, and the band inside `b` (col + 16 <= n).
        match rows {
            6 => unsafe { tile_avx2::<6>(problem, row, col) },
            5 => unsafe { tile_avx2::<5>(problem, row, col) },
            4 => unsafe { tile_avx2::<4>(problem, row, col) },
            3 => unsafe { tile_avx2::<3>(problem, row, col) },
            2 => unsafe { tile_avx2::<2>(problem, row, col) },
            _ => unsafe { tile_avx2::<1>(problem, row, col) },
        }
        row += rows;
    }
}

/// Rows `row..row + R` by the 16 columns of the band at `col`, sums in registers.
///
/// # Safety
/// AVX2 and FMA are available; rows `row..row + R` are inside `a` and `out`, the
/// band at `col` is a full band of `b`, and no other task writes this tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_avx2<const R: usize>(problem: Problem<'_>, row: usize, col: usize) {
    use std::arch::x86_64::*;
    let Problem {
        a,
        b,
        out,
        k,
        n,
        accumulate,
    } = problem;
    // SAFETY: loads read the band b[(col / 16) * k * 16 ..][..k * 16] and
    // a[(row + r) * k + depth] for r < R, depth < k; stores write out[(row + r) * n +
    // col ..][..16]: all inside the buffers by the caller's contract.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        let b_ptr = b.as_ptr().add((col / BAND) * k * BAND);
        let a_ptr = a.as_ptr().add(row * k);
        for depth in 0..k {
            let lo = _mm256_loadu_ps(b_ptr.add(depth * BAND));
            let hi = _mm256_loadu_ps(b_ptr.add(depth * BAND + 8));
            for (r, sums) in acc.iter_mut().enumerate() {
                let a_value = _mm256_broadcast_ss(&*a_ptr.add(r * k + depth));
                sums[0] = _mm256_fmadd_ps(a_value, lo, sums[0]);
                sums[1] = _mm256_fmadd_ps(a_value, hi, sums[1]);
            }
        }
        for (r, sums) in acc.iter().enumerate() {
            let slot = out.0.add((row + r) * n + col);
            let [mut lo, mut hi] = *sums;
            if accumulate {
                lo = _mm256_add_ps(lo, _mm256_loadu_ps(slot));
                hi = _mm256_add_ps(hi, _mm256_loadu_ps(slot.add(8)));
            }
            _mm256_storeu_ps(slot, lo);
            _mm256_storeu_ps(slot.add(8), hi);
        }
    }
}

/// `b (k, n)` row-major repacked as bands of 16 columns, each band `k` rows of
/// 16 contiguous values (the last band zero-padded): streamed linearly by
/// [`banded_matmul`].
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
pub fn banded_matmul(
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
        "banded_matmul sizes"
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
        k,
        n,
        accumulate,
    };
    let bands = n.div_ceil(BAND);
    // Few rows: tasks are groups of bands, every row at once (the weights are
    // streamed once). Many rows: (block of rows, band) tiles, so that a block of
    // `a` stays in cache while the bands stream past it.
    let block = if m <= MAX_ROWS { m } else { BLOCK_ROWS };
    let blocks = m.div_ceil(block);
    let per_task = if blocks == 1 {
        (bands / (4 * rayon::current_num_threads())).max(1)
    } else {
        1
    };
    let groups = bands.div_ceil(per_task);
    (0..blocks * groups).into_par_iter().for_each(|task| {
        let (row, group) = ((task / groups) * block, task % groups);
        let rows = block.min(m - row);
        let first = group * per_task;
        for band in first..(first + per_task).min(bands) {
            let col = band * BAND;
            let width = BAND.min(n - col);
            #[cfg(target_arch = "x86_64")]
            if use_avx2 {
                // SAFETY: the CPU has AVX2 and FMA.
                unsafe { band_avx2(problem, row, rows, col, width) };
                continue;
            }
            band_generic(problem, row, rows, col, width);
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
            (33, 16, 20),
            (150, 100, 40),
            (300, 384, 32),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 53) % 97) as f32 / 48.0 - 1.0)
                .collect();
            let mut out = vec![0.5f32; m * n];
            banded_matmul(&a, &pack_bands(&b, k, n), &mut out, m, k, n, true);
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
        println!("banded_matmul max relative diff {worst:e}");
        assert!(worst < 1e-5);
    }

    #[test]
    fn same_bits_on_one_and_two_threads() {
        for (m, k, n) in [(7, 100, 70), (130, 50, 40)] {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1).collect();
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
                let mut out = vec![0.0f32; m * n];
                if let Ok(pool) = pool {
                    let packed = pack_bands(&b, k, n);
                    pool.install(|| banded_matmul(&a, &packed, &mut out, m, k, n, false));
                }
                out
            };
            assert_eq!(run(1), run(2));
        }
    }
}
