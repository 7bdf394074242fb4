//! Integer matrix multiply of the int8 layers: `out (m, n) = dequantize(a (m, k) @ w (n, k)^T)`
//! with `a` unsigned 8-bit activations (a zero point per row, see `ops::quantize`) and `w`
//! int8 weights, summed exactly in i32, plus a float32 product over a few outlier input
//! channels that stay out of the 8-bit activations.
//!
//! The weights are packed once at load, panel by panel (16 output channels), in groups of
//! `group` input positions: `[panel][k / group][16 channels][group]`, so one step of a tile
//! loads `16 * group` contiguous bytes per panel. `group` is what the path's instruction
//! takes: 4 for `vpdpbusd` (AVX-512 VNNI, AVX-VNNI) and the portable path, 2 for AVX2's
//! `vpmaddwd` (on activations stored as u16 and weights widened to 16 bits). Integer sums do
//! not depend on their order, so every path computes the same i32 sums.
//!
//! Each tile turns its sums into outputs itself ([`Epilogue`]), with the same float
//! operations in the same order on every path and tile shape:
//! `v = (acc - zp_r colsum_c) as f32 * (scale_r * weight_scale_c) + bias_c`, then
//! `v = fma(x_r[o], outlier_weight[o][c], v)` for each outlier channel `o` in order, then
//! the activation. The tiles run on `ops::grid`, as the fp32 ones.

use super::activation::{activate, Activation};
use super::cpu::Int8Path;
use super::grid::{self, Kernel, OutPtr, Prefetch, Shape, Tile, MAX_TILE_PANELS, PANEL};
use super::simd::{Int8Simd, Portable};

/// The most input channels an int8 layer takes: `k * 255 * 127` must stay below 2^31 for
/// the i32 sums to be exact.
pub const MAX_IN_FEATURES: usize = ((1u64 << 31) / (255 * 127)) as usize - 1;

/// int8 weights `(n, k)` packed for [`qmatmul`] in groups of `group` input positions.
#[derive(Debug, Clone, Default)]
pub struct PackedInt8 {
    data: Vec<i8>,
    /// Input positions rounded up to a whole group.
    k_padded: usize,
    n: usize,
    group: usize,
    /// (panels * 16) each channel's weight sum, 0 past `n`: where the tiles whose `dot`
    /// takes `x - 128` start (see `Int8Simd::initial_sums`).
    sums: Vec<i32>,
}

impl PackedInt8 {
    /// Pack `w (n, k)` row-major (HF's `(out, in)` layout); the padding is 0.
    pub fn pack(w: &[i8], n: usize, k: usize, group: usize) -> Self {
        let mut packed = PackedInt8::default();
        packed.fill_rows(w, (n, k, group));
        packed
    }

    /// [`PackedInt8::pack`] in place, its buffers reused: attention packs each head's keys so.
    /// `w` may hold fewer than `n` rows: the channels past them are 0.
    pub fn fill_rows(&mut self, w: &[i8], (n, k, group): (usize, usize, usize)) {
        self.resize((n, k, group));
        match group {
            4 => self.copy_rows::<4>(w, k),
            2 => self.copy_rows::<2>(w, k),
            _ => self.copy_rows::<1>(w, k),
        }
        let rows = w.chunks_exact(k.max(1)).take(n);
        for (sum, row) in self.sums.iter_mut().zip(rows) {
            *sum = row.iter().map(|&v| i32::from(v)).fold(0, i32::wrapping_add);
        }
    }

    /// The rows of `w (rows, k)` into their channels' slots (`rows <= n`; the channels past
    /// them stay 0), a group of `G` positions at a time.
    fn copy_rows<const G: usize>(&mut self, w: &[i8], k: usize) {
        let (k_padded, block) = (self.k_padded, G * PANEL);
        for (channel, row) in w.chunks_exact(k.max(1)).take(self.n).enumerate() {
            let (panel, slot) = (channel / PANEL, channel % PANEL);
            let data = &mut self.data[panel * k_padded * PANEL + slot * G..];
            let (groups, tail) = row.as_chunks::<G>();
            for (step, values) in groups.iter().enumerate() {
                data[step * block..][..G].copy_from_slice(values);
            }
            if !tail.is_empty() {
                data[groups.len() * block..][..tail.len()].copy_from_slice(tail);
            }
        }
    }

    /// [`PackedInt8::fill_rows`] of the weights given transposed, `w_t (k, n)` row-major:
    /// attention packs each head's values so.
    pub fn fill_columns(&mut self, w_t: &[i8], (n, k, group): (usize, usize, usize)) {
        self.resize((n, k, group));
        match group {
            4 => self.copy_columns::<4>(w_t),
            2 => self.copy_columns::<2>(w_t),
            _ => self.copy_columns::<1>(w_t),
        }
        for row in w_t.chunks_exact(n.max(1)).take(k) {
            for (sum, &value) in self.sums.iter_mut().zip(row) {
                *sum = sum.wrapping_add(i32::from(value));
            }
        }
    }

    /// The rows of `w_t (k, n)` into the slots of their depth, `G` rows (one group) at a
    /// time: 16 channels' groups of a whole panel interleaved in registers.
    fn copy_columns<const G: usize>(&mut self, w_t: &[i8]) {
        let (n, kp, block) = (self.n, self.k_padded, G * PANEL);
        if n == 0 {
            return;
        }
        let k = w_t.len() / n;
        for step in 0..k.div_ceil(G) {
            let rows: [&[i8]; G] = std::array::from_fn(|t| {
                let depth = step * G + t;
                if depth < k {
                    &w_t[depth * n..(depth + 1) * n]
                } else {
                    &[]
                }
            });
            for panel in 0..n.div_ceil(PANEL) {
                let col = panel * PANEL;
                let at = panel * kp * PANEL + step * block;
                let out = &mut self.data[at..at + block];
                if let Some(sources) = whole_panels::<G>(&rows, col) {
                    for (slot, group) in out.as_chunks_mut::<G>().0.iter_mut().enumerate() {
                        *group = std::array::from_fn(|t| sources[t][slot]);
                    }
                    continue;
                }
                for (t, row) in rows.iter().enumerate() {
                    for (slot, &value) in
                        row.get(col..).unwrap_or(&[]).iter().take(PANEL).enumerate()
                    {
                        out[slot * G + t] = value;
                    }
                }
            }
        }
    }

    /// Room for `(n, k)` weights in groups of `group`, all zero (the padding stays so).
    fn resize(&mut self, (n, k, group): (usize, usize, usize)) {
        let k_padded = k.next_multiple_of(group);
        let panels = n.div_ceil(PANEL);
        self.data.clear();
        self.data.resize(panels * k_padded * PANEL, 0);
        self.sums.clear();
        self.sums.resize(panels * PANEL, 0);
        (self.k_padded, self.n, self.group) = (k_padded, n, group);
    }

    /// Each channel's weight sum (the epilogue's `column_sums`), 0 past `n`.
    pub fn sums(&self) -> &[i32] {
        &self.sums
    }

    /// The row stride the activations must have.
    pub fn k_padded(&self) -> usize {
        self.k_padded
    }

    pub fn group(&self) -> usize {
        self.group
    }
}

/// How a tile's exact sums become outputs, for row `r` and column `c` (see the module doc).
#[derive(Clone, Copy)]
pub struct Epilogue<'a> {
    /// (m) per-row activation scales and zero points
    pub scales: &'a [f32],
    pub zero_points: &'a [i32],
    /// (n) per-column weight sums and scales, and the bias (zeros for none)
    pub column_sums: &'a [i32],
    pub weight_scale: &'a [f32],
    pub bias: &'a [f32],
    /// (m, outliers) the float32 values of the outlier input channels of each row
    pub outliers: &'a [f32],
    /// (outliers, n) their float32 weights
    pub outlier_weight: &'a [f32],
    /// Applied to the values as they are stored (the FFN's first layer).
    pub activation: Option<Activation>,
}

impl Epilogue<'_> {
    fn outlier_count(&self, n: usize) -> usize {
        self.outlier_weight.len() / n.max(1)
    }

    /// Row `row`, columns `col..col + sums.len()` of the output (rows `ldo` apart) from their
    /// exact sums: the tiles' stores when their last panel is partial.
    ///
    /// # Safety
    /// Those elements are inside the output behind `out`, written by no other task.
    unsafe fn write_row(
        &self,
        (out, ldo): (OutPtr, usize),
        n: usize,
        row: usize,
        col: usize,
        sums: &[i32],
    ) {
        let (scale, zero_point) = (self.scales[row], self.zero_points[row]);
        let count = self.outlier_count(n);
        let outliers = &self.outliers[row * count..(row + 1) * count];
        for (c, &sum) in sums.iter().enumerate() {
            let column = col + c;
            let exact = sum.wrapping_sub(zero_point.wrapping_mul(self.column_sums[column]));
            let mut value = exact as f32 * (scale * self.weight_scale[column]) + self.bias[column];
            for (o, &x) in outliers.iter().enumerate() {
                value = x.mul_add(self.outlier_weight[o * n + column], value);
            }
            // SAFETY: the caller's contract.
            unsafe { *out.0.add(row * ldo + column) = value };
        }
        if let Some(activation) = self.activation {
            // SAFETY: the caller's contract (the elements just written).
            let values =
                unsafe { std::slice::from_raw_parts_mut(out.0.add(row * ldo + col), sums.len()) };
            activate(values, activation);
        }
    }
}

/// A tile function of one path, with its grid shape.
pub struct QTileKernel<A> {
    tile: QTileFn<A>,
    shape: Shape,
}

impl<A> Clone for QTileKernel<A> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<A> Copy for QTileKernel<A> {}

type QTileFn<A> = unsafe fn(&QProduct<'_, A>, Tile, Prefetch);

/// Tiles and tasks of the int8 paths: `tile_rows` by `tile_panels`; blocks of 48 rows above
/// 96 (a block of u8 activations stays in L1), walked across chunks of 16 panels.
const fn shape(tile_rows: usize, tile_panels: usize) -> Shape {
    Shape {
        tile_rows,
        tile_panels,
        one_block: 96,
        block_rows: 48,
        chunk_panels: 16,
    }
}

/// One int8 product.
pub struct QProduct<'a, A> {
    a: &'a [A],
    w: &'a PackedInt8,
    out: OutPtr,
    /// Distance between the output's rows (`n` for a whole matrix).
    ldo: usize,
    epilogue: Epilogue<'a>,
    kernel: QTileKernel<A>,
}

impl<A: Sync> Kernel for QProduct<'_, A> {
    fn slices(&self) -> usize {
        1
    }

    fn slice_lines(&self, panel: usize, _slice: usize) -> (*const u8, usize) {
        let panel_bytes = self.w.k_padded * PANEL;
        let start = self.w.data[panel * panel_bytes..].as_ptr().cast();
        (start, panel_bytes.div_ceil(64))
    }

    unsafe fn tile(&self, tile: Tile, prefetch: Prefetch) {
        // SAFETY: the caller's contract; the tile function runs on a CPU with its features
        // (checked when the kernel was chosen).
        unsafe { (self.kernel.tile)(self, tile, prefetch) }
    }
}

/// One step `s` of an int8 tile: `NV` vectors of weights by each row's group of
/// activations. A function, not a closure, so that it is always inlined with its
/// intrinsics (see `matmul::step`).
///
/// # Safety
/// As [`tile`]: the weights and rows are readable at step `s`.
#[inline(always)]
unsafe fn step<S: Int8Simd, const R: usize, const NV: usize>(
    isa: S,
    acc: &mut [[S::I; NV]; R],
    weights: &[*const i8; NV],
    rows: &[*const S::Act; R],
    s: usize,
) {
    let group = S::GROUP;
    let mut step_weights = [isa.wzero(); NV];
    for (wv, pointer) in step_weights.iter_mut().zip(weights) {
        // SAFETY: the caller's contract.
        *wv = unsafe { isa.load_weights(pointer.add(s * PANEL * group)) };
    }
    for (sums, activations) in acc.iter_mut().zip(rows) {
        let x = unsafe { isa.broadcast_group(activations.add(s * group)) };
        for (sum, &wv) in sums.iter_mut().zip(&step_weights) {
            *sum = isa.dot(*sum, x, wv);
        }
    }
}

/// Move an int8 tile's pointers `steps` steps on.
#[inline(always)]
fn advance<S: Int8Simd, const R: usize, const NV: usize>(
    weights: &mut [*const i8; NV],
    rows: &mut [*const S::Act; R],
    steps: usize,
) {
    for pointer in weights.iter_mut() {
        *pointer = pointer.wrapping_add(steps * PANEL * S::GROUP);
    }
    for row in rows.iter_mut() {
        *row = row.wrapping_add(steps * S::GROUP);
    }
}

/// Rows `tile.row..+R` by `NV` vectors of `S::LANES` channels, sums in registers, then the
/// epilogue; pulls `prefetch` into L2 meanwhile.
///
/// # Safety
/// `R == tile.rows`, `NV * S::LANES == tile.panels * 16`, `S::GROUP == w.group`; the tile
/// is inside the product (checked by `qmatmul_with`) and belongs to this task alone.
#[inline(always)]
pub(crate) unsafe fn tile<S: Int8Simd, const R: usize, const NV: usize>(
    isa: S,
    product: &QProduct<'_, S::Act>,
    tile: Tile,
    prefetch: Prefetch,
) {
    let Tile { row, panel, .. } = tile;
    let w = product.w;
    let (kp, n) = (w.k_padded, w.n);
    let group = S::GROUP;
    let steps = kp / group;
    let per_panel = PANEL / S::LANES;
    let col = panel * PANEL;
    let width = (NV * S::LANES).min(n - col);
    let epilogue = &product.epilogue;
    // SAFETY: loads read w.data[(panel + j / per_panel) * kp * 16 + s * 16 * group ..]
    // [..LANES * group] for s < steps (inside the panels), w.sums[col..][..NV * LANES], a[(row + r) * kp + s * group ..]
    // [..group] for r < R, and the epilogue's slices at the tile's rows and columns; stores
    // write the tile's own whole panels of the output (the caller's contract).
    unsafe {
        let mut weights: [*const i8; NV] = std::array::from_fn(|j| {
            let offset = (panel + j / per_panel) * kp * PANEL + (j % per_panel) * S::LANES * group;
            w.data.as_ptr().add(offset)
        });
        let mut rows: [*const S::Act; R] =
            std::array::from_fn(|r| product.a.as_ptr().add((row + r) * kp));
        let start: [S::I; NV] =
            std::array::from_fn(|j| isa.initial_sums(w.sums.as_ptr().add(col + j * S::LANES)));
        let mut acc = [start; R];
        // The lines of the next panels, spread evenly over the steps, pulled once a pass.
        let mut lines = prefetch.paced(steps);
        let mut s = 0;
        if S::UNROLL == 1 {
            // Passes of `PASS` steps, the prefetch between them; within a pass one index
            // into fixed pointers, so that the loop keeps every pointer in a register (the
            // 256-bit paths: 12 accumulators leave no room for unrolling).
            const PASS: usize = 16;
            while s < steps {
                let end = (s + PASS).min(steps);
                lines.advance(end - s);
                for t in s..end {
                    step(isa, &mut acc, &weights, &rows, t);
                }
                s = end;
            }
        }
        // Otherwise passes of `UNROLL` steps: the pointers move once a pass, and within it
        // the steps' offsets are constants.
        while s + S::UNROLL <= steps {
            lines.advance(S::UNROLL);
            for u in 0..S::UNROLL {
                step(isa, &mut acc, &weights, &rows, u);
            }
            advance::<S, R, NV>(&mut weights, &mut rows, S::UNROLL);
            s += S::UNROLL;
        }
        while s < steps {
            step(isa, &mut acc, &weights, &rows, 0);
            advance::<S, R, NV>(&mut weights, &mut rows, 1);
            s += 1;
        }
        lines.finish();
        if width < NV * S::LANES {
            // A partial last panel: the sums go through memory, row by row.
            let mut sums = [[0i32; MAX_TILE_PANELS * PANEL]; R];
            for (spilled, vectors) in sums.iter_mut().zip(&acc) {
                for (j, &vector) in vectors.iter().enumerate() {
                    store_i32(isa, spilled.as_mut_ptr().add(j * S::LANES), vector);
                }
            }
            for (r, row_sums) in sums.iter().enumerate() {
                epilogue.write_row(
                    (product.out, product.ldo),
                    n,
                    row + r,
                    col,
                    &row_sums[..width],
                );
            }
            return;
        }
        // Whole panels: the values stay in registers, every loop over rows and vectors of a
        // constant length (a loop of run-time length inside one would put them in memory).
        let mut values = [[isa.zero(); NV]; R];
        for (r, (values, sums)) in values.iter_mut().zip(&acc).enumerate() {
            let at = row + r;
            let zero_point = isa.isplat(epilogue.zero_points[at]);
            let scale = isa.splat(epilogue.scales[at]);
            for (j, (value, &sum)) in values.iter_mut().zip(sums).enumerate() {
                let c = col + j * S::LANES;
                let column_sums = isa.iload(epilogue.column_sums.as_ptr().add(c));
                let exact = isa.isub_mul(sum, zero_point, column_sums);
                let factor = isa.mul(scale, isa.load(epilogue.weight_scale.as_ptr().add(c)));
                let scaled = isa.mul(isa.to_f32(exact), factor);
                *value = isa.add(scaled, isa.load(epilogue.bias.as_ptr().add(c)));
            }
        }
        // The outlier channels in order, each a rank-1 update of the tile (a small GEMM step).
        let count = epilogue.outlier_count(n);
        let outliers = epilogue.outliers.as_ptr().add(row * count);
        for o in 0..count {
            let weights: [S::V; NV] = std::array::from_fn(|j| {
                isa.load(
                    epilogue
                        .outlier_weight
                        .as_ptr()
                        .add(o * n + col + j * S::LANES),
                )
            });
            for (r, values) in values.iter_mut().enumerate() {
                let x = isa.broadcast(outliers.add(r * count + o));
                for (value, &weight) in values.iter_mut().zip(&weights) {
                    *value = isa.mul_add(x, weight, *value);
                }
            }
        }
        for (r, values) in values.iter().enumerate() {
            let slot = product.out.0.add((row + r) * product.ldo + col);
            for (j, &value) in values.iter().enumerate() {
                isa.store(slot.add(j * S::LANES), value);
            }
        }
        if let Some(activation) = epilogue.activation {
            for r in 0..R {
                let slot = product.out.0.add((row + r) * product.ldo + col);
                activate(std::slice::from_raw_parts_mut(slot, width), activation);
            }
        }
    }
}

/// Store the i32 lanes of `value` at `ptr` (through their f32 bit patterns: the trait
/// stores floats).
///
/// # Safety
/// `ptr` is valid for writing `S::LANES` i32 values.
#[inline(always)]
unsafe fn store_i32<S: Int8Simd>(isa: S, ptr: *mut i32, value: S::I) {
    // SAFETY: `S::I` is `S::LANES` i32 lanes, the caller's contract bounds `ptr`.
    unsafe { ptr.cast::<S::I>().write_unaligned(value) };
    let _ = isa;
}

/// The portable path: 16 lanes of plain Rust, groups of 4, one panel.
///
/// # Safety
/// As `grid::Kernel::tile`.
unsafe fn portable_tile(product: &QProduct<'_, u8>, tile: Tile, prefetch: Prefetch) {
    grid::with_rows!(tile.rows, [1, 2, 3, 4, 5, 6], R => unsafe {
        self::tile::<Portable<16>, R, 1>(Portable, product, tile, prefetch)
    })
}

/// Activations as a path stores them.
#[derive(Clone, Copy)]
pub enum Activations<'a> {
    /// u8, in groups of 4 (VNNI, portable).
    Bytes(&'a [u8]),
    /// u16, in pairs (AVX2's `vpmaddwd`).
    Words(&'a [u16]),
}

/// How `path` stores activations: `(group, words)`: the weights' and activations' group,
/// and whether activations are u16.
pub fn storage(path: Int8Path) -> (usize, bool) {
    match path {
        Int8Path::Avx2 if path.available() => (2, true),
        _ => (4, false),
    }
}

/// `out (m, n) = dequantize(a (m, k_padded) @ w^T)` on `path` (whose storage `a` and `w`
/// follow, see [`storage`]), parallel on the current pool.
pub fn qmatmul(
    path: Int8Path,
    a: Activations<'_>,
    m: usize,
    w: &PackedInt8,
    epilogue: Epilogue<'_>,
    out: &mut [f32],
) {
    assert!(out.len() >= m * w.n, "qmatmul output size");
    let out = Output {
        ptr: OutPtr(out.as_mut_ptr()),
        ldo: w.n,
        serial: false,
    };
    qmatmul_to(path, a, m, w, epilogue, out);
}

/// [`qmatmul`] on the calling thread alone, into rows `ldo` apart: row `i`, column `j` at
/// `out[i * ldo + j]`. For attention's products, one head of one sequence per task.
///
/// # Safety
/// `out` is valid for writes at `i * ldo + j` for every `i < m`, `j < w.n`, and no other
/// thread reads or writes those elements during the call.
pub unsafe fn qmatmul_strided(
    path: Int8Path,
    a: Activations<'_>,
    m: usize,
    w: &PackedInt8,
    epilogue: Epilogue<'_>,
    (out, ldo): (*mut f32, usize),
) {
    let out = Output {
        ptr: OutPtr(out),
        ldo,
        serial: true,
    };
    qmatmul_to(path, a, m, w, epilogue, out);
}

fn qmatmul_to(
    path: Int8Path,
    a: Activations<'_>,
    m: usize,
    w: &PackedInt8,
    epilogue: Epilogue<'_>,
    out: Output,
) {
    match a {
        Activations::Words(a) => {
            #[cfg(target_arch = "x86_64")]
            if path == Int8Path::Avx2 && path.available() {
                let kernel = QTileKernel {
                    tile: super::x86::avx2::qmatmul_tile,
                    shape: shape(6, 1),
                };
                return qmatmul_with(kernel, a, m, w, epilogue, out);
            }
            let _ = a;
            panic!(
                "u16 activations are for the AVX2 int8 path only (path {})",
                path.name()
            )
        }
        Activations::Bytes(a) => qmatmul_with(byte_kernel(path), a, m, w, epilogue, out),
    }
}

/// The tiles of a path that takes u8 activations; the portable ones where the CPU lacks it.
fn byte_kernel(path: Int8Path) -> QTileKernel<u8> {
    #[cfg(target_arch = "x86_64")]
    match path {
        Int8Path::Avx512Vnni if path.available() => {
            return QTileKernel {
                tile: super::x86::avx512::qmatmul_tile,
                shape: shape(super::x86::avx512::QMATMUL_ROWS, 2),
            }
        }
        Int8Path::AvxVnni if path.available() => {
            return QTileKernel {
                tile: super::x86::avx2::qmatmul_tile_vnni,
                shape: shape(6, 1),
            }
        }
        _ => {}
    }
    #[cfg(target_arch = "aarch64")]
    match path {
        Int8Path::NeonDot if path.available() => {
            return QTileKernel {
                tile: super::aarch64::neon::qmatmul_tile_dot,
                shape: shape(super::aarch64::neon::QMATMUL_DOT_ROWS, 1),
            }
        }
        Int8Path::Neon if path.available() => {
            return QTileKernel {
                tile: super::aarch64::neon::qmatmul_tile,
                shape: shape(super::aarch64::neon::QMATMUL_ROWS, 1),
            }
        }
        _ => {}
    }
    let _ = path;
    QTileKernel {
        tile: portable_tile,
        shape: shape(6, 1),
    }
}

/// Where a product writes: row `i` at `ptr + i * ldo`, `n` values; `serial`: on the calling
/// thread alone.
struct Output {
    ptr: OutPtr,
    ldo: usize,
    serial: bool,
}

/// [`qmatmul`] with the tiles of `kernel`, its operands' sizes checked (the output's by the
/// caller).
fn qmatmul_with<A: Sync>(
    kernel: QTileKernel<A>,
    a: &[A],
    m: usize,
    w: &PackedInt8,
    epilogue: Epilogue<'_>,
    out: Output,
) {
    let n = w.n;
    let count = epilogue.outlier_count(n);
    assert!(a.len() >= m * w.k_padded && out.ldo >= n, "qmatmul sizes");
    assert!(epilogue.scales.len() >= m && epilogue.zero_points.len() >= m);
    assert!(epilogue.outliers.len() >= m * count && epilogue.outlier_weight.len() == count * n);
    let columns = [
        epilogue.column_sums.len(),
        epilogue.weight_scale.len(),
        epilogue.bias.len(),
    ];
    assert!(columns.iter().all(|&len| len >= n), "qmatmul column terms");
    let product = QProduct {
        a,
        w,
        out: out.ptr,
        ldo: out.ldo,
        epilogue,
        kernel,
    };
    if out.serial {
        grid::run_serial(&product, kernel.shape, m, n.div_ceil(PANEL));
    } else {
        grid::run(&product, kernel.shape, m, n.div_ceil(PANEL));
    }
}

/// Columns `col..col + PANEL` of each of the `G` rows, when every row has them all (a row
/// past the depth, or a panel at the edge of `n`, has fewer).
fn whole_panels<'a, const G: usize>(
    rows: &[&'a [i8]; G],
    col: usize,
) -> Option<[&'a [i8; PANEL]; G]> {
    let mut panels = [&[0i8; PANEL]; G];
    for (panel, row) in panels.iter_mut().zip(rows) {
        *panel = row.get(col..col + PANEL)?.try_into().ok()?;
    }
    Some(panels)
}

#[cfg(test)]
mod tests;
