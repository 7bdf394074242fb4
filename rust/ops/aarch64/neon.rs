//! aarch64 NEON: 4 f32 lanes (`fmla` is fused, rounded once, as x86's FMA); int8 through
//! `sdot` (the `dotprod` feature) or, without it, 8-bit multiplies widened to 16 and 32 bits.
//!
//! Both int8 instructions take signed bytes, and activations are u8: the tiles feed
//! `x ^ 0x80 = x - 128` and start their sums from `128 * sum w` (see
//! `Int8Simd::initial_sums`), so they end at the portable path's exact `sum x * w`. Their
//! logic runs on every CPU through `PortableSigned<4>` in the tests.

use std::arch::aarch64::*;
use std::arch::asm;

use crate::ops::grid::{with_rows, Prefetch, Tile};
use crate::ops::matmul::{self, Product};
use crate::ops::qmatmul::{self, QProduct};
use crate::ops::simd::{delegate_f32, F32Simd, Int8Simd};

/// Rows of the fp32 tile, by one panel of 4 vectors: 6 x 4 = 24 accumulators, 4 vectors of
/// weights and the activations in the remaining 4 of the 32 registers.
pub const MATMUL_ROWS: usize = 6;
/// Rows of the `sdot` tile, by one panel: 24 accumulators, 4 vectors of weights, and a
/// register per row's activations.
pub const QMATMUL_DOT_ROWS: usize = 6;
/// Rows of the int8 tile without `sdot`: a step of one row holds 4 products and 4 halves of
/// weights besides, so 6 rows spill; 4 rows (16 accumulators) do not.
pub const QMATMUL_ROWS: usize = 4;

/// `x - 128` for 4 activations at once: the bytes' top bits flipped.
const FLIP: u32 = 0x8080_8080;

/// Proof that the CPU has NEON (every aarch64 CPU does; the check keeps the pattern).
#[derive(Debug, Clone, Copy)]
pub struct Neon(());

impl Neon {
    pub fn new() -> Option<Self> {
        crate::ops::cpu::Fp32Path::Neon
            .available()
            .then_some(Neon(()))
    }
}

impl F32Simd for Neon {
    type V = float32x4_t;
    const LANES: usize = 4;

    #[inline(always)]
    fn zero(self) -> float32x4_t {
        // SAFETY (every method): the token proves the CPU has the features; pointers are
        // the callers' contracts.
        unsafe { vdupq_n_f32(0.0) }
    }

    #[inline(always)]
    fn splat(self, value: f32) -> float32x4_t {
        unsafe { vdupq_n_f32(value) }
    }

    #[inline(always)]
    unsafe fn broadcast(self, ptr: *const f32) -> float32x4_t {
        // A scalar load and a splat: the multiply-adds take the scalar as an element
        // operand (`fmla v.4s, v.4s, v.s[0]`), so the loop needs no `ld1r`, which would
        // occupy a vector pipe on Cortex-A76 as the FMAs do.
        unsafe { vdupq_n_f32(ptr.read()) }
    }

    #[inline(always)]
    unsafe fn load(self, ptr: *const f32) -> float32x4_t {
        unsafe { vld1q_f32(ptr) }
    }

    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32, value: float32x4_t) {
        unsafe { vst1q_f32(ptr, value) }
    }

    #[inline(always)]
    fn mul_add(self, a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
        // c + a * b, rounded once.
        unsafe { vfmaq_f32(c, a, b) }
    }

    #[inline(always)]
    fn add(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vaddq_f32(a, b) }
    }

    #[inline(always)]
    fn mul(self, a: float32x4_t, b: float32x4_t) -> float32x4_t {
        unsafe { vmulq_f32(a, b) }
    }
}

/// NEON without the dot product (Cortex-A53/A72: Raspberry Pi 3 and 4): per step, 4 signed
/// activations by 4 channels' 4 weights in two 8-bit multiplies widened to 16 bits
/// (`smull`, `smull2`), added in pairs in 16 bits (`addp`) and in pairs again into the i32
/// lanes (`sadalp`). Exact: `|x - 128| <= 128` and `|w| <= 127` (int8 layers refuse -128),
/// so a pair of products stays within 2 * 16256 < 2^15.
impl Int8Simd for Neon {
    type I = int32x4_t;
    /// The 4 activations minus 128, repeated in each 32-bit lane.
    type Q = int8x16_t;
    type W = int8x16_t;
    type Act = u8;
    const GROUP: usize = 4;

    #[inline(always)]
    fn izero(self) -> int32x4_t {
        unsafe { vdupq_n_s32(0) }
    }
    #[inline(always)]
    fn wzero(self) -> int8x16_t {
        unsafe { vdupq_n_s8(0) }
    }
    #[inline(always)]
    fn isplat(self, value: i32) -> int32x4_t {
        unsafe { vdupq_n_s32(value) }
    }
    #[inline(always)]
    unsafe fn iload(self, ptr: *const i32) -> int32x4_t {
        unsafe { vld1q_s32(ptr) }
    }
    #[inline(always)]
    unsafe fn broadcast_group(self, activations: *const u8) -> int8x16_t {
        unsafe {
            let group = activations.cast::<u32>().read_unaligned();
            vreinterpretq_s8_u32(vdupq_n_u32(group ^ FLIP))
        }
    }
    #[inline(always)]
    unsafe fn load_weights(self, weights: *const i8) -> int8x16_t {
        unsafe { vld1q_s8(weights) }
    }
    #[inline(always)]
    fn dot(self, acc: int32x4_t, x: int8x16_t, w: int8x16_t) -> int32x4_t {
        // Channels 0-1 and 2-3: 8 products each, a channel's 4 in a row.
        unsafe {
            let low = vmull_s8(vget_low_s8(x), vget_low_s8(w));
            let high = vmull_high_s8(x, w);
            // (c0 g01, c0 g23, c1 g01, c1 g23, c2 .., c3 ..), each within 16 bits.
            let pairs = vpaddq_s16(low, high);
            vpadalq_s16(acc, pairs)
        }
    }
    #[inline(always)]
    unsafe fn initial_sums(self, weight_sums: *const i32) -> int32x4_t {
        unsafe { vshlq_n_s32::<7>(vld1q_s32(weight_sums)) }
    }
    #[inline(always)]
    fn isub_mul(self, a: int32x4_t, b: int32x4_t, c: int32x4_t) -> int32x4_t {
        unsafe { vmlsq_s32(a, b, c) }
    }
    #[inline(always)]
    fn to_f32(self, value: int32x4_t) -> float32x4_t {
        // Round to nearest, ties to even (the default FPCR mode), as `as f32`.
        unsafe { vcvtq_f32_s32(value) }
    }
}

/// Proof that the CPU has NEON and the dot product instructions (`dotprod`: Cortex-A55,
/// A76 and later, Neoverse N1/V1/V2, Apple M1 and later).
#[derive(Debug, Clone, Copy)]
pub struct NeonDot(Neon);

impl NeonDot {
    pub fn new() -> Option<Self> {
        crate::ops::cpu::Int8Path::NeonDot
            .available()
            .then_some(NeonDot(Neon(())))
    }

    #[inline(always)]
    fn f32_lanes(self) -> Neon {
        self.0
    }
}

delegate_f32!([] NeonDot, float32x4_t, 4);

/// `sdot`: in each i32 lane, the 4 signed bytes of the lane's channel by the 4 signed
/// activations, summed exactly. The activations sit in the first 32-bit lane only, and
/// `sdot` reads them as an element operand (`.4b[0]`), so a step's broadcast is a scalar
/// load and an integer `eor`, off the vector pipes.
impl Int8Simd for NeonDot {
    type I = int32x4_t;
    /// The 4 activations minus 128 in the first 32-bit lane.
    type Q = int8x16_t;
    type W = int8x16_t;
    type Act = u8;
    const GROUP: usize = 4;

    #[inline(always)]
    fn izero(self) -> int32x4_t {
        self.0.izero()
    }
    #[inline(always)]
    fn wzero(self) -> int8x16_t {
        self.0.wzero()
    }
    #[inline(always)]
    fn isplat(self, value: i32) -> int32x4_t {
        self.0.isplat(value)
    }
    #[inline(always)]
    unsafe fn iload(self, ptr: *const i32) -> int32x4_t {
        unsafe { self.0.iload(ptr) }
    }
    #[inline(always)]
    unsafe fn broadcast_group(self, activations: *const u8) -> int8x16_t {
        unsafe {
            let group = activations.cast::<u32>().read_unaligned();
            vreinterpretq_s8_u32(vdupq_n_u32(group ^ FLIP))
        }
    }
    #[inline(always)]
    unsafe fn load_weights(self, weights: *const i8) -> int8x16_t {
        unsafe { self.0.load_weights(weights) }
    }
    #[inline(always)]
    fn dot(self, acc: int32x4_t, x: int8x16_t, w: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        // SAFETY: the token proves the CPU has `dotprod`; the instruction reads and writes
        // registers only. (`vdotq_laneq_s32` is not stable in Rust 1.95.)
        unsafe {
            asm!(
                "sdot {acc:v}.4s, {w:v}.16b, {x:v}.4b[0]",
                acc = inout(vreg) acc,
                w = in(vreg) w,
                x = in(vreg) x,
                options(pure, nomem, nostack, preserves_flags)
            )
        };
        acc
    }
    #[inline(always)]
    unsafe fn initial_sums(self, weight_sums: *const i32) -> int32x4_t {
        unsafe { self.0.initial_sums(weight_sums) }
    }
    #[inline(always)]
    fn isub_mul(self, a: int32x4_t, b: int32x4_t, c: int32x4_t) -> int32x4_t {
        self.0.isub_mul(a, b, c)
    }
    #[inline(always)]
    fn to_f32(self, value: int32x4_t) -> float32x4_t {
        self.0.to_f32(value)
    }
}

/// One fp32 GEMM tile: up to `MATMUL_ROWS` rows by one panel (4 registers of 4 columns).
///
/// # Safety
/// The CPU has NEON; the tile and prefetch are as `grid::Kernel::tile` requires.
pub unsafe fn matmul_tile(product: &Product<'_>, tile: Tile, prefetch: Prefetch) {
    with_rows!(tile.rows, [1, 2, 3, 4, 5, 6], R => unsafe {
        matmul_rows::<R>(product, tile, prefetch)
    })
}

/// [`matmul_tile`] of `R` rows: a function of its own for each row count, so that each
/// loop gets the registers to itself.
#[target_feature(enable = "neon")]
#[inline(never)]
unsafe fn matmul_rows<const R: usize>(product: &Product<'_>, tile: Tile, prefetch: Prefetch) {
    // SAFETY: the caller's contract.
    unsafe { matmul::tile::<Neon, R, 4>(Neon(()), product, tile, prefetch) }
}

/// One int8 GEMM tile on NEON without the dot product: up to `QMATMUL_ROWS` rows by one
/// panel.
///
/// # Safety
/// The CPU has NEON; the tile and prefetch are as `grid::Kernel::tile` requires.
pub unsafe fn qmatmul_tile(product: &QProduct<'_, u8>, tile: Tile, prefetch: Prefetch) {
    with_rows!(tile.rows, [1, 2, 3, 4], R => unsafe {
        qmatmul_rows::<R>(product, tile, prefetch)
    })
}

#[target_feature(enable = "neon")]
#[inline(never)]
unsafe fn qmatmul_rows<const R: usize>(product: &QProduct<'_, u8>, tile: Tile, prefetch: Prefetch) {
    // SAFETY: the caller's contract.
    unsafe { qmatmul::tile::<Neon, R, 4>(Neon(()), product, tile, prefetch) }
}

/// One int8 GEMM tile on `sdot`: up to `QMATMUL_DOT_ROWS` rows by one panel.
///
/// # Safety
/// The CPU has NEON and `dotprod`; the tile and prefetch are as `grid::Kernel::tile`
/// requires.
pub unsafe fn qmatmul_tile_dot(product: &QProduct<'_, u8>, tile: Tile, prefetch: Prefetch) {
    with_rows!(tile.rows, [1, 2, 3, 4, 5, 6], R => unsafe {
        qmatmul_dot_rows::<R>(product, tile, prefetch)
    })
}

#[target_feature(enable = "neon,dotprod")]
#[inline(never)]
unsafe fn qmatmul_dot_rows<const R: usize>(
    product: &QProduct<'_, u8>,
    tile: Tile,
    prefetch: Prefetch,
) {
    // SAFETY: the caller's contract.
    unsafe { qmatmul::tile::<NeonDot, R, 4>(NeonDot(Neon(())), product, tile, prefetch) }
}
