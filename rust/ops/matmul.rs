//! Matrix multiply over weights prepacked in bands of 16 columns: every dense
//! layer's product.
//!
//! `out (m, n) (+)= a (m, k) @ b (k, n)` with `b` (the Linear weight, transposed)
//! packed once at load by [`pack_panels`]: band `j` is `k` rows of 16 contiguous
//! values, so a pass over it reads memory linearly. A micro tile keeps 6 rows x
//! 16 columns of sums in registers while it walks down a depth slice of a band.
//!
//! Tasks are (block of rows, group of bands); blocks are split into
//! groups of bands when there are too few of them to keep every thread busy
//! (one sentence: the latency path). Each band is read from memory once per
//! block. With one block, a band's slice stays in L1 while every row tile
//! passes over it, and the next slice is prefetched into L2 meanwhile, a share
//! per row tile: with weights larger than the caches, this is what keeps the
//! FMA units fed (BERT-base 1x128: 15-20% faster than no prefetch). With
//! several blocks, each row tile crosses a chunk of bands instead, so output
//! rows are written in runs (see `Problem::run`). The `gemm` crate repacks `b`
//! on every call instead, and measured 2-24% slower on the encoder's shapes
//! (`benches/`). No sum is ever split across threads, and the depth slices
//! depend on `k` alone, so results do not depend on the thread count, nor a
//! row's result on the rows around it (nor on the order a task walks its tiles).

use std::ops::Range;

use rayon::prelude::*;

use super::activation::{activate, Activation};

/// Output columns per task (two AVX2 registers).
pub const PANEL: usize = 16;
/// Rows of `a` per pass over a band.
const ROWS: usize = 6;
/// Depth steps per pass of the AVX2 tile's loop. Measured in one process
/// against ORT's MatMul (MLAS) as the yardstick, 1 thread: from the loop that
/// recomputed each row's address every step (27 instructions a step) to 4
/// steps a pass (22), 768x384x1536 went from 0.75-0.89x of MLAS to 0.86-0.99x;
/// 8 steps a pass took it to 0.90-0.96x (128x384x1152: 0.81x, 1.01-1.08x; 2
/// threads: +8-12% over 4 steps); 16 measured slower than 8. This VM's cores
/// are shared: fewer instructions per FMA measured faster than the FMA count
/// alone predicts.
const UNROLL: usize = 8;

/// Up to this many rows, one block takes every row: each band is read from
/// memory once (MiniLM 1x128: 10-15% faster than blocks of 48).
const ONE_BLOCK: usize = 128;
/// Rows per block above `ONE_BLOCK`: tasks are (block of rows, group of bands).
/// Measured in one process against 48, 64, 128 and 192 (one task per job):
/// 32x128 8-15% faster than 192 (which 4096 rows used before), the 24x32
/// batch 6% and the 1,000 mixed sentences 4% faster than 48 (medians); still
/// ahead of 48 and 192 in `Order::Rows` (MiniLM layers, 768 rows).
const BLOCK_ROWS: usize = 96;
/// Longest depth slice: each sum is accumulated in registers over one slice,
/// then added to the output. A band's slice (`16 x depth` values) stays in L1
/// while the row tiles pass over it (`Order::Bands`), or a row tile's slice of
/// `a` (`6 x depth`) while the bands stream past (`Order::Rows`; 192 and 768
/// measured no better there). The slices depend on `k` alone (never on `m` or
/// the thread count), so a row's result never depends on the rows around it.
const DEPTH: usize = 384;
/// Bands per chunk in `Order::Rows`: 16 slices of at most 384 x 16 values
/// (384 KB) stay in L2 while the row tiles pass over them (one process, MiniLM
/// layers at 768 rows: 16 measured ahead of 8, 12 and 24, and of all the
/// task's bands).
const CHUNK_BANDS: usize = 16;

/// How a task walks its rows and bands (see `Problem::run`).
#[derive(Clone, Copy)]
enum Order {
    Bands,
    Rows,
}

/// The depth slices of `k`: as few as `DEPTH` allows, of equal length.
fn slice_depth(k: usize) -> usize {
    k.div_ceil(k.div_ceil(DEPTH).max(1)).max(1)
}

/// A raw output pointer shared by tasks that write disjoint tiles.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: tasks write disjoint elements (distinct tiles), see `matmul`.
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
    /// Row strides of `a` and `out` (`k` and `n` unless strided).
    lda: usize,
    ldo: usize,
    /// `slice_depth(k)`, computed once per product, not per band slice.
    depth: usize,
    epilogue: Epilogue<'a>,
    avx2: bool,
}

/// What a product is added to, and what is applied to the sums.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    /// `out = a b`
    Overwrite,
    /// `out += a b`
    Accumulate,
    /// `out = act(a b + bias)`, `bias (n)`, with the activation if any: fused into
    /// the tiles' stores, so the output is written once.
    Bias(&'a [f32], Option<Activation>),
}

/// Where one tile works: rows `row..row + R` of `a` and `out`, depth
/// `start..start + depth` of the band at column `col`, whose slice starts at
/// `offset` in `b`.
#[derive(Clone, Copy)]
struct Tile {
    row: usize,
    col: usize,
    start: usize,
    depth: usize,
    offset: usize,
    /// Where the sums start: `out` (`Accumulate`, or a later depth slice),
    /// `bias`, or zero.
    base: Base,
    /// The activation to apply once the last depth slice is added.
    activation: Option<Activation>,
}

/// What a tile's sums are added to.
#[derive(Clone, Copy)]
enum Base {
    Zero,
    Out,
    Bias,
}

impl<'a> Problem<'a> {
    /// The product of `m` rows, its operands' sizes checked: `a` holds rows of
    /// `k` values every `lda`, `b` the bands of `(k, n)`, the bias (if any) `n`
    /// values. `out` (rows every `ldo`) is the caller's to check.
    fn new(
        a: &'a [f32],
        lda: usize,
        b: &'a [f32],
        out: OutPtr,
        ldo: usize,
        (m, k, n): (usize, usize, usize),
        epilogue: Epilogue<'a>,
    ) -> Self {
        assert!(
            lda >= k
                && ldo >= n
                && (m == 0 || a.len() >= (m - 1) * lda + k)
                && b.len() >= k * n.div_ceil(PANEL) * PANEL,
            "matmul sizes"
        );
        if let Epilogue::Bias(bias, _) = epilogue {
            assert!(bias.len() >= n, "matmul bias size");
        }
        Problem {
            a,
            b,
            out,
            k,
            n,
            lda,
            ldo,
            depth: slice_depth(k),
            epilogue,
            avx2: has_avx2(),
        }
    }

    /// Rows `first..first + count` by the bands `bands`, depth slice by depth
    /// slice, in one of two orders:
    /// - `Order::Bands`, band by band, then row tile by row tile: each band's
    ///   slice is read from memory once and stays in L1 while every row tile
    ///   passes over it, the next band prefetched meanwhile. For one block of
    ///   rows (few rows: the weights stream from memory).
    /// - `Order::Rows`, chunk of bands by chunk, then row tile by row tile
    ///   across the chunk (in L2, pulled in by the first row tile): a tile's
    ///   output rows are written in runs of contiguous lines. Down a band they
    ///   would be a row apart (6 KB for MiniLM's FFN), and such stores measured
    ///   14-24% slower at 768 rows (1 thread), however prefetched.
    fn run(&self, first: usize, count: usize, bands: Range<usize>, order: Order) {
        let depth = self.depth;
        match order {
            Order::Bands => {
                let mut slices = (0..self.k)
                    .step_by(depth)
                    .flat_map(|start| bands.clone().map(move |band| (start, band)))
                    .peekable();
                while let Some((start, band)) = slices.next() {
                    let next = slices
                        .peek()
                        .map(|&(start, band)| self.slice_at(start, band));
                    self.band_slice(first, count, band, start, next);
                }
            }
            Order::Rows => {
                for start in (0..self.k).step_by(depth) {
                    for chunk in bands.clone().step_by(CHUNK_BANDS) {
                        let chunk = chunk..(chunk + CHUNK_BANDS).min(bands.end);
                        // The band the next chunk starts with, if any.
                        let following = if chunk.end < bands.end {
                            Some((start, chunk.end))
                        } else {
                            Some((start + depth, bands.start)).filter(|&(s, _)| s < self.k)
                        };
                        for row in (first..first + count).step_by(ROWS) {
                            let rows = ROWS.min(first + count - row);
                            let last = row + ROWS >= first + count;
                            for band in chunk.clone() {
                                // The first row tile pulls the chunk in, a band
                                // ahead; the last one pulls the next chunk's first
                                // band (in one process: +2-5% on MiniLM layers at
                                // 768 rows and on the 1,000 mixed sentences).
                                let next = if row == first && band + 1 < chunk.end {
                                    Some((start, band + 1))
                                } else if last && band + 1 == chunk.end {
                                    following
                                } else {
                                    None
                                };
                                let next = next.map(|(start, band)| self.slice_at(start, band));
                                self.band_slice(row, rows, band, start, next);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Offset in `b` and length of the slice of `band` from depth `start`.
    fn slice_at(&self, start: usize, band: usize) -> (usize, usize) {
        let depth = self.depth.min(self.k - start);
        (band * self.k * PANEL + start * PANEL, depth * PANEL)
    }

    /// Rows `first..first + count` by one depth slice of one band; `next` (a
    /// slice of `b`) is pulled into L2 meanwhile, a share per tile.
    fn band_slice(
        &self,
        first: usize,
        count: usize,
        band: usize,
        start: usize,
        next: Option<(usize, usize)>,
    ) {
        let col = band * PANEL;
        let width = PANEL.min(self.n - col);
        let (offset, len) = self.slice_at(start, band);
        let depth = len / PANEL;
        let base = match self.epilogue {
            _ if start > 0 => Base::Out,
            Epilogue::Overwrite => Base::Zero,
            Epilogue::Accumulate => Base::Out,
            Epilogue::Bias(..) => Base::Bias,
        };
        let activation = match self.epilogue {
            Epilogue::Bias(_, activation) if start + depth == self.k => activation,
            _ => None,
        };
        let tiles = count.div_ceil(ROWS);
        let next = next.map(|(offset, len)| &self.b[offset..offset + len]);
        for tile in 0..tiles {
            let row = first + tile * ROWS;
            let rows = ROWS.min(first + count - row);
            // This tile's share of the next slice, prefetched a line at a time,
            // spread evenly over its own steps (in a burst, for the portable
            // tile): bursts overflow the queue of misses (1x16: 30% slower).
            let prefetch = next.map_or(&[][..], |next| {
                let lines = next.len() / PANEL;
                let share = lines.div_ceil(tiles);
                let first = (tile * share).min(lines);
                &next[first * PANEL..(first + share).min(lines) * PANEL]
            });
            let tile = Tile {
                row,
                col,
                start,
                depth,
                offset,
                base,
                activation,
            };
            #[cfg(target_arch = "x86_64")]
            if self.avx2 {
                // SAFETY: the CPU has AVX2 and FMA; the tile is inside `a`, `b`
                // (zero-padded to whole bands) and `out` (sizes checked by
                // `matmul`), and belongs to this task alone.
                unsafe { self.tile_avx2(rows, tile, width, prefetch) };
                continue;
            }
            prefetch_l2(prefetch);
            self.tile_generic(rows, tile, width);
        }
    }

    /// The portable tile, `width <= 16` columns.
    fn tile_generic(&self, rows: usize, tile: Tile, width: usize) {
        let Tile {
            row,
            start,
            depth,
            offset,
            ..
        } = tile;
        let lda = self.lda;
        let band = &self.b[offset..][..depth * PANEL];
        let mut acc = [[0.0f32; PANEL]; ROWS];
        for (d, b_row) in band.chunks_exact(PANEL).enumerate() {
            for (r, acc_row) in acc.iter_mut().enumerate().take(rows) {
                let a_value = self.a[(row + r) * lda + start + d];
                for (sum, &b_value) in acc_row.iter_mut().zip(b_row) {
                    *sum += a_value * b_value;
                }
            }
        }
        self.finish(&acc[..rows], tile, width);
    }

    /// Write the sums of a tile's rows (their first `width` columns) as the
    /// epilogue says: the portable tile's stores, and the AVX2 tile's on a
    /// partial band.
    fn finish(&self, sums: &[[f32; PANEL]], tile: Tile, width: usize) {
        let Tile {
            row,
            col,
            base,
            activation,
            ..
        } = tile;
        for (r, acc_row) in sums.iter().enumerate() {
            // SAFETY: row `row + r`, columns `col..col + width` are inside `out`
            // (checked by the caller) and this tile belongs to this task alone.
            let out = unsafe {
                std::slice::from_raw_parts_mut(self.out.0.add((row + r) * self.ldo + col), width)
            };
            for (c, (slot, &value)) in out.iter_mut().zip(acc_row).enumerate() {
                *slot = match base {
                    Base::Zero => value,
                    Base::Out => value + *slot,
                    Base::Bias => value + self.bias()[col + c],
                };
            }
            if let Some(activation) = activation {
                activate(out, activation);
            }
        }
    }

    /// The bias of a `Bias` epilogue (else empty).
    fn bias(&self) -> &[f32] {
        match self.epilogue {
            Epilogue::Bias(bias, _) => bias,
            _ => &[],
        }
    }

    /// # Safety
    /// AVX2 and FMA are available, `rows <= 6`, the tile's rows of `a` and a
    /// whole band of `b` are inside the buffers, and `width` columns of `out`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_avx2(&self, rows: usize, tile: Tile, width: usize, prefetch: &[f32]) {
        // SAFETY: forwarded from the caller.
        unsafe {
            match rows {
                6 => tile_avx2::<6>(self, tile, width, prefetch),
                5 => tile_avx2::<5>(self, tile, width, prefetch),
                4 => tile_avx2::<4>(self, tile, width, prefetch),
                3 => tile_avx2::<3>(self, tile, width, prefetch),
                2 => tile_avx2::<2>(self, tile, width, prefetch),
                _ => tile_avx2::<1>(self, tile, width, prefetch),
            }
        }
    }
}

/// Ask for the lines of `slice` (every 16th value's) to be brought into L2.
#[inline]
pub fn prefetch_l2(slice: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    for line in slice.chunks_exact(PANEL) {
        // SAFETY: a prefetch only hints the cache; the address is inside `slice`.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
                line.as_ptr() as *const i8
            )
        };
    }
}

/// Rows `row..row + R` by the 16 columns of a band's depth slice, sums in
/// registers; also pulls the lines of `prefetch` (a part of `b`) into L2. Of a
/// partial band (`width < 16`: attention's last band of keys), the zero
/// padding is multiplied too, and only `width` columns are written.
///
/// # Safety
/// As [`Problem::tile_avx2`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile_avx2<const R: usize>(
    problem: &Problem<'_>,
    tile: Tile,
    width: usize,
    prefetch: &[f32],
) {
    use std::arch::x86_64::*;
    let Tile {
        row,
        col,
        start,
        depth,
        offset,
        base,
        activation,
    } = tile;
    let (lda, ldo) = (problem.lda, problem.ldo);
    // SAFETY: loads read b[offset..][..depth * 16],
    // `prefetch` (a slice, no fault either way) and a[(row + r) * lda + start + d]
    // for r < R, d < depth; stores write out[(row + r) * ldo + col ..][..16] of a
    // whole band: all inside the buffers by the caller's contract.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; R];
        // One pointer per row of `a`, one index shared by all, `UNROLL` steps
        // per pass: a step is its loads and FMAs, with no address arithmetic.
        let rows: [*const f32; R] =
            std::array::from_fn(|r| problem.a.as_ptr().add((row + r) * lda + start));
        let mut b_ptr = problem.b.as_ptr().add(offset);
        let step = |acc: &mut [[__m256; 2]; R], b_ptr: *const f32, d: usize| {
            let lo = _mm256_loadu_ps(b_ptr);
            let hi = _mm256_loadu_ps(b_ptr.add(8));
            for (sums, row) in acc.iter_mut().zip(rows) {
                let a_value = _mm256_broadcast_ss(&*row.add(d));
                sums[0] = _mm256_fmadd_ps(a_value, lo, sums[0]);
                sums[1] = _mm256_fmadd_ps(a_value, hi, sums[1]);
            }
        };
        // The lines of the next slice, spread evenly over the steps: a group
        // of `UNROLL` steps earns `UNROLL * lines` credit, a line costs `depth`.
        let lines = (prefetch.len() / PANEL).min(depth);
        let (mut line, mut credit) = (0, 0);
        let mut d = 0;
        while d + UNROLL <= depth {
            credit += UNROLL * lines;
            while credit >= depth {
                credit -= depth;
                _mm_prefetch::<_MM_HINT_T1>(prefetch.as_ptr().add(line * PANEL) as *const i8);
                line += 1;
            }
            for u in 0..UNROLL {
                step(&mut acc, b_ptr.add(u * PANEL), d + u);
            }
            b_ptr = b_ptr.add(UNROLL * PANEL);
            d += UNROLL;
        }
        while d < depth {
            step(&mut acc, b_ptr, d);
            b_ptr = b_ptr.add(PANEL);
            d += 1;
        }
        for line in line..lines {
            _mm_prefetch::<_MM_HINT_T1>(prefetch.as_ptr().add(line * PANEL) as *const i8);
        }
        if width < PANEL {
            let mut sums = [[0.0f32; PANEL]; R];
            for (spilled, [lo, hi]) in sums.iter_mut().zip(acc) {
                _mm256_storeu_ps(spilled.as_mut_ptr(), lo);
                _mm256_storeu_ps(spilled.as_mut_ptr().add(8), hi);
            }
            problem.finish(&sums, tile, width);
            return;
        }
        let bias = match base {
            Base::Bias => {
                let bias = problem.bias()[col..col + PANEL].as_ptr();
                [_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8))]
            }
            _ => [_mm256_setzero_ps(); 2],
        };
        for (r, sums) in acc.iter().enumerate() {
            let slot = problem.out.0.add((row + r) * ldo + col);
            let [mut lo, mut hi] = *sums;
            match base {
                Base::Zero => {}
                Base::Out => {
                    lo = _mm256_add_ps(lo, _mm256_loadu_ps(slot));
                    hi = _mm256_add_ps(hi, _mm256_loadu_ps(slot.add(8)));
                }
                Base::Bias => {
                    lo = _mm256_add_ps(lo, bias[0]);
                    hi = _mm256_add_ps(hi, bias[1]);
                }
            }
            _mm256_storeu_ps(slot, lo);
            _mm256_storeu_ps(slot.add(8), hi);
        }
        // Apart from the stores, so the sums stay in registers until stored.
        if let Some(activation) = activation {
            for r in 0..R {
                let slot = problem.out.0.add((row + r) * ldo + col);
                activate(std::slice::from_raw_parts_mut(slot, PANEL), activation);
            }
        }
    }
}

/// `b (k, n)` row-major repacked as bands of 16 columns, each band `k` rows of
/// 16 contiguous values (the last band zero-padded): streamed linearly by
/// [`matmul`].
pub fn pack_panels(b: &[f32], k: usize, n: usize) -> Vec<f32> {
    let mut packed = Vec::new();
    pack_panels_into(&mut packed, b, k, n, n, 1);
    packed
}

/// [`pack_panels`] of the `(k, n)` matrix whose element `(d, c)` is
/// `b[d * row_stride + c * col_stride]`, into `packed` (reused): attention
/// packs a head's values this way, and its keys transposed. Row by row, so a
/// transposed band reads its 16 keys at once (their misses overlap).
pub fn pack_panels_into(
    packed: &mut Vec<f32>,
    b: &[f32],
    k: usize,
    n: usize,
    row_stride: usize,
    col_stride: usize,
) {
    let bands = n.div_ceil(PANEL);
    // Every element is written below (padding columns with zeros).
    packed.resize(bands * k * PANEL, 0.0);
    for (band, chunk) in packed.chunks_exact_mut((k * PANEL).max(1)).enumerate() {
        let col = band * PANEL;
        let width = PANEL.min(n - col);
        for (depth, row) in chunk.chunks_exact_mut(PANEL).enumerate() {
            let first = depth * row_stride + col * col_stride;
            if col_stride == 1 && width == PANEL {
                // A copy of constant length: vector moves, not a call to memcpy.
                row.copy_from_slice(&b[first..first + PANEL]);
                continue;
            }
            for (c, slot) in row.iter_mut().enumerate() {
                *slot = if c < width {
                    b[first + c * col_stride]
                } else {
                    0.0
                };
            }
        }
    }
}

/// `out (m, n) = a (m, k) @ b (k, n)`, finished by `epilogue`, with
/// `b` packed by [`pack_panels`]. Bands of columns run in parallel on the pool.
pub fn matmul(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    epilogue: Epilogue<'_>,
) {
    assert!(out.len() >= m * n, "matmul output size");
    let out = OutPtr(out.as_mut_ptr());
    let problem = Problem::new(a, k, b, out, n, (m, k, n), epilogue);
    if m == 0 || n == 0 {
        return;
    }
    let bands = n.div_ceil(PANEL);
    // Blocks of rows, each split into groups of bands when there are too few
    // blocks to keep every thread busy (few rows: the latency path).
    // 8 tasks a thread: small enough to even out a thread that falls behind
    // (measured: 1x128 5-9% faster than 4), large enough to stream bands.
    let wanted = 8 * rayon::current_num_threads();
    let block = if m <= ONE_BLOCK { m } else { BLOCK_ROWS };
    let blocks = m.div_ceil(block);
    let per_group = bands.div_ceil(wanted.div_ceil(blocks).clamp(1, bands));
    let groups = bands.div_ceil(per_group);
    let order = if blocks == 1 {
        Order::Bands
    } else {
        Order::Rows
    };
    // One task per job: a thread that falls behind (this VM's cores run at
    // uneven speeds) gives up single tasks, not halves of its share. In-process
    // A/B against rayon's default splitting: 32x128 5% faster, 24x32 7-14%,
    // 1x128 and 1x16 1-4% (medians).
    (0..blocks * groups)
        .into_par_iter()
        .with_max_len(1)
        .for_each(|task| {
            let (first, group) = ((task / groups) * block, task % groups);
            let count = block.min(m - first);
            let group = group * per_group..((group + 1) * per_group).min(bands);
            problem.run(first, count, group, order);
        });
}

/// Whether the AVX2 + FMA tiles can run.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// [`matmul`] on the calling thread alone, with row strides:
/// `out[i * ldo + j] = a[i * lda ..][..k] . column j of b` for `i < m`, `j < n`,
/// finished by `epilogue`. For the small products of attention (one head of one
/// sequence per task), which write their columns of rows shared with other tasks.
///
/// # Safety
/// `out` is valid for writes at `i * ldo + j` for every `i < m`, `j < n`, and no
/// other thread reads or writes those elements during the call.
pub unsafe fn matmul_strided(
    a: &[f32],
    lda: usize,
    b: &[f32],
    out: *mut f32,
    ldo: usize,
    (m, k, n): (usize, usize, usize),
    epilogue: Epilogue<'_>,
) {
    let problem = Problem::new(a, lda, b, OutPtr(out), ldo, (m, k, n), epilogue);
    if m == 0 || n == 0 {
        return;
    }
    problem.run(0, m, 0..n.div_ceil(PANEL), Order::Bands);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` deterministic values in [-1, 1): `(i * step) % modulo`, scaled.
    fn filled(len: usize, step: usize, modulo: usize) -> Vec<f32> {
        let half = (modulo / 2) as f32;
        (0..len)
            .map(|i| ((i * step) % modulo) as f32 / half - 1.0)
            .collect()
    }

    /// Element `(i, j)` of `a (m, k) @ b (k, n)`, in f64.
    fn naive(a: &[f32], b: &[f32], (i, j): (usize, usize), k: usize, n: usize) -> f64 {
        (0..k)
            .map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j]))
            .sum()
    }

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
            (40, 1000, 48),
            (13, 800, 20),
            (250, 777, 33),
            // Blocks in groups of more than one chunk of bands, a partial band.
            (1100, 100, 600),
        ] {
            let a = filled(m * k, 37, 101);
            let b = filled(k * n, 53, 97);
            let mut out = vec![0.5f32; m * n];
            matmul(
                &a,
                &pack_panels(&b, k, n),
                &mut out,
                m,
                k,
                n,
                Epilogue::Accumulate,
            );
            for i in 0..m {
                for j in 0..n {
                    let want = 0.5 + naive(&a, &b, (i, j), k, n);
                    worst =
                        worst.max((out[i * n + j] - want as f32).abs() / (1.0 + want.abs() as f32));
                }
            }
        }
        println!("matmul max relative diff {worst:e}");
        assert!(worst < 1e-5);
    }

    #[test]
    fn the_portable_tile_matches_naive() {
        // What a CPU without AVX2 runs (this one's tiles never do): full and
        // partial bands, two depth slices, each epilogue, both orders.
        let (m, k, n) = (20, 500, 40);
        let a = filled(m * k, 37, 101);
        let b = filled(k * n, 53, 97);
        let bias: Vec<f32> = (0..n).map(|j| j as f32 / 10.0 - 2.0).collect();
        let packed = pack_panels(&b, k, n);
        let relu = Some(Activation::Relu);
        let mut worst = 0.0f32;
        for epilogue in [
            Epilogue::Overwrite,
            Epilogue::Accumulate,
            Epilogue::Bias(&bias, relu),
        ] {
            for order in [Order::Bands, Order::Rows] {
                let mut out = vec![0.5f32; m * n];
                let out_ptr = OutPtr(out.as_mut_ptr());
                let mut problem = Problem::new(&a, k, &packed, out_ptr, n, (m, k, n), epilogue);
                problem.avx2 = false;
                problem.run(0, m, 0..n.div_ceil(PANEL), order);
                for i in 0..m {
                    for j in 0..n {
                        let dot = naive(&a, &b, (i, j), k, n);
                        let want = match epilogue {
                            Epilogue::Overwrite => dot,
                            Epilogue::Accumulate => 0.5 + dot,
                            Epilogue::Bias(..) => (dot + f64::from(bias[j])).max(0.0),
                        };
                        let diff = (out[i * n + j] - want as f32).abs();
                        worst = worst.max(diff / (1.0 + want.abs() as f32));
                    }
                }
            }
        }
        println!("portable tile max relative diff {worst:e}");
        assert!(worst < 1e-5);
    }

    #[test]
    fn a_row_does_not_depend_on_the_rows_around_it() {
        // Packed and padded batches put a sequence's rows at other places among
        // other rows: each row must come out bitwise the same. Up to 128 rows run
        // band by band, more in blocks, row tile by row tile across chunks of
        // bands (1600 x 600: one group of 38 bands, 3 chunks).
        for (m, k, n) in [(200, 1000, 40), (1600, 64, 600)] {
            let a = filled(m * k, 31, 89);
            let b = filled(k * n, 17, 83);
            let packed = pack_panels(&b, k, n);
            let mut all = vec![0.0f32; m * n];
            matmul(&a, &packed, &mut all, m, k, n, Epilogue::Overwrite);
            for (first, count) in [(0, 1), (5, 7), (150, 50), (193, 3), (m - 130, 130)] {
                let mut part = vec![0.0f32; count * n];
                let rows = &a[first * k..(first + count) * k];
                matmul(rows, &packed, &mut part, count, k, n, Epilogue::Overwrite);
                assert_eq!(part, all[first * n..(first + count) * n], "{m}x{k}x{n}");
            }
        }
    }

    #[test]
    fn fused_bias_and_activation_equal_the_separate_passes() {
        // One depth slice (k <= 384): the same float operations in the same order
        // as the product followed by `apply_activation`; 40 columns = 2 full bands
        // and a partial one (the AVX2 tile's spilled sums).
        let (m, k, n) = (50, 300, 40);
        let a = filled(m * k, 7, 61);
        let b = filled(k * n, 11, 59);
        let bias: Vec<f32> = (0..n).map(|j| j as f32 / 10.0 - 2.0).collect();
        let packed = pack_panels(&b, k, n);
        for activation in [Activation::GeluErf, Activation::GeluTanh, Activation::Relu] {
            let mut fused = vec![0.0f32; m * n];
            let epilogue = Epilogue::Bias(&bias, Some(activation));
            matmul(&a, &packed, &mut fused, m, k, n, epilogue);
            let mut separate = vec![0.0f32; m * n];
            matmul(&a, &packed, &mut separate, m, k, n, Epilogue::Overwrite);
            crate::ops::apply_activation(&mut separate, &bias, activation);
            assert_eq!(fused, separate, "{activation:?}");
        }
    }

    #[test]
    fn same_bits_on_one_and_two_threads() {
        // 2000 rows: 21 blocks of 96; 7 rows: one block in groups of bands.
        for (m, k, n) in [
            (7, 100, 70),
            (130, 50, 40),
            (400, 800, 64),
            (2000, 40, 32),
            (1000, 400, 600),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1).collect();
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
                let mut out = vec![0.0f32; m * n];
                if let Ok(pool) = pool {
                    let packed = pack_panels(&b, k, n);
                    pool.install(|| matmul(&a, &packed, &mut out, m, k, n, Epilogue::Overwrite));
                }
                out
            };
            assert_eq!(run(1), run(2));
        }
    }
}
