//! The x86_64 register tiles: thin implementations of the lane traits of `ops::simd` over
//! AVX2 and AVX-512 intrinsics, and the `#[target_feature]` entry points the kernels call
//! once the CPU check in `ops::cpu` has picked the path.

pub mod avx2;
pub mod avx512;
