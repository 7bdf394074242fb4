//! AVX2 + FMA: 8 f32 lanes; int8 through AVX-VNNI (`vpdpbusd` on 256 bits) where present.

use std::arch::x86_64::*;

use crate::ops::grid::{with_rows, Prefetch, Tile};
use crate::ops::matmul::{self, Product};
use crate::ops::qmatmul::{self, QProduct};
use crate::ops::simd::{delegate_f32, F32Simd, Int8Simd};

/// Proof that the CPU has AVX2 and FMA.
#[derive(Debug, Clone, Copy)]
pub struct Avx2(());

impl Avx2 {
    pub fn new() -> Option<Self> {
        crate::ops::cpu::Fp32Path::Avx2
            .available()
            .then_some(Avx2(()))
    }
}

impl F32Simd for Avx2 {
    type V = __m256;
    const LANES: usize = 8;

    #[inline(always)]
    fn zero(self) -> __m256 {
        // SAFETY (every method): the token proves the CPU has the features.
        unsafe { _mm256_setzero_ps() }
    }

    #[inline(always)]
    fn splat(self, value: f32) -> __m256 {
        unsafe { _mm256_set1_ps(value) }
    }

    #[inline(always)]
    unsafe fn broadcast(self, ptr: *const f32) -> __m256 {
        unsafe { _mm256_broadcast_ss(&*ptr) }
    }

    #[inline(always)]
    unsafe fn load(self, ptr: *const f32) -> __m256 {
        unsafe { _mm256_loadu_ps(ptr) }
    }

    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32, value: __m256) {
        unsafe { _mm256_storeu_ps(ptr, value) }
    }

    #[inline(always)]
    fn mul_add(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }

    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }

    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_mul_ps(a, b) }
    }
}

/// Proof that the CPU has AVX2 and AVX-VNNI.
#[derive(Debug, Clone, Copy)]
pub struct AvxVnni(Avx2);

impl AvxVnni {
    pub fn new() -> Option<Self> {
        crate::ops::cpu::Int8Path::AvxVnni
            .available()
            .then_some(AvxVnni(Avx2(())))
    }
}

impl AvxVnni {
    #[inline(always)]
    fn f32_lanes(self) -> Avx2 {
        self.0
    }
}

delegate_f32!([] AvxVnni, __m256, 8);

impl Int8Simd for AvxVnni {
    type I = __m256i;
    type Q = __m256i;
    type W = __m256i;
    type Act = u8;
    const GROUP: usize = 4;
    const UNROLL: usize = 1;

    // The i32 lanes are AVX2's; only the groups and the dot product differ.
    #[inline(always)]
    fn izero(self) -> __m256i {
        self.0.izero()
    }
    #[inline(always)]
    fn wzero(self) -> __m256i {
        self.0.wzero()
    }
    #[inline(always)]
    fn isplat(self, value: i32) -> __m256i {
        self.0.isplat(value)
    }
    #[inline(always)]
    unsafe fn iload(self, ptr: *const i32) -> __m256i {
        unsafe { self.0.iload(ptr) }
    }
    #[inline(always)]
    unsafe fn broadcast_group(self, activations: *const u8) -> __m256i {
        unsafe { _mm256_set1_epi32(activations.cast::<i32>().read_unaligned()) }
    }
    #[inline(always)]
    unsafe fn load_weights(self, weights: *const i8) -> __m256i {
        unsafe { _mm256_loadu_si256(weights.cast()) }
    }
    #[inline(always)]
    fn dot(self, acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        // u8 x s8 in groups of 4, summed into i32 without saturation.
        unsafe { _mm256_dpbusd_avx_epi32(acc, x, w) }
    }
    #[inline(always)]
    fn isub_mul(self, a: __m256i, b: __m256i, c: __m256i) -> __m256i {
        self.0.isub_mul(a, b, c)
    }
    #[inline(always)]
    fn to_f32(self, value: __m256i) -> __m256 {
        self.0.to_f32(value)
    }
}

/// AVX2 without VNNI: pairs of 16-bit activations by int8 weights widened to 16 bits,
/// `vpmaddwd` (exact: `vpmaddubsw` would saturate).
impl Int8Simd for Avx2 {
    type I = __m256i;
    type Q = __m256i;
    type W = __m256i;
    type Act = u16;
    const GROUP: usize = 2;
    const UNROLL: usize = 1;

    #[inline(always)]
    fn izero(self) -> __m256i {
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    fn wzero(self) -> __m256i {
        unsafe { _mm256_setzero_si256() }
    }
    #[inline(always)]
    fn isplat(self, value: i32) -> __m256i {
        unsafe { _mm256_set1_epi32(value) }
    }
    #[inline(always)]
    unsafe fn iload(self, ptr: *const i32) -> __m256i {
        unsafe { _mm256_loadu_si256(ptr.cast()) }
    }
    #[inline(always)]
    unsafe fn broadcast_group(self, activations: *const u16) -> __m256i {
        unsafe { _mm256_set1_epi32(activations.cast::<i32>().read_unaligned()) }
    }
    #[inline(always)]
    unsafe fn load_weights(self, weights: *const i8) -> __m256i {
        unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(weights.cast())) }
    }
    #[inline(always)]
    fn dot(self, acc: __m256i, x: __m256i, w: __m256i) -> __m256i {
        unsafe { _mm256_add_epi32(acc, _mm256_madd_epi16(x, w)) }
    }
    #[inline(always)]
    fn isub_mul(self, a: __m256i, b: __m256i, c: __m256i) -> __m256i {
        unsafe { _mm256_sub_epi32(a, _mm256_mullo_epi32(b, c)) }
    }
    #[inline(always)]
    fn to_f32(self, value: __m256i) -> __m256 {
        unsafe { _mm256_cvtepi32_ps(value) }
    }
}

/// One fp32 GEMM tile: up to 6 rows by one panel (two registers of 8 columns).
///
/// # Safety
/// The CPU has AVX2 and FMA; the tile and prefetch are as `grid::Kernel::tile` requires.
pub unsafe fn matmul_tile(product: &Product<'_>, tile: Tile, prefetch: Prefetch) {
    with_rows!(tile.rows, [1, 2, 3, 4, 5, 6], R => unsafe {
        matmul_rows::<R>(product, tile, prefetch)
    })
}

/// [`matmul_tile`] of `R` rows: a function of its own for each row count, so that each
/// loop gets the registers to itself.
#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn matmul_rows<const R: usize>(product: &Product<'_>, tile: Tile, prefetch: Prefetch) {
    // SAFETY: the caller's contract.
    unsafe { matmul::tile::<Avx2, R, 2>(Avx2(()), product, tile, prefetch) }
}

/// One int8 GEMM tile on AVX2 without VNNI: up to 6 rows by one panel.
///
/// # Safety
/// The CPU has AVX2 and FMA; the tile and prefetch are as `grid::Kernel::tile` requires.
pub unsafe fn qmatmul_tile(product: &QProduct<'_, u16>, tile: Tile, prefetch: Prefetch) {
    with_rows!(tile.rows, [1, 2, 3, 4, 5, 6], R => unsafe {
        qmatmul_rows::<R>(product, tile, prefetch)
    })
}

#[target_feature(enable = "avx2,fma")]
#[inline(never)]
unsafe fn qmatmul_rows<const R: usize>(
    product: &QProduct<'_, u16>,
    tile: Tile,
    prefetch: Prefetch,
) {
    // SAFETY: the caller's contract.
    unsafe { qmatmul::tile::<Avx2, R, 2>(Avx2(()), product, tile, prefetch) }
}

/// One int8 GEMM tile on AVX-VNNI: up to 6 rows by one panel.
///
/// # Safety
/// The CPU has AVX2, FMA and AVX-VNNI; the tile and prefetch are as `grid::Kernel::tile`
/// requires.
pub unsafe fn qmatmul_tile_vnni(product: &QProduct<'_, u8>, tile: Tile, prefetch: Prefetch) {
    with_rows!(tile.rows, [1, 2, 3, 4, 5, 6], R => unsafe {
        qmatmul_vnni_rows::<R>(product, tile, prefetch)
    })
}

#[target_feature(enable = "avx2,fma,avxvnni")]
#[inline(never)]
unsafe fn qmatmul_vnni_rows<const R: usize>(
    product: &QProduct<'_, u8>,
    tile: Tile,
    prefetch: Prefetch,
) {
    // SAFETY: the caller's contract.
    unsafe { qmatmul::tile::<AvxVnni, R, 2>(AvxVnni(Avx2(())), product, tile, prefetch) }
}
