//! The lane-width abstraction the GEMM tiles are written over.
//!
//! A tile is generic over an ISA token (`S: F32Simd`, and `Int8Simd` for the int8 tiles); the
//! x86 and aarch64 modules implement the tokens with intrinsics, [`Portable`] with arrays of
//! `L` lanes. Every operation is one IEEE operation per lane (`mul_add` is fused, rounded
//! once), so a tile computes the same bits whatever the token: `Portable<16>` runs the
//! AVX-512 tiles' logic (packing, edges, tails, epilogues) on any CPU, in tests and as the
//! portable path.
//!
//! Tokens are zero-sized proofs that the CPU has the features: a tile is only ever called
//! with a token whose constructor checked them (or from inside a `#[target_feature]`
//! function that its caller guards), and every method is `#[inline(always)]` so that it is
//! compiled with the features of the function it lands in.

/// f32 vectors of `LANES` lanes.
pub trait F32Simd: Copy + Send + Sync {
    /// A vector of `LANES` floats.
    type V: Copy;
    const LANES: usize;

    fn zero(self) -> Self::V;
    fn splat(self, value: f32) -> Self::V;
    /// The float at `ptr` in every lane.
    ///
    /// # Safety
    /// `ptr` is valid for reading one float.
    unsafe fn broadcast(self, ptr: *const f32) -> Self::V;
    /// # Safety
    /// `ptr` is valid for reading `LANES` floats (no alignment needed).
    unsafe fn load(self, ptr: *const f32) -> Self::V;
    /// # Safety
    /// `ptr` is valid for writing `LANES` floats.
    unsafe fn store(self, ptr: *mut f32, value: Self::V);
    /// `a * b + c`, rounded once.
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    fn mul(self, a: Self::V, b: Self::V) -> Self::V;
}

/// int8 dot products into i32 lanes, for the tiles of [`crate::ops::qmatmul`]: each step
/// multiplies `GROUP` unsigned activations of one row (broadcast to every lane) by `GROUP`
/// signed 8-bit weights of each lane's channel and adds the products to the lane, exactly
/// (`vpdpbusd` on u8 x s8 groups of 4; `vpmaddwd` on pairs widened to 16 bits). Activations
/// are stored as `Act` (u8, or u16 where the instruction takes 16 bits), values 0..=255.
///
/// An instruction that takes signed bytes only (NEON's `sdot`) gets `x - 128` instead
/// ([`PortableSigned`]): its sums start from `128 * sum w` per channel
/// ([`Int8Simd::initial_sums`]) and so end at the same exact `sum x * w`.
pub trait Int8Simd: F32Simd {
    /// A vector of `LANES` i32.
    type I: Copy;
    /// `GROUP` activations, broadcast.
    type Q: Copy;
    /// `LANES * GROUP` weights, as the dot product takes them.
    type W: Copy;
    /// How activations are stored.
    type Act: Copy + Default + Send + Sync + From<u8> + 'static;
    /// Activations per lane per step.
    const GROUP: usize;
    /// Steps per pass of a tile's loop: more passes' worth of registers than 16-register
    /// ISAs have to spare (their unrolled loops spill).
    const UNROLL: usize = 4;

    fn izero(self) -> Self::I;
    /// Weights of zero (to initialize arrays of them).
    fn wzero(self) -> Self::W;
    fn isplat(self, value: i32) -> Self::I;
    /// # Safety
    /// `ptr` is valid for reading `LANES` i32 values.
    unsafe fn iload(self, ptr: *const i32) -> Self::I;
    /// # Safety
    /// `activations` is valid for reading `GROUP` values.
    unsafe fn broadcast_group(self, activations: *const Self::Act) -> Self::Q;
    /// # Safety
    /// `weights` is valid for reading `LANES * GROUP` bytes: lane `l`'s group first.
    unsafe fn load_weights(self, weights: *const i8) -> Self::W;
    /// `acc + sum_g x[g] * w[lane][g]` in each lane (`x[g] - 128` where the sums start from
    /// `initial_sums`' correction).
    fn dot(self, acc: Self::I, x: Self::Q, w: Self::W) -> Self::I;
    /// Where a tile's sums start for `LANES` channels whose weights sum to the values at
    /// `weight_sums` (over every input position): zero, or `128 * sum w` for a `dot` that
    /// takes `x - 128`. Wrapping i32 arithmetic: the final sums are exact whenever they fit.
    ///
    /// # Safety
    /// `weight_sums` is valid for reading `LANES` i32 values.
    #[inline(always)]
    unsafe fn initial_sums(self, weight_sums: *const i32) -> Self::I {
        let _ = weight_sums;
        self.izero()
    }
    /// `a - b * c` with wrapping i32 arithmetic.
    fn isub_mul(self, a: Self::I, b: Self::I, c: Self::I) -> Self::I;
    /// Each lane converted to the nearest f32.
    fn to_f32(self, value: Self::I) -> Self::V;
}

/// `impl F32Simd for $token` by delegation to the token `Self::f32_lanes(self)` returns:
/// the int8 tokens carry the f32 lanes of their register width.
macro_rules! delegate_f32 {
    ([$($generics:tt)*] $token:ty, $vector:ty, $lanes:expr) => {
        impl<$($generics)*> $crate::ops::simd::F32Simd for $token {
            type V = $vector;
            const LANES: usize = $lanes;

            #[inline(always)]
            fn zero(self) -> $vector {
                Self::f32_lanes(self).zero()
            }
            #[inline(always)]
            fn splat(self, value: f32) -> $vector {
                Self::f32_lanes(self).splat(value)
            }
            #[inline(always)]
            unsafe fn broadcast(self, ptr: *const f32) -> $vector {
                // SAFETY: the caller's contract.
                unsafe { Self::f32_lanes(self).broadcast(ptr) }
            }
            #[inline(always)]
            unsafe fn load(self, ptr: *const f32) -> $vector {
                // SAFETY: the caller's contract.
                unsafe { Self::f32_lanes(self).load(ptr) }
            }
            #[inline(always)]
            unsafe fn store(self, ptr: *mut f32, value: $vector) {
                // SAFETY: the caller's contract.
                unsafe { Self::f32_lanes(self).store(ptr, value) }
            }
            #[inline(always)]
            fn mul_add(self, a: $vector, b: $vector, c: $vector) -> $vector {
                Self::f32_lanes(self).mul_add(a, b, c)
            }
            #[inline(always)]
            fn add(self, a: $vector, b: $vector) -> $vector {
                Self::f32_lanes(self).add(a, b)
            }
            #[inline(always)]
            fn mul(self, a: $vector, b: $vector) -> $vector {
                Self::f32_lanes(self).mul(a, b)
            }
        }
    };
}
pub(crate) use delegate_f32;

/// `L` lanes in plain Rust: the portable path, and the twin of a SIMD tile in tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Portable<const L: usize>;

impl<const L: usize> F32Simd for Portable<L> {
    type V = [f32; L];
    const LANES: usize = L;

    #[inline(always)]
    fn zero(self) -> [f32; L] {
        [0.0; L]
    }

    #[inline(always)]
    fn splat(self, value: f32) -> [f32; L] {
        [value; L]
    }

    #[inline(always)]
    unsafe fn broadcast(self, ptr: *const f32) -> [f32; L] {
        // SAFETY: the caller's contract.
        [unsafe { *ptr }; L]
    }

    #[inline(always)]
    unsafe fn load(self, ptr: *const f32) -> [f32; L] {
        // SAFETY: the caller's contract.
        unsafe { ptr.cast::<[f32; L]>().read_unaligned() }
    }

    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32, value: [f32; L]) {
        // SAFETY: the caller's contract.
        unsafe { ptr.cast::<[f32; L]>().write_unaligned(value) }
    }

    #[inline(always)]
    fn mul_add(self, a: [f32; L], b: [f32; L], c: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| a[i].mul_add(b[i], c[i]))
    }

    #[inline(always)]
    fn add(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| a[i] + b[i])
    }

    #[inline(always)]
    fn mul(self, a: [f32; L], b: [f32; L]) -> [f32; L] {
        std::array::from_fn(|i| a[i] * b[i])
    }
}

impl<const L: usize> Int8Simd for Portable<L> {
    type I = [i32; L];
    type Q = [i32; 4];
    type W = [[i8; 4]; L];
    type Act = u8;
    const GROUP: usize = 4;

    #[inline(always)]
    fn izero(self) -> [i32; L] {
        [0; L]
    }

    #[inline(always)]
    fn wzero(self) -> [[i8; 4]; L] {
        [[0; 4]; L]
    }

    #[inline(always)]
    fn isplat(self, value: i32) -> [i32; L] {
        [value; L]
    }

    #[inline(always)]
    unsafe fn iload(self, ptr: *const i32) -> [i32; L] {
        // SAFETY: the caller's contract.
        unsafe { ptr.cast::<[i32; L]>().read_unaligned() }
    }

    #[inline(always)]
    unsafe fn broadcast_group(self, activations: *const u8) -> [i32; 4] {
        // SAFETY: the caller's contract.
        unsafe { activations.cast::<[u8; 4]>().read_unaligned() }.map(i32::from)
    }

    #[inline(always)]
    unsafe fn load_weights(self, weights: *const i8) -> [[i8; 4]; L] {
        // SAFETY: the caller's contract.
        unsafe { weights.cast::<[[i8; 4]; L]>().read_unaligned() }
    }

    #[inline(always)]
    fn dot(self, acc: [i32; L], x: [i32; 4], w: [[i8; 4]; L]) -> [i32; L] {
        dot_groups(acc, x, w)
    }

    #[inline(always)]
    fn isub_mul(self, a: [i32; L], b: [i32; L], c: [i32; L]) -> [i32; L] {
        std::array::from_fn(|i| a[i].wrapping_sub(b[i].wrapping_mul(c[i])))
    }

    #[inline(always)]
    fn to_f32(self, value: [i32; L]) -> [f32; L] {
        value.map(|v| v as f32)
    }
}

/// Each lane's sum plus its `G` weights by the group's `G` activations, in exact wrapping
/// i32 arithmetic: the dot product of every portable int8 twin.
#[inline(always)]
fn dot_groups<const L: usize, const G: usize>(
    acc: [i32; L],
    x: [i32; G],
    w: [[i8; G]; L],
) -> [i32; L] {
    std::array::from_fn(|lane| {
        let products = (0..G).map(|g| x[g].wrapping_mul(i32::from(w[lane][g])));
        products.fold(acc[lane], i32::wrapping_add)
    })
}

/// `L` lanes in plain Rust over pairs of 16-bit activations: the twin of the AVX2 int8 tile
/// (`vpmaddwd`), which takes `GROUP = 2`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PortablePairs<const L: usize>;

impl<const L: usize> PortablePairs<L> {
    #[inline(always)]
    fn f32_lanes(self) -> Portable<L> {
        Portable
    }
}

delegate_f32!([const L: usize] PortablePairs<L>, [f32; L], L);

impl<const L: usize> Int8Simd for PortablePairs<L> {
    type I = [i32; L];
    type Q = [i32; 2];
    type W = [[i8; 2]; L];
    type Act = u16;
    const GROUP: usize = 2;

    #[inline(always)]
    fn izero(self) -> [i32; L] {
        [0; L]
    }
    #[inline(always)]
    fn wzero(self) -> [[i8; 2]; L] {
        [[0; 2]; L]
    }
    #[inline(always)]
    fn isplat(self, value: i32) -> [i32; L] {
        [value; L]
    }
    #[inline(always)]
    unsafe fn iload(self, ptr: *const i32) -> [i32; L] {
        // SAFETY: the caller's contract.
        unsafe { Portable::<L>.iload(ptr) }
    }
    #[inline(always)]
    unsafe fn broadcast_group(self, activations: *const u16) -> [i32; 2] {
        // SAFETY: the caller's contract.
        unsafe { activations.cast::<[u16; 2]>().read_unaligned() }.map(i32::from)
    }
    #[inline(always)]
    unsafe fn load_weights(self, weights: *const i8) -> [[i8; 2]; L] {
        // SAFETY: the caller's contract.
        unsafe { weights.cast::<[[i8; 2]; L]>().read_unaligned() }
    }
    #[inline(always)]
    fn dot(self, acc: [i32; L], x: [i32; 2], w: [[i8; 2]; L]) -> [i32; L] {
        dot_groups(acc, x, w)
    }
    #[inline(always)]
    fn isub_mul(self, a: [i32; L], b: [i32; L], c: [i32; L]) -> [i32; L] {
        Portable::<L>.isub_mul(a, b, c)
    }
    #[inline(always)]
    fn to_f32(self, value: [i32; L]) -> [f32; L] {
        Portable::<L>.to_f32(value)
    }
}

/// `L` lanes in plain Rust over groups of 4 activations taken as signed bytes `x - 128`
/// (`x ^ 0x80`), the sums started from `128 * sum w`: the twin of the NEON int8 tiles (`sdot`
/// takes s8 x s8; the fallback without it multiplies s8 x s8 into 16 bits).
#[derive(Debug, Clone, Copy, Default)]
pub struct PortableSigned<const L: usize>;

impl<const L: usize> PortableSigned<L> {
    #[inline(always)]
    fn f32_lanes(self) -> Portable<L> {
        Portable
    }
}

delegate_f32!([const L: usize] PortableSigned<L>, [f32; L], L);

impl<const L: usize> Int8Simd for PortableSigned<L> {
    type I = [i32; L];
    type Q = [i8; 4];
    type W = [[i8; 4]; L];
    type Act = u8;
    const GROUP: usize = 4;

    #[inline(always)]
    fn izero(self) -> [i32; L] {
        [0; L]
    }
    #[inline(always)]
    fn wzero(self) -> [[i8; 4]; L] {
        [[0; 4]; L]
    }
    #[inline(always)]
    fn isplat(self, value: i32) -> [i32; L] {
        [value; L]
    }
    #[inline(always)]
    unsafe fn iload(self, ptr: *const i32) -> [i32; L] {
        // SAFETY: the caller's contract.
        unsafe { Portable::<L>.iload(ptr) }
    }
    #[inline(always)]
    unsafe fn broadcast_group(self, activations: *const u8) -> [i8; 4] {
        // SAFETY: the caller's contract.
        let bytes = unsafe { activations.cast::<[u8; 4]>().read_unaligned() };
        // x ^ 0x80 read as i8 is x - 128.
        bytes.map(|x| (x ^ 0x80) as i8)
    }
    #[inline(always)]
    unsafe fn load_weights(self, weights: *const i8) -> [[i8; 4]; L] {
        // SAFETY: the caller's contract.
        unsafe { Portable::<L>.load_weights(weights) }
    }
    #[inline(always)]
    fn dot(self, acc: [i32; L], x: [i8; 4], w: [[i8; 4]; L]) -> [i32; L] {
        dot_groups(acc, x.map(i32::from), w)
    }
    #[inline(always)]
    unsafe fn initial_sums(self, weight_sums: *const i32) -> [i32; L] {
        // SAFETY: the caller's contract.
        let sums = unsafe { self.iload(weight_sums) };
        sums.map(|sum| sum.wrapping_mul(128))
    }
    #[inline(always)]
    fn isub_mul(self, a: [i32; L], b: [i32; L], c: [i32; L]) -> [i32; L] {
        Portable::<L>.isub_mul(a, b, c)
    }
    #[inline(always)]
    fn to_f32(self, value: [i32; L]) -> [f32; L] {
        Portable::<L>.to_f32(value)
    }
}

/// Ask for the 64-byte line at `ptr` to be brought into L2 (a hint: any address is safe).
#[inline(always)]
pub fn prefetch_line(ptr: *const u8) {
    prefetch::<false>(ptr);
}

/// Ask for the lines of `values` to be brought into L1 (every 16th value's).
#[inline(always)]
pub fn prefetch_lines_near(values: &[f32]) {
    for line in values.chunks(16) {
        prefetch::<true>(line.as_ptr().cast());
    }
}

/// Ask for the 64-byte line at `ptr` to be brought into L1 (`NEAR`) or L2.
#[inline(always)]
fn prefetch<const NEAR: bool>(ptr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache; it never faults.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0, _MM_HINT_T1};
        if NEAR {
            _mm_prefetch::<_MM_HINT_T0>(ptr.cast())
        } else {
            _mm_prefetch::<_MM_HINT_T1>(ptr.cast())
        }
    };
    #[cfg(target_arch = "aarch64")]
    // SAFETY: `prfm` only hints the cache: it never faults, and changes no memory or
    // register the program sees.
    unsafe {
        if NEAR {
            std::arch::asm!(
                "prfm pldl1keep, [{ptr}]",
                ptr = in(reg) ptr,
                options(nostack, readonly, preserves_flags)
            )
        } else {
            std::arch::asm!(
                "prfm pldl2keep, [{ptr}]",
                ptr = in(reg) ptr,
                options(nostack, readonly, preserves_flags)
            )
        }
    };
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = ptr;
}
