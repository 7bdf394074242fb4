//! AVX-512 F/BW/VL: 16 f32 lanes; int8 through AVX-512 VNNI (`vpdpbusd` on 512 bits).

use std::arch::x86_64::*;

use crate::ops::grid::{with_rows, Prefetch, Tile};
use crate::ops::matmul::{self, Product};
use crate::ops::qmatmul::{self, QProduct};
use crate::ops::simd::{delegate_f32, F32Simd, Int8Simd};

/// Rows of the fp32 tile (by two panels: 2 x ROWS accumulators of 32 registers).
pub const MATMUL_ROWS: usize = 8;

/// Proof that the CPU has AVX-512 F/BW/VL and FMA.
#[derive(Debug, Clone, Copy)]
pub struct Avx512(());

impl Avx512 {
    pub fn new() -> Option<Self> {
        crate::ops::cpu::Fp32Path::Avx512
            .available()
            .then_some(Avx512(()))
    }
}

impl F32Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;

    #[inline(always)]
    fn zero(self) -> __m512 {
        // SAFETY (every method): the token proves the CPU has the features.
        unsafe { _mm512_setzero_ps() }
    }

    #[inline(always)]
    fn splat(self, value: f32) -> __m512 {
        unsafe { _mm512_set1_ps(value) }
    }

    #[inline(always)]
    unsafe fn broadcast(self, ptr: *const f32) -> __m512 {
        unsafe { _mm512_set1_ps(*ptr) }
    }

    #[inline(always)]
    unsafe fn load(self, ptr: *const f32) -> __m512 {
        unsafe { _mm512_loadu_ps(ptr) }
    }

    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32, value: __m512) {
        unsafe { _mm512_storeu_ps(ptr, value) }
    }

    #[inline(always)]
    fn mul_add(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }

    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }

    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
}

/// Proof that the CPU has AVX-512 F/BW/VL and AVX-512 VNNI.
#[derive(Debug, Clone, Copy)]
pub struct Avx512Vnni(Avx512);

impl Avx512Vnni {
    pub fn new() -> Option<Self> {
        crate::ops::cpu::Int8Path::Avx512Vnni
            .available()
            .then_some(Avx512Vnni(Avx512(())))
    }
}

impl Avx512Vnni {
    #[inline(always)]
    fn f32_lanes(self) -> Avx512 {
        self.0
    }
}

delegate_f32!([] Avx512Vnni, __m512, 16);

impl Int8Simd for Avx512Vnni {
    type I = __m512i;
    type Q = __m512i;
    type W = __m512i;
    type Act = u8;
    const GROUP: usize = 4;

    #[inline(always)]
    fn izero(self) -> __m512i {
        unsafe { _mm512_setzero_si512() }
    }
    #[inline(always)]
    fn wzero(self) -> __m512i {
        unsafe { _mm512_setzero_si512() }
    }
    #[inline(always)]
    fn isplat(self, value: i32) -> __m512i {
        unsafe { _mm512_set1_epi32(value) }
    }
    #[inline(always)]
    unsafe fn iload(self, ptr: *const i32) -> __m512i {
        unsafe { _mm512_loadu_si512(ptr.cast()) }
    }
    #[inline(always)]
    unsafe fn broadcast_group(self, activations: *const u8) -> __m512i {
        unsafe { _mm512_set1_epi32(activations.cast::<i32>().read_unaligned()) }
    }
    #[inline(always)]
    unsafe fn load_weights(self, weights: *const i8) -> __m512i {
        unsafe { _mm512_loadu_si512(weights.cast()) }
    }
    #[inline(always)]
    fn dot(self, acc: __m512i, x: __m512i, w: __m512i) -> __m512i {
        // u8 x s8 in groups of 4, summed into i32 without saturation.
        unsafe { _mm512_dpbusd_epi32(acc, x, w) }
    }
    #[inline(always)]
    fn isub_mul(self, a: __m512i, b: __m512i, c: __m512i) -> __m512i {
        unsafe { _mm512_sub_epi32(a, _mm512_mullo_epi32(b, c)) }
    }
    #[inline(always)]
    fn to_f32(self, value: __m512i) -> __m512 {
        unsafe { _mm512_cvtepi32_ps(value) }
    }
}

/// One fp32 GEMM tile: up to `MATMUL_ROWS` rows by one or two panels (a register each).
///
/// # Safety
/// The CPU has AVX-512 F/BW/VL and FMA; the tile and prefetch are as `grid::Kernel::tile`
/// requires.
pub unsafe fn matmul_tile(product: &Product<'_>, tile: Tile, prefetch: Prefetch) {
    if tile.panels == 2 {
        with_rows!(tile.rows, [1, 2, 3, 4, 5, 6, 7, 8], R => unsafe {
            matmul_rows::<R, 2>(product, tile, prefetch)
        })
    } else {
        with_rows!(tile.rows, [1, 2, 3, 4, 5, 6, 7, 8], R => unsafe {
            matmul_rows::<R, 1>(product, tile, prefetch)
        })
    }
}

/// [`matmul_tile`] of `R` rows by `NV` panels: a function of its own for each shape, so
/// that each loop gets the registers to itself.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
#[inline(never)]
unsafe fn matmul_rows<const R: usize, const NV: usize>(
    product: &Product<'_>,
    tile: Tile,
    prefetch: Prefetch,
) {
    // SAFETY: the caller's contract.
    unsafe { matmul::tile::<Avx512, R, NV>(Avx512(()), product, tile, prefetch) }
}

/// Rows of the int8 tile (by two panels).
pub const QMATMUL_ROWS: usize = 8;

/// One int8 GEMM tile on AVX-512 VNNI: up to `QMATMUL_ROWS` rows by one or two panels.
///
/// # Safety
/// The CPU has AVX-512 F/BW/VL and VNNI; the tile and prefetch are as `grid::Kernel::tile`
/// requires.
pub unsafe fn qmatmul_tile(product: &QProduct<'_, u8>, tile: Tile, prefetch: Prefetch) {
    if tile.panels == 2 {
        with_rows!(tile.rows, [1, 2, 3, 4, 5, 6, 7, 8], R => unsafe {
            qmatmul_rows::<R, 2>(product, tile, prefetch)
        })
    } else {
        with_rows!(tile.rows, [1, 2, 3, 4, 5, 6, 7, 8], R => unsafe {
            qmatmul_rows::<R, 1>(product, tile, prefetch)
        })
    }
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
#[inline(never)]
unsafe fn qmatmul_rows<const R: usize, const NV: usize>(
    product: &QProduct<'_, u8>,
    tile: Tile,
    prefetch: Prefetch,
) {
    // SAFETY: the caller's contract.
    unsafe { qmatmul::tile::<Avx512Vnni, R, NV>(Avx512Vnni(Avx512(())), product, tile, prefetch) }
}
