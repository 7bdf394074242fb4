//! Integer matrix multiply for int8 layers: `acc (m, n) = a (m, k) @ w (n, k)^T`
//! with `a` unsigned activations of up to 15 bits (stored as u16, see
//! `ops::quantize`) and `w` int8 weights, accumulated exactly in i32.
//!
//! Weights are prepacked once into bands of 16 output channels; within a
//! band, each pair of input positions `(2p, 2p + 1)` is 32 bytes: channels 0-7
//! then 8-15, each channel's two weights side by side. The AVX2 kernel widens
//! 16 of those bytes to i16 (`vpmovsxbw`), broadcasts a pair of activations,
//! and multiplies with `vpmaddwd` (i16 x i16, pairs summed into i32): exact,
//! unlike `vpmaddubsw`, which saturates at i16. The portable kernel computes
//! the same sums in the same integer type; integer sums do not depend on their
//! order, so both give identical i32 results, whatever the thread count.
//! The caller guarantees `k * 127 * (2^bits - 1) < 2^31` (no overflow).
//!
//! Each tile turns its sums into float outputs itself ([`Epilogue`]: zero
//! point, scales, bias), in registers on the AVX2 path, with the same float
//! operations in the same order as the portable one.
//!
//! Tasks are (block of rows, chunk of bands), each written by one task: row
//! tile by row tile, each crossing the chunk's bands (one band per task when
//! the rows make one block).

use rayon::prelude::*;

use super::activation::{activate, Activation};

/// Output channels per band (two AVX2 registers of i32).
pub const BAND: usize = 16;
/// Rows per micro tile (2 x ROWS accumulators + 2 weights + 1 broadcast <= 16 registers).
const ROWS: usize = 6;
/// Rows per task for large `m`: the block of activations stays in L1/L2.
const BLOCK_ROWS: usize = 48;
/// Bands per task for large `m` (16 x 384 pairs x 32 bytes: 192 KB in L2).
const CHUNK_BANDS: usize = 16;

/// int8 weights `(n, k)` repacked for [`qmatmul`].
#[derive(Debug, Clone)]
pub struct PackedWeights {
    data: Vec<i8>,
    /// Input positions rounded up to even.
    k_padded: usize,
    n: usize,
}

impl PackedWeights {
    /// Pack `w (n, k)` row-major (HF's `(out, in)` layout); the padding is 0.
    pub fn pack(w: &[i8], n: usize, k: usize) -> Self {
        let k_padded = k.next_multiple_of(2);
        let bands = n.div_ceil(BAND);
        let mut data = vec![0i8; bands * k_padded * BAND];
        for (band, chunk) in data.chunks_exact_mut((k_padded * BAND).max(1)).enumerate() {
            for (pair, block) in chunk.chunks_exact_mut(2 * BAND).enumerate() {
                for (slot, value) in block.iter_mut().enumerate() {
                    let (channel, depth) = (band * BAND + slot / 2, 2 * pair + slot % 2);
                    if channel < n && depth < k {
                        *value = w[channel * k + depth];
                    }
                }
            }
        }
        PackedWeights { data, k_padded, n }
    }
}

/// How a tile's exact sums become outputs: for row `r`, column `c`,
/// `out[r, c] = (acc - zp_r colsum_c) as f32 * (scale_r * weight_scale_c) + bias_c`.
/// `acc - zp_r colsum_c = sum_k (q_k - zp_r) w_k` fits in i32 (the caller's
/// bound), so it is computed with wrapping i32 arithmetic, exact modulo 2^32;
/// each float step rounds once, in the same order on every path.
#[derive(Clone, Copy)]
pub struct Epilogue<'a> {
    /// (m) per-row activation scales and zero points
    pub scales: &'a [f32],
    pub zero_points: &'a [i32],
    /// (n) per-column weight sums and scales, and the bias (zeros for none)
    pub column_sums: &'a [i32],
    pub weight_scale: &'a [f32],
    pub bias: &'a [f32],
    /// Applied to the values as they are stored (the FFN's first layer).
    pub activation: Option<Activation>,
}

/// The output `(m, n)` row-major, shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: every tile writes its own (rows, band) block, see `qmatmul`.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// `out (m, n) = dequantize(a (m, k_padded) @ w^T)`: `a` u16 activations with row stride
/// `k_padded` (as `QuantizedRows`), the packed weights, the epilogue's per-row and
/// per-column terms.
pub fn qmatmul(
    a: &[u16],
    m: usize,
    weights: &PackedWeights,
    epilogue: Epilogue<'_>,
    out: &mut [f32],
) {
    matmul_with(kernel(), a, m, weights, epilogue, out);
}

fn matmul_with(
    kernel: Kernel,
    a: &[u16],
    m: usize,
    weights: &PackedWeights,
    epilogue: Epilogue<'_>,
    out: &mut [f32],
) {
    let n = weights.n;
    assert!(a.len() >= m * weights.k_padded && out.len() >= m * n);
    assert!(epilogue.scales.len() >= m && epilogue.zero_points.len() >= m);
    let columns = [epilogue.column_sums.len(), epilogue.weight_scale.len()];
    assert!(columns
        .iter()
        .chain([&epilogue.bias.len()])
        .all(|&len| len >= n));
    let bands = n.div_ceil(BAND);
    let block = if m <= 2 * BLOCK_ROWS {
        m.max(1)
    } else {
        BLOCK_ROWS
    };
    let blocks = m.div_ceil(block);
    let out = OutPtr(out.as_mut_ptr());
    // Several blocks: a task is (block, chunk of bands), walked row tile by row
    // tile across the chunk, so output rows are written in runs of lines (as
    // `matmul`'s: int8 32x128 15-19% faster than a band per task, best
    // times in one process). One block: a band per task, enough for every thread.
    let chunk = if blocks > 1 { CHUNK_BANDS } else { 1 };
    let chunks = bands.div_ceil(chunk);
    // One task per job, as `matmul`'s (in-process A/B against rayon's
    // default splitting: int8 32x128 4%, 24x32 7% faster, medians).
    (0..blocks * chunks)
        .into_par_iter()
        .with_max_len(1)
        .for_each(|task| {
            let (row0, first_band) = ((task / chunks) * block, (task % chunks) * chunk);
            let end = (row0 + block).min(m);
            for row in (row0..end).step_by(ROWS) {
                let rows = ROWS.min(end - row);
                for band in first_band..(first_band + chunk).min(bands) {
                    let tile = Tile { row, rows, band };
                    // SAFETY: the asserts above bound `a`, `out` and the epilogue's slices
                    // for every (row, band) of the grid; this task alone writes tile
                    // (row.., band).
                    unsafe { kernel(a, weights, tile, &epilogue, out) };
                }
            }
        });
}

/// Rows `row..row + rows` (`rows <= ROWS`) by output columns of band `band`.
#[derive(Clone, Copy)]
struct Tile {
    row: usize,
    rows: usize,
    band: usize,
}

/// Computes and writes one tile. Unsafe: the caller bounds the slices (see `matmul_with`).
type Kernel = unsafe fn(&[u16], &PackedWeights, Tile, &Epilogue<'_>, OutPtr);

fn kernel() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return tile_avx2;
    }
    tile_portable
}

/// Write row `row`, columns `col..col + sums.len()` of the output from its exact sums.
///
/// # Safety
/// Those elements are inside the `(m, n)` output behind `out` and written by no other task.
#[inline(always)]
unsafe fn write_row(
    epilogue: &Epilogue<'_>,
    out: OutPtr,
    n: usize,
    row: usize,
    col: usize,
    sums: &[i32],
) {
    let (scale, zero_point) = (epilogue.scales[row], epilogue.zero_points[row]);
    for (c, &sum) in sums.iter().enumerate() {
        let exact = sum.wrapping_sub(zero_point.wrapping_mul(epilogue.column_sums[col + c]));
        let value =
            exact as f32 * (scale * epilogue.weight_scale[col + c]) + epilogue.bias[col + c];
        // SAFETY: the caller's contract.
        unsafe { *out.0.add(row * n + col + c) = value };
    }
    if let Some(activation) = epilogue.activation {
        // SAFETY: the caller's contract (the elements just written).
        let values =
            unsafe { std::slice::from_raw_parts_mut(out.0.add(row * n + col), sums.len()) };
        activate(values, activation);
    }
}

/// The reference kernel: plain integer arithmetic, then the scalar epilogue.
///
/// # Safety
/// `tile` is inside the grid `matmul_with` checked, and no other task writes it.
unsafe fn tile_portable(
    a: &[u16],
    w: &PackedWeights,
    tile: Tile,
    epilogue: &Epilogue<'_>,
    out: OutPtr,
) {
    let Tile { row, rows, band } = tile;
    let kp = w.k_padded;
    let band_data = &w.data[band * kp * BAND..(band + 1) * kp * BAND];
    let mut acc = [[0i32; BAND]; ROWS];
    for (pair, block) in band_data.chunks_exact(2 * BAND).enumerate() {
        for (r, sums) in acc.iter_mut().enumerate().take(rows) {
            let x = &a[(row + r) * kp + 2 * pair..(row + r) * kp + 2 * pair + 2];
            for (c, sum) in sums.iter_mut().enumerate() {
                let (w0, w1) = (block[2 * c] as i32, block[2 * c + 1] as i32);
                *sum += x[0] as i32 * w0 + x[1] as i32 * w1;
            }
        }
    }
    let col = band * BAND;
    let width = BAND.min(w.n - col);
    for (r, sums) in acc.iter().enumerate().take(rows) {
        // SAFETY: the caller's contract.
        unsafe { write_row(epilogue, out, w.n, row + r, col, &sums[..width]) };
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
/// # Safety
/// As `tile_portable`, on a CPU with AVX2.
unsafe fn tile_avx2(
    a: &[u16],
    w: &PackedWeights,
    tile: Tile,
    epilogue: &Epilogue<'_>,
    out: OutPtr,
) {
    match tile.rows {
        // SAFETY: the caller's contract.
        6 => unsafe { tile_avx2_rows::<6>(a, w, tile, epilogue, out) },
        5 => unsafe { tile_avx2_rows::<5>(a, w, tile, epilogue, out) },
        4 => unsafe { tile_avx2_rows::<4>(a, w, tile, epilogue, out) },
        3 => unsafe { tile_avx2_rows::<3>(a, w, tile, epilogue, out) },
        2 => unsafe { tile_avx2_rows::<2>(a, w, tile, epilogue, out) },
        _ => unsafe { tile_avx2_rows::<1>(a, w, tile, epilogue, out) },
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
/// # Safety
/// As `tile_avx2`.
unsafe fn tile_avx2_rows<const R: usize>(
    a: &[u16],
    w: &PackedWeights,
    tile: Tile,
    epilogue: &Epilogue<'_>,
    out: OutPtr,
) {
    use std::arch::x86_64::*;
    let Tile { row, band, .. } = tile;
    let kp = w.k_padded;
    // SAFETY: reads: activation pairs a[(row + r) * kp + 2p ..][..2] for r < R, p < kp / 2, and
    // weight blocks w.data[band * kp * 16 + 32p ..][..32], all inside the slices (the
    // caller's bounds); unaligned loads throughout.
    // Writes: this task's own tile of the output.
    unsafe {
        let mut sums = [[_mm256_setzero_si256(); 2]; R];
        let w_ptr = w.data.as_ptr().add(band * kp * BAND);
        let a_ptr = a.as_ptr().add(row * kp);
        for pair in 0..kp / 2 {
            let block = w_ptr.add(2 * BAND * pair);
            let lo = _mm256_cvtepi8_epi16(_mm_loadu_si128(block as *const __m128i));
            let hi = _mm256_cvtepi8_epi16(_mm_loadu_si128(block.add(16) as *const __m128i));
            for (r, sum) in sums.iter_mut().enumerate() {
                let x = (a_ptr.add(r * kp + 2 * pair) as *const i32).read_unaligned();
                let x = _mm256_set1_epi32(x);
                sum[0] = _mm256_add_epi32(sum[0], _mm256_madd_epi16(x, lo));
                sum[1] = _mm256_add_epi32(sum[1], _mm256_madd_epi16(x, hi));
            }
        }
        let col = band * BAND;
        if col + BAND > w.n {
            // The last, partial band: through the scalar epilogue (same arithmetic).
            for (r, sum) in sums.iter().enumerate() {
                let mut values = [0i32; BAND];
                _mm256_storeu_si256(values.as_mut_ptr() as *mut __m256i, sum[0]);
                _mm256_storeu_si256(values.as_mut_ptr().add(8) as *mut __m256i, sum[1]);
                write_row(epilogue, out, w.n, row + r, col, &values[..w.n - col]);
            }
            return;
        }
        for (r, sum) in sums.iter().enumerate() {
            let zero_point = _mm256_set1_epi32(epilogue.zero_points[row + r]);
            let scale = _mm256_set1_ps(epilogue.scales[row + r]);
            for (half, &acc) in sum.iter().enumerate() {
                let c = col + 8 * half;
                let column_sums =
                    _mm256_loadu_si256(epilogue.column_sums.as_ptr().add(c) as *const __m256i);
                let exact = _mm256_sub_epi32(acc, _mm256_mullo_epi32(zero_point, column_sums));
                let factor = _mm256_mul_ps(
                    scale,
                    _mm256_loadu_ps(epilogue.weight_scale.as_ptr().add(c)),
                );
                let value = _mm256_mul_ps(_mm256_cvtepi32_ps(exact), factor);
                let value = _mm256_add_ps(value, _mm256_loadu_ps(epilogue.bias.as_ptr().add(c)));
                _mm256_storeu_ps(out.0.add((row + r) * w.n + c), value);
            }
        }
        if let Some(activation) = epilogue.activation {
            for r in 0..R {
                let values = std::slice::from_raw_parts_mut(out.0.add((row + r) * w.n + col), BAND);
                activate(values, activation);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[u16], kp: usize, w: &[i8], m: usize, n: usize, k: usize) -> Vec<i64> {
        let mut out = vec![0i64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k)
                    .map(|d| a[i * kp + d] as i64 * w[j * k + d] as i64)
                    .sum();
            }
        }
        out
    }

    fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    /// The outputs with a neutral epilogue (scale 1, no zero point, no bias): the exact
    /// sums, rounded once to f32.
    fn run_with(kernel: Kernel, a: &[u16], m: usize, w: &PackedWeights) -> Vec<f32> {
        let (ones, zeros) = (vec![1.0f32; m.max(w.n)], vec![0.0f32; w.n]);
        let (no_zp, no_sums) = (vec![0i32; m], vec![0i32; w.n]);
        let epilogue = Epilogue {
            scales: &ones,
            zero_points: &no_zp,
            column_sums: &no_sums,
            weight_scale: &ones,
            bias: &zeros,
            activation: None,
        };
        let mut out = vec![f32::NAN; m * w.n];
        matmul_with(kernel, a, m, w, epilogue, &mut out);
        out
    }

    #[test]
    fn kernels_match_naive_at_the_extremes() {
        let mut seed = 7;
        for &(m, n, k, bits) in &[
            (1, 1, 1, 8),
            (5, 17, 7, 8),
            (13, 40, 64, 8),
            (100, 33, 129, 12),
            (200, 16, 384, 8),
            (3, 20, 1536, 12),
            // blocks by 2 chunks of bands, the last partial
            (110, 300, 40, 8),
        ] {
            let kp = k + k % 2;
            let top = (1u64 << bits) - 1;
            let mut a = vec![0u16; m * kp];
            for i in 0..m {
                for d in 0..k {
                    // mostly the extremes, to catch any saturation
                    let r = lcg(&mut seed);
                    a[i * kp + d] = if r % 3 == 0 {
                        top as u16
                    } else {
                        (r % (top + 1)) as u16
                    };
                }
            }
            let w: Vec<i8> = (0..n * k)
                .map(|_| match lcg(&mut seed) % 4 {
                    0 => 127,
                    1 => -127,
                    r => (r as i64 * 37 % 255 - 127) as i8,
                })
                .collect();
            let packed = PackedWeights::pack(&w, n, k);
            let expected: Vec<f32> = naive(&a, kp, &w, m, n, k)
                .into_iter()
                .map(|sum| sum as f32)
                .collect();
            // the dispatched kernel (AVX2 where the CPU has it) and the portable one
            assert_eq!(run_with(kernel(), &a, m, &packed), expected, "{m}x{n}x{k}");
            assert_eq!(run_with(tile_portable, &a, m, &packed), expected);
        }
    }

    #[test]
    fn epilogues_agree_bitwise() {
        let (m, n, k) = (9, 40, 70);
        let a: Vec<u16> = (0..m * k).map(|i| (i * 7919 % 256) as u16).collect();
        let w: Vec<i8> = (0..n * k).map(|i| (i * 104_729 % 255) as i8).collect();
        let packed = PackedWeights::pack(&w, n, k);
        let scales: Vec<f32> = (0..m).map(|i| 0.013 * (i + 1) as f32).collect();
        let zero_points: Vec<i32> = (0..m as i32).map(|i| i * 29 % 256).collect();
        let column_sums: Vec<i32> = w
            .chunks(k)
            .map(|r| r.iter().map(|&v| v as i32).sum())
            .collect();
        let weight_scale: Vec<f32> = (0..n).map(|i| 0.003 / (i + 1) as f32).collect();
        let bias: Vec<f32> = (0..n).map(|i| i as f32 * -0.25).collect();
        let run = |kernel: Kernel, activation: Option<Activation>| {
            let epilogue = Epilogue {
                scales: &scales,
                zero_points: &zero_points,
                column_sums: &column_sums,
                weight_scale: &weight_scale,
                bias: &bias,
                activation,
            };
            let mut out = vec![f32::NAN; m * n];
            matmul_with(kernel, &a, m, &packed, epilogue, &mut out);
            out
        };
        let bits = |v: Vec<f32>| v.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
        let plain = run(kernel(), None);
        assert_eq!(bits(plain.clone()), bits(run(tile_portable, None)));
        // Activations fused into the stores (40 columns: two full bands and a
        // partial one): the same bits as applied to the stored values.
        for activation in [Activation::GeluErf, Activation::GeluTanh, Activation::Relu] {
            let mut separate = plain.clone();
            activate(&mut separate, activation);
            let fused = run(kernel(), Some(activation));
            assert_eq!(bits(fused), bits(separate.clone()), "{activation:?}");
            assert_eq!(bits(run(tile_portable, Some(activation))), bits(separate));
        }
    }

    #[test]
    fn the_same_outputs_on_any_thread_count() {
        // 4 blocks of rows by 2 chunks of bands, the last one partial.
        let (m, n, k) = (150, 280, 96);
        let a: Vec<u16> = (0..m * k).map(|i| (i * 7919 % 256) as u16).collect();
        let w: Vec<i8> = (0..n * k).map(|i| (i * 104_729 % 255) as i8).collect();
        let packed = PackedWeights::pack(&w, n, k);
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build();
        let three = rayon::ThreadPoolBuilder::new().num_threads(3).build();
        if let (Ok(one), Ok(three)) = (one, three) {
            let run = || run_with(kernel(), &a, m, &packed);
            let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(one.install(run)), bits(three.install(run)));
        }
    }
}
