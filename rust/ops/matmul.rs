//! Matrix multiply over weights packed in panels of 16 columns (a packed-panel GEMM): every
//! dense layer's product, and attention's two.
//!
//! `out (m, n) (+)= a (m, k) @ b (k, n)`, with `b` packed once by [`pack_panels`]: panel `p`
//! is `k` rows of 16 contiguous values, so a pass over it reads memory linearly. A tile keeps
//! up to `R` rows by one or two panels of sums in registers while it walks down a depth slice
//! (`ops::grid` hands the tiles to the threads). Each output element is one chain of fused
//! multiply-adds along the depth slice, started from zero, then added to the output (or the
//! bias) and passed through the activation: the same operations in the same order on every
//! path and tile shape, so every CPU computes the same bits.

use super::activation::{activate, Activation};
use super::cpu::{self, Fp32Path};
use super::grid::{self, Kernel, OutPtr, Prefetch, Shape, Tile, MAX_TILE_PANELS};
use super::simd::{F32Simd, Portable};

pub use super::grid::PANEL;

/// Depth steps per pass of a tile's loop: a pass is its loads and FMAs, with no address
/// arithmetic between them.
const UNROLL: usize = 8;
/// Longest depth slice: each sum is accumulated in registers over one slice, then added to
/// the output. A panel's slice stays in L1 while the row tiles pass over it (or a row tile's
/// slice of `a` while the panels stream past). The slices depend on `k` alone.
const DEPTH: usize = 384;

/// The depth slices of `k`: as few as `DEPTH` allows, of equal length.
fn slice_depth(k: usize) -> usize {
    k.div_ceil(k.div_ceil(DEPTH).max(1)).max(1)
}

/// What a product is added to, and what is applied to the sums.
#[derive(Clone, Copy)]
pub enum Epilogue<'a> {
    /// `out = a b`
    Overwrite,
    /// `out += a b`
    Accumulate,
    /// `out = act(a b + bias)`, `bias (n)`, with the activation if any: fused into the
    /// tiles' stores, so the output is written once.
    Bias(&'a [f32], Option<Activation>),
}

/// What a tile's sums are added to.
#[derive(Clone, Copy)]
enum Base {
    Zero,
    Out,
    Bias,
}

/// A tile function of one path, with the grid shape it is fastest in.
#[derive(Clone, Copy)]
pub(crate) struct TileKernel {
    tile: TileFn,
    shape: Shape,
}

type TileFn = unsafe fn(&Product<'_>, Tile, Prefetch);

/// Tiles and tasks of the paths: up to 6 rows of one panel for AVX2 (12 of its 16
/// registers), 8 rows of two panels for AVX-512 (16 of 32).
const fn shape(tile_rows: usize, tile_panels: usize) -> Shape {
    Shape {
        tile_rows,
        tile_panels,
        // Up to this many rows, one block: each panel is read from memory once.
        one_block: 128,
        // Blocks of 96 rows above it, walked row tile by row tile across chunks of 16
        // panels (384 KB of slices in L2).
        block_rows: 96,
        chunk_panels: 16,
    }
}

impl TileKernel {
    /// The tiles of `path`; the portable ones where the CPU lacks it.
    pub(crate) fn of(path: Fp32Path) -> TileKernel {
        #[cfg(target_arch = "x86_64")]
        match path {
            Fp32Path::Avx512 if path.available() => {
                return TileKernel {
                    tile: super::x86::avx512::matmul_tile,
                    shape: shape(super::x86::avx512::MATMUL_ROWS, 2),
                }
            }
            Fp32Path::Avx2 if path.available() => {
                return TileKernel {
                    tile: super::x86::avx2::matmul_tile,
                    shape: shape(6, 1),
                }
            }
            _ => {}
        }
        #[cfg(target_arch = "aarch64")]
        if path == Fp32Path::Neon && path.available() {
            return TileKernel {
                tile: super::aarch64::neon::matmul_tile,
                shape: shape(super::aarch64::neon::MATMUL_ROWS, 1),
            };
        }
        let _ = path;
        TileKernel {
            tile: portable_tile,
            shape: shape(6, 1),
        }
    }
}

/// The portable path: 16 lanes of plain Rust, one panel.
///
/// # Safety
/// As `grid::Kernel::tile`.
unsafe fn portable_tile(product: &Product<'_>, tile: Tile, prefetch: Prefetch) {
    grid::with_rows!(tile.rows, [1, 2, 3, 4, 5, 6], R => unsafe {
        self::tile::<Portable<16>, R, 1>(Portable, product, tile, prefetch)
    })
}

/// One multiply: `out (m, n) (+)= a (m, k) @ panels(b)`.
pub struct Product<'a> {
    a: &'a [f32],
    b: &'a [f32],
    out: OutPtr,
    k: usize,
    n: usize,
    /// Row strides of `a` and `out` (`k` and `n` unless strided).
    lda: usize,
    ldo: usize,
    /// `slice_depth(k)`, once per product.
    depth: usize,
    epilogue: Epilogue<'a>,
    kernel: TileKernel,
}

impl<'a> Product<'a> {
    /// The product of `m` rows, its operands' sizes checked: `a` holds rows of `k` values
    /// every `lda`, `b` the panels of `(k, n)`, the bias (if any) `n` values. `out` (rows
    /// every `ldo`) is the caller's to check.
    fn new(
        (a, lda): (&'a [f32], usize),
        b: &'a [f32],
        (out, ldo): (OutPtr, usize),
        (m, k, n): (usize, usize, usize),
        epilogue: Epilogue<'a>,
        kernel: TileKernel,
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
        Product {
            a,
            b,
            out,
            k,
            n,
            lda,
            ldo,
            depth: slice_depth(k),
            epilogue,
            kernel,
        }
    }

    /// The bias of a `Bias` epilogue (else empty).
    fn bias(&self) -> &[f32] {
        match self.epilogue {
            Epilogue::Bias(bias, _) => bias,
            _ => &[],
        }
    }

    /// Where the sums of a tile at depth `start` begin, and the activation to apply once
    /// the slice ending at `end` is added.
    fn epilogue_at(&self, start: usize, end: usize) -> (Base, Option<Activation>) {
        let base = match self.epilogue {
            _ if start > 0 => Base::Out,
            Epilogue::Overwrite => Base::Zero,
            Epilogue::Accumulate => Base::Out,
            Epilogue::Bias(..) => Base::Bias,
        };
        let activation = match self.epilogue {
            Epilogue::Bias(_, activation) if end == self.k => activation,
            _ => None,
        };
        (base, activation)
    }

    /// Write the sums of `sums.len()` rows from `row`, columns `col..col + width`, as the
    /// epilogue says: a tile's stores when its last panel is partial.
    fn finish(
        &self,
        sums: &[[f32; MAX_TILE_PANELS * PANEL]],
        row: usize,
        col: usize,
        width: usize,
        base: Base,
        activation: Option<Activation>,
    ) {
        for (r, row_sums) in sums.iter().enumerate() {
            // SAFETY: row `row + r`, columns `col..col + width` are inside `out` (checked
            // by the caller) and this tile belongs to this task alone.
            let out = unsafe {
                std::slice::from_raw_parts_mut(self.out.0.add((row + r) * self.ldo + col), width)
            };
            for (c, (slot, &value)) in out.iter_mut().zip(row_sums).enumerate() {
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
}

impl Kernel for Product<'_> {
    fn slices(&self) -> usize {
        self.k.div_ceil(self.depth)
    }

    fn slice_lines(&self, panel: usize, slice: usize) -> (*const u8, usize) {
        let start = slice * self.depth;
        let depth = self.depth.min(self.k - start);
        let offset = panel * self.k * PANEL + start * PANEL;
        (self.b[offset..].as_ptr().cast(), depth)
    }

    unsafe fn tile(&self, tile: Tile, prefetch: Prefetch) {
        // SAFETY: the caller's contract; `kernel.tile` runs on a CPU with its features
        // (`TileKernel::of` checked them).
        unsafe { (self.kernel.tile)(self, tile, prefetch) }
    }
}

/// One depth step `d` of a tile: `NV` vectors of the panels by each row's value of `a`.
/// A function, not a closure, so that it is always inlined into the tile, and with it the
/// intrinsics into the function that enables their features.
///
/// # Safety
/// As [`tile`]: the panels and rows are readable at depth `d`.
#[inline(always)]
unsafe fn step<S: F32Simd, const R: usize, const NV: usize>(
    isa: S,
    acc: &mut [[S::V; NV]; R],
    panels: &[*const f32; NV],
    rows: &[*const f32; R],
    d: usize,
) {
    let mut columns = [isa.zero(); NV];
    for (column, panel) in columns.iter_mut().zip(panels) {
        // SAFETY: the caller's contract.
        *column = unsafe { isa.load(panel.add(d * PANEL)) };
    }
    for (sums, row) in acc.iter_mut().zip(rows) {
        // SAFETY: the caller's contract.
        let value = unsafe { isa.broadcast(row.add(d)) };
        for (sum, &column) in sums.iter_mut().zip(&columns) {
            *sum = isa.mul_add(value, column, *sum);
        }
    }
}

/// Move a tile's pointers `steps` depth steps on.
///
/// # Safety
/// As [`tile`]: the pointers stay inside (or one past) their panels and rows.
#[inline(always)]
unsafe fn advance<const R: usize, const NV: usize>(
    panels: &mut [*const f32; NV],
    rows: &mut [*const f32; R],
    steps: usize,
) {
    for panel in panels.iter_mut() {
        *panel = panel.wrapping_add(steps * PANEL);
    }
    for row in rows.iter_mut() {
        *row = row.wrapping_add(steps);
    }
}

/// Rows `tile.row..+R` by `NV` vectors of `S::LANES` columns (`NV * LANES / 16` panels
/// from `tile.panel`) over one depth slice, sums in registers; pulls `prefetch` into L2
/// meanwhile. Of a partial last panel (attention's last keys, odd layer widths) the zero
/// padding is multiplied too, and only the real columns are written.
///
/// # Safety
/// `R == tile.rows`, `NV * S::LANES == tile.panels * 16`; the tile is inside the product
/// (`a`, `b` zero-padded to whole panels, and `out` checked by `Product::new` and the
/// caller), and belongs to this task alone.
#[inline(always)]
pub(crate) unsafe fn tile<S: F32Simd, const R: usize, const NV: usize>(
    isa: S,
    product: &Product<'_>,
    tile: Tile,
    prefetch: Prefetch,
) {
    let Tile {
        row, panel, slice, ..
    } = tile;
    let (lda, ldo, k) = (product.lda, product.ldo, product.k);
    let start = slice * product.depth;
    let depth = product.depth.min(k - start);
    let col = panel * PANEL;
    let width = (NV * S::LANES).min(product.n - col);
    let per_panel = PANEL / S::LANES;
    // SAFETY: loads read b[(panel + j / per_panel) * k * 16 + (start + d) * 16 ..][..LANES]
    // for d < depth (inside the panels) and a[(row + r) * lda + start + d] for r < R;
    // stores write out[(row + r) * ldo + col ..][..NV * LANES] of whole panels: all inside
    // the buffers by the caller's contract.
    unsafe {
        let b = product.b.as_ptr();
        let mut panels: [*const f32; NV] = std::array::from_fn(|j| {
            let offset = (panel + j / per_panel) * k * PANEL + start * PANEL;
            b.add(offset + (j % per_panel) * S::LANES)
        });
        let mut rows: [*const f32; R] =
            std::array::from_fn(|r| product.a.as_ptr().add((row + r) * lda + start));
        let mut acc = [[isa.zero(); NV]; R];
        // The lines of the next slice, spread evenly over the steps, pulled once a pass.
        let mut lines = prefetch.paced(depth);
        let mut d = 0;
        while d + UNROLL <= depth {
            lines.advance(UNROLL);
            // The pointers move once a pass; within it, the steps' offsets are constants.
            for u in 0..UNROLL {
                step(isa, &mut acc, &panels, &rows, u);
            }
            advance(&mut panels, &mut rows, UNROLL);
            d += UNROLL;
        }
        while d < depth {
            step(isa, &mut acc, &panels, &rows, 0);
            advance(&mut panels, &mut rows, 1);
            d += 1;
        }
        lines.finish();
        let (base, activation) = product.epilogue_at(start, start + depth);
        if width < NV * S::LANES {
            let mut sums = [[0.0f32; MAX_TILE_PANELS * PANEL]; R];
            for (spilled, vectors) in sums.iter_mut().zip(&acc) {
                for (j, &vector) in vectors.iter().enumerate() {
                    isa.store(spilled.as_mut_ptr().add(j * S::LANES), vector);
                }
            }
            product.finish(&sums, row, col, width, base, activation);
            return;
        }
        let bias = product.bias().as_ptr();
        for (r, vectors) in acc.iter().enumerate() {
            let slot = product.out.0.add((row + r) * ldo + col);
            for (j, &vector) in vectors.iter().enumerate() {
                let at = slot.add(j * S::LANES);
                let value = match base {
                    Base::Zero => vector,
                    Base::Out => isa.add(vector, isa.load(at)),
                    Base::Bias => isa.add(vector, isa.load(bias.add(col + j * S::LANES))),
                };
                isa.store(at, value);
            }
        }
        // Apart from the stores, so the sums stay in registers until stored.
        if let Some(activation) = activation {
            for r in 0..R {
                let slot = product.out.0.add((row + r) * ldo + col);
                activate(std::slice::from_raw_parts_mut(slot, width), activation);
            }
        }
    }
}

/// `b (k, n)` row-major repacked as panels of 16 columns, each panel `k` rows of
/// 16 contiguous values (the last panel zero-padded): streamed linearly by
/// [`matmul`].
pub fn pack_panels(b: &[f32], k: usize, n: usize) -> Vec<f32> {
    let mut packed = Vec::new();
    pack_panels_into(&mut packed, b, k, n, n, 1);
    packed
}

/// [`pack_panels`] of the `(k, n)` matrix whose element `(d, c)` is
/// `b[d * row_stride + c * col_stride]`, into `packed` (reused): attention
/// packs a head's values this way, and its keys transposed. Row by row, so a
/// transposed panel reads its 16 keys at once (their misses overlap).
pub fn pack_panels_into(
    packed: &mut Vec<f32>,
    b: &[f32],
    k: usize,
    n: usize,
    row_stride: usize,
    col_stride: usize,
) {
    let panels = n.div_ceil(PANEL);
    // Every element is written below (padding columns with zeros).
    packed.resize(panels * k * PANEL, 0.0);
    for (panel, chunk) in packed.chunks_exact_mut((k * PANEL).max(1)).enumerate() {
        let col = panel * PANEL;
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

/// `out (m, n) = a (m, k) @ b (k, n)`, finished by `epilogue`, with `b` packed by
/// [`pack_panels`]; parallel on the current pool.
pub fn matmul(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    epilogue: Epilogue<'_>,
) {
    matmul_with(
        TileKernel::of(cpu::active().fp32),
        a,
        b,
        out,
        (m, k, n),
        epilogue,
    );
}

/// [`matmul`] with the tiles of `kernel`.
pub(crate) fn matmul_with(
    kernel: TileKernel,
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    (m, k, n): (usize, usize, usize),
    epilogue: Epilogue<'_>,
) {
    assert!(out.len() >= m * n, "matmul output size");
    let out = (OutPtr(out.as_mut_ptr()), n);
    let product = Product::new((a, k), b, out, (m, k, n), epilogue, kernel);
    grid::run(&product, kernel.shape, m, n.div_ceil(PANEL));
}

/// [`matmul`] on the calling thread alone, with row strides:
/// `out[i * ldo + j] = a[i * lda ..][..k] . column j of b` for `i < m`, `j < n`, finished by
/// `epilogue`. For the small products of attention (one head of one sequence per task),
/// which write their columns of rows shared with other tasks.
///
/// # Safety
/// `out` is valid for writes at `i * ldo + j` for every `i < m`, `j < n`, and no other thread
/// reads or writes those elements during the call.
pub unsafe fn matmul_strided(
    a: &[f32],
    lda: usize,
    b: &[f32],
    out: *mut f32,
    ldo: usize,
    (m, k, n): (usize, usize, usize),
    epilogue: Epilogue<'_>,
) {
    let kernel = TileKernel::of(cpu::active().fp32);
    let product = Product::new((a, lda), b, (OutPtr(out), ldo), (m, k, n), epilogue, kernel);
    grid::run_serial(&product, kernel.shape, m, n.div_ceil(PANEL));
}

/// Ask for the lines of `slice` (every 16th value's) to be brought into L2.
#[inline]
pub fn prefetch_l2(slice: &[f32]) {
    for line in slice.chunks(PANEL) {
        super::simd::prefetch_line(line.as_ptr().cast());
    }
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

    /// The AVX2 tile's logic on 8 portable lanes.
    unsafe fn twin_avx2(product: &Product<'_>, tile: Tile, prefetch: Prefetch) {
        grid::with_rows!(tile.rows, [1, 2, 3, 4, 5, 6], R => unsafe {
            self::tile::<Portable<8>, R, 2>(Portable, product, tile, prefetch)
        })
    }

    /// The AVX-512 tile's logic on 16 portable lanes.
    unsafe fn twin_avx512(product: &Product<'_>, tile: Tile, prefetch: Prefetch) {
        if tile.panels == 2 {
            grid::with_rows!(tile.rows, [1, 2, 3, 4, 5, 6, 7, 8], R => unsafe {
                self::tile::<Portable<16>, R, 2>(Portable, product, tile, prefetch)
            })
        } else {
            grid::with_rows!(tile.rows, [1, 2, 3, 4, 5, 6, 7, 8], R => unsafe {
                self::tile::<Portable<16>, R, 1>(Portable, product, tile, prefetch)
            })
        }
    }

    /// The NEON tile's logic on 4 portable lanes (4 vectors a panel).
    unsafe fn twin_neon(product: &Product<'_>, tile: Tile, prefetch: Prefetch) {
        grid::with_rows!(tile.rows, [1, 2, 3, 4, 5, 6], R => unsafe {
            self::tile::<Portable<4>, R, 4>(Portable, product, tile, prefetch)
        })
    }

    /// Every tile kernel to compare with the portable one: the portable twins of the SIMD
    /// tiles, and the SIMD tiles this CPU runs.
    fn kernels() -> Vec<(&'static str, TileKernel)> {
        let mut kernels = vec![
            (
                "portable twin of avx2",
                TileKernel {
                    tile: twin_avx2,
                    shape: shape(6, 1),
                },
            ),
            (
                "portable twin of avx512",
                TileKernel {
                    tile: twin_avx512,
                    shape: shape(8, 2),
                },
            ),
            (
                "portable twin of neon",
                TileKernel {
                    tile: twin_neon,
                    shape: shape(6, 1),
                },
            ),
        ];
        for path in [Fp32Path::Avx2, Fp32Path::Avx512, Fp32Path::Neon] {
            if path.available() {
                kernels.push((path.name(), TileKernel::of(path)));
            } else if let Err(message) = cpu::skip_missing(path.name()) {
                panic!("{message}");
            }
        }
        kernels
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn the_portable_path_matches_naive() {
        let portable = TileKernel::of(Fp32Path::Portable);
        let mut worst = 0.0f32;
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 7, 33),
            (16, 384, 384),
            (13, 40, 17),
            (33, 16, 20),
            (150, 100, 40),
            (40, 1000, 48),
            (250, 777, 33),
            // Blocks in groups of more than one chunk of panels, a partial panel.
            (1100, 100, 600),
        ] {
            let a = filled(m * k, 37, 101);
            let b = filled(k * n, 53, 97);
            let bias: Vec<f32> = (0..n).map(|j| j as f32 / 10.0 - 2.0).collect();
            let packed = pack_panels(&b, k, n);
            for epilogue in [
                Epilogue::Overwrite,
                Epilogue::Accumulate,
                Epilogue::Bias(&bias, Some(Activation::Relu)),
                Epilogue::Bias(&bias, Some(Activation::Tanh)),
            ] {
                let activation = |x: f64| match epilogue {
                    Epilogue::Bias(_, Some(Activation::Tanh)) => x.tanh(),
                    _ => x.max(0.0),
                };
                let mut out = vec![0.5f32; m * n];
                matmul_with(portable, &a, &packed, &mut out, (m, k, n), epilogue);
                for i in 0..m {
                    for j in 0..n {
                        let dot = naive(&a, &b, (i, j), k, n);
                        let want = match epilogue {
                            Epilogue::Overwrite => dot,
                            Epilogue::Accumulate => 0.5 + dot,
                            Epilogue::Bias(..) => activation(dot + f64::from(bias[j])),
                        };
                        let diff = (out[i * n + j] - want as f32).abs();
                        worst = worst.max(diff / (1.0 + want.abs() as f32));
                    }
                }
            }
        }
        println!("portable matmul max relative diff to f64 {worst:e}");
        assert!(worst < 1e-5);
    }

    #[test]
    fn every_path_gives_the_portable_bits() {
        // Every row count of every tile (1..=8 rows, blocks above 128 rows), one and two
        // depth slices, partial panels, odd panel counts (a one-panel tile at the end of
        // a two-panel row), every epilogue and activation.
        let portable = TileKernel::of(Fp32Path::Portable);
        let kernels = kernels();
        let mut cases = 0;
        for &(m, k, n) in &[
            (1, 5, 16),
            (2, 384, 48),
            (3, 385, 40),
            (4, 64, 1152),
            (5, 800, 3),
            (6, 32, 128),
            (7, 129, 80),
            (8, 17, 33),
            (9, 100, 64),
            (13, 768, 96),
            (16, 384, 1536),
            (130, 50, 40),
            (300, 96, 200),
        ] {
            let a = filled(m * k, 37, 101);
            let b = filled(k * n, 53, 97);
            let bias: Vec<f32> = (0..n).map(|j| j as f32 / 7.0 - 3.0).collect();
            let packed = pack_panels(&b, k, n);
            for epilogue in [
                Epilogue::Overwrite,
                Epilogue::Accumulate,
                Epilogue::Bias(&bias, None),
                Epilogue::Bias(&bias, Some(Activation::GeluErf)),
                Epilogue::Bias(&bias, Some(Activation::GeluTanh)),
                Epilogue::Bias(&bias, Some(Activation::Relu)),
                Epilogue::Bias(&bias, Some(Activation::Tanh)),
            ] {
                let mut want = filled(m * n, 3, 7);
                matmul_with(portable, &a, &packed, &mut want, (m, k, n), epilogue);
                for (name, kernel) in &kernels {
                    let mut got = filled(m * n, 3, 7);
                    matmul_with(*kernel, &a, &packed, &mut got, (m, k, n), epilogue);
                    assert_eq!(bits(&got), bits(&want), "{name}, {m}x{k}x{n}");
                    cases += 1;
                }
            }
        }
        let names: Vec<&str> = kernels.iter().map(|(name, _)| *name).collect();
        println!("{cases} products bitwise equal to the portable path on: {names:?}");
    }

    #[test]
    fn strided_products_give_the_portable_bits() {
        // Attention's products: rows of `a` every `lda`, output rows every `ldo`.
        let (m, k, n, lda, ldo) = (37, 40, 48, 100, 70);
        let a = filled(m * lda, 7, 61);
        let packed = pack_panels(&filled(k * n, 11, 59), k, n);
        let run = |kernel: TileKernel| {
            let mut out = vec![0.0f32; m * ldo];
            let product = Product::new(
                (&a, lda),
                &packed,
                (OutPtr(out.as_mut_ptr()), ldo),
                (m, k, n),
                Epilogue::Overwrite,
                kernel,
            );
            grid::run_serial(&product, kernel.shape, m, n.div_ceil(PANEL));
            out
        };
        let want = run(TileKernel::of(Fp32Path::Portable));
        for (name, kernel) in kernels() {
            assert_eq!(bits(&run(kernel)), bits(&want), "{name}");
        }
    }

    #[test]
    fn a_row_does_not_depend_on_the_rows_around_it() {
        // Packed and padded batches put a sequence's rows at other places among other
        // rows: each row must come out bitwise the same. Up to 128 rows run panel by
        // panel, more in blocks, row tile by row tile across chunks of panels.
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
        // One depth slice (k <= 384): the same float operations in the same order as the
        // product followed by `apply_activation`; 40 columns = 2 full panels and a partial
        // one (the spilled sums).
        let (m, k, n) = (50, 300, 40);
        let a = filled(m * k, 7, 61);
        let b = filled(k * n, 11, 59);
        let bias: Vec<f32> = (0..n).map(|j| j as f32 / 10.0 - 2.0).collect();
        let packed = pack_panels(&b, k, n);
        for activation in [
            Activation::GeluErf,
            Activation::GeluTanh,
            Activation::Relu,
            Activation::Tanh,
        ] {
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
        for (m, k, n) in [
            (7, 100, 70),
            (130, 50, 40),
            (400, 800, 64),
            (2000, 40, 32),
            (1000, 400, 600),
        ] {
            let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 - 6.0).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1).collect();
            let packed = pack_panels(&b, k, n);
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
                let mut out = vec![0.0f32; m * n];
                if let Ok(pool) = pool {
                    pool.install(|| matmul(&a, &packed, &mut out, m, k, n, Epilogue::Overwrite));
                }
                out
            };
            assert_eq!(run(1), run(2));
        }
    }
}
